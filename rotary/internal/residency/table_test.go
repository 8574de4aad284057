package residency

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A step's misses take the empty slots first, lowest first, then evict by
// the rule: never a pinned slot, never an expert the step routes.
func TestResolve(t *testing.T) {
	tab := NewTable(8, 4, 1, LRU{})
	tab.Put(0, 7) // pinned
	slots, misses, ok := tab.Resolve([]int{1, 2, 7}, nil, nil)
	require.True(t, ok)
	assert.Equal(t, []int{1, 2, 0}, slots)
	assert.Equal(t, []Miss{{1, 1, -1}, {2, 2, -1}}, misses)

	_, misses, ok = tab.Resolve([]int{3}, nil, nil)
	require.True(t, ok)
	assert.Equal(t, []Miss{{3, 3, -1}}, misses)

	// Experts 1 and 2 were used at tick 1, 3 at tick 2: 4 evicts 1 (the
	// lowest id of the least recent), and 5 evicts 2, not 4 (routed now).
	_, misses, ok = tab.Resolve([]int{4, 5}, nil, nil)
	require.True(t, ok)
	assert.Equal(t, []Miss{{4, 1, 1}, {5, 2, 2}}, misses)
	assert.Equal(t, []int32{7, 4, 5, 3}, tab.ExpertIn)
	assert.Equal(t, uint64(3), tab.Tick)
	assert.Equal(t, []int32{0, 0, 0, 0}, tab.Held, "a step releases its slots")

	_, _, ok = tab.Resolve([]int{1, 1}, nil, nil)
	assert.False(t, ok, "an expert twice")
	_, _, ok = tab.Resolve([]int{0, 1, 2, 6}, nil, nil)
	assert.False(t, ok, "four misses, three dynamic slots")
	assert.Equal(t, uint64(3), tab.Tick, "a refused step changes nothing")
}

// LFU evicts the expert requested least often, then the least recent.
func TestLFU(t *testing.T) {
	lfu := NewLFU(4)
	tab := NewTable(4, 2, 0, lfu)
	for _, step := range [][]int{{0}, {0}, {1}, {2}} {
		_, _, ok := tab.Resolve(step, nil, nil)
		require.True(t, ok)
	}
	// 0 was asked twice, 1 once: 2 evicted 1.
	assert.Equal(t, []int32{0, 2}, tab.ExpertIn)
	assert.Equal(t, []uint64{2, 1, 1, 0}, lfu.Counts)
	assert.Equal(t, RuleLFU, RuleOf(lfu))
	assert.Equal(t, RuleLRU, RuleOf(LRU{}))
}

func ExampleTable_Resolve() {
	tab := NewTable(6, 3, 0, LRU{})
	for _, step := range [][]int{{0, 1}, {2}, {1, 3}} {
		slots, misses, _ := tab.Resolve(step, nil, nil)
		fmt.Println(step, "in slots", slots, "misses", misses)
	}
	// Output:
	// [0 1] in slots [0 1] misses [{0 0 -1} {1 1 -1}]
	// [2] in slots [2] misses [{2 2 -1}]
	// [1 3] in slots [1 0] misses [{3 0 0}]
}
