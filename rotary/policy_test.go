package rotary

import (
	"testing"

	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEvictors(t *testing.T) {
	cands := []Candidate{{Slot: 0, Expert: 5, LastUse: 3}, {Slot: 1, Expert: 2, LastUse: 1}, {Slot: 2, Expert: 7, LastUse: 1}, {Slot: 3, Expert: 1, LastUse: 2}}
	lru := LRU.NewEvictor(0, 8, 4)
	assert.Equal(t, 1, lru.Victim(cands), "least recent, then lowest id")

	lfu := LFU.NewEvictor(0, 8, 4)
	for _, e := range []int{5, 2, 2, 7, 1, 1, 5} {
		lfu.Requested(e, 0)
	}
	assert.Equal(t, 2, lfu.Victim(cands), "expert 7 was requested once")
	lfu.Requested(7, 0)
	assert.Equal(t, 1, lfu.Victim(cands), "all twice: least recent, then lowest id")

	// Belady on a 1-layer trace: tokens request {0,1}, {2,3}, {1,2}, {0}, {3}.
	tr, err := profile.NewTrace(profile.ModelID{Arch: "x", Layers: 1, Experts: 4, ExpertsUsed: 2})
	require.NoError(t, err)
	for _, ids := range [][]int32{{0, 1}, {2, 3}, {1, 2}, {0}, {3}} {
		require.NoError(t, tr.Set(tr.AddToken(), 0, ids, nil))
	}
	b := Belady(tr).NewEvictor(0, 4, 2)
	for _, e := range []int{0, 1, 2, 3} { // tokens 0 and 1 done
		b.Requested(e, 0)
	}
	// Next uses: 1 at token 2, 2 at token 2, 0 at token 3, 3 at token 4.
	c := []Candidate{{Slot: 0, Expert: 0}, {Slot: 1, Expert: 1}, {Slot: 2, Expert: 3}}
	assert.Equal(t, 2, b.Victim(c), "expert 3 is needed last")
	b.Requested(3, 0) // its last use
	assert.Equal(t, 2, b.Victim(c), "never again is farthest of all")
	assert.Equal(t, "Belady", Belady(tr).Name())
}
