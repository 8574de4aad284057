package sim

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/rotary-moe/rotary/internal/shared"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deepSeek is the DeepSeek-V2-Lite trace, read once for all the tests.
var deepSeek struct {
	once  sync.Once
	trace *profile.Trace
	err   error
}

// loadDeepSeek returns the DeepSeek-V2-Lite trace, or skips.
func loadDeepSeek(t testing.TB) *profile.Trace {
	t.Helper()
	path := shared.TracePath(t, "deepseek-v2-lite-chat", "puffin_prefill_csv")
	deepSeek.once.Do(func() { deepSeek.trace, deepSeek.err = profile.OpenTrace(context.Background(), path) })
	require.NoError(t, deepSeek.err)
	return deepSeek.trace
}

// fullTraces skips a test that replays a whole trace unless
// ROTARY_FULL_TRACES is set.
func fullTraces(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("ROTARY_FULL_TRACES") == "" {
		t.Skipf("set ROTARY_FULL_TRACES=1 to %s", what)
	}
}

// referenceHits is an independent, plain reading of the cache the traces'
// READMEs define: one cache of c experts per layer; each token requests its
// experts; a miss inserts the expert, evicting (by policy) one the token does
// not request; LFU counts every request so far, ties to the least recent;
// Belady evicts the expert whose next use is farthest. Ties left after that go
// to the lowest expert id.
func referenceHits(tr *profile.Trace, c int, policy string) (hits, requests uint64) {
	m := tr.Model()
	var ids []int32
	for l := range m.Layers {
		var uses [][]int // [expert]: the tokens requesting it
		if policy == "Belady" {
			uses = make([][]int, m.Experts)
			for tok := range tr.Tokens() {
				for _, e := range tr.AppendExperts(ids[:0], tok, l) {
					uses[e] = append(uses[e], tok)
				}
			}
		}
		pos := make([]int, m.Experts) // [expert]: index in uses of its next request
		nextUse := func(e int) int {
			if pos[e] < len(uses[e]) {
				return uses[e][pos[e]]
			}
			return int(^uint(0) >> 1)
		}
		var cache []int
		last := make([]int, m.Experts)
		count := make([]int, m.Experts)
		in := make([]bool, m.Experts)
		asked := make([]int, m.Experts) // [expert]: 1 + the last token requesting it
		for tok := range tr.Tokens() {
			ids = tr.AppendExperts(ids[:0], tok, l)
			for _, e := range ids {
				asked[e] = tok + 1
			}
			for _, e32 := range ids {
				e := int(e32)
				requests++
				count[e]++
				pos[e]++
				if in[e] {
					hits++
					last[e] = tok
					continue
				}
				if len(cache) == c {
					victim := -1
					for i, x := range cache {
						if asked[x] == tok+1 {
							continue
						}
						if victim < 0 {
							victim = i
							continue
						}
						y := cache[victim]
						var kx, ky int
						switch policy {
						case "LFU":
							kx, ky = count[x], count[y]
						case "Belady":
							kx, ky = -nextUse(x), -nextUse(y)
						}
						if kx < ky || kx == ky && (last[x] < last[y] || last[x] == last[y] && x < y) {
							victim = i
						}
					}
					in[cache[victim]] = false
					cache[victim] = cache[len(cache)-1]
					cache = cache[:len(cache)-1]
				}
				cache = append(cache, e)
				in[e] = true
				last[e] = tok
			}
		}
	}
	return hits, requests
}

// deepSeekREADME is the hit-rate table of the DeepSeek trace's README.
var deepSeekREADME = map[int]map[string]float64{
	8:  {"LRU": 30.80, "LFU": 30.06, "Belady": 41.23},
	16: {"LRU": 47.16, "LFU": 43.74, "Belady": 66.57},
	32: {"LRU": 71.39, "LFU": 66.37, "Belady": 87.06},
}

// TestReferenceMatchesREADME checks the reference cache against the
// README's independently computed figures, to two decimals. It replays the
// whole trace nine times (seconds): set ROTARY_FULL_TRACES=1 to run it.
// TestRuntimeMatchesReference holds the runtime to the reference in every
// run.
func TestReferenceMatchesREADME(t *testing.T) {
	fullTraces(t, "check the reference cache against the README")
	tr := loadDeepSeek(t)
	var wg sync.WaitGroup
	for c, row := range deepSeekREADME {
		for policy, want := range row {
			wg.Go(func() {
				hits, req := referenceHits(tr, c, policy)
				assert.InDelta(t, want, 100*float64(hits)/float64(req), 0.005, "%s with %d slots", policy, c)
			})
		}
	}
	wg.Wait()
}

// TestRuntimeMatchesReference replays the first prompts of the DeepSeek
// trace through the runtime (Simulate: Acquire/Release on the host backend)
// and requires exactly the reference cache's hits for every policy and size.
// TestSimulateMatchesREADME does the whole trace.
func TestRuntimeMatchesReference(t *testing.T) {
	tr := loadDeepSeek(t)
	if raceEnabled {
		t.Skip("slow under the race detector; TestConcurrentResidency covers the concurrency")
	}
	prefix := tr.Subset(func(s profile.Segment) bool { return s.Start < 4000 })
	m := shapeModel(t, ShapeOf(prefix, 2048, 1408, 0))
	rep, err := Simulate(bg, m, prefix, Config{
		Budgets:  []Budget{{Slots: 8}, {Slots: 16}, {Slots: 32}},
		Policies: []Policy{{Name: "LRU", Policy: rotary.LRU}, {Name: "LFU", Policy: rotary.LFU}, {Name: "Belady", Policy: rotary.Belady(prefix)}},
	})
	require.NoError(t, err)
	for _, row := range rep.Rows {
		var c int
		_, err := fmt.Sscan(row.Budget, &c)
		require.NoError(t, err)
		hits, req := referenceHits(prefix, c, row.Policy)
		assert.Equal(t, req, row.Requests, "%s %s", row.Policy, row.Budget)
		assert.Equal(t, hits, row.Hits, "%s %s", row.Policy, row.Budget)
	}
}

// TestSimulateMatchesREADME replays the whole DeepSeek trace through the
// runtime for the README's table. It takes minutes on two cores: set
// ROTARY_FULL_TRACES=1 to run it.
func TestSimulateMatchesREADME(t *testing.T) {
	fullTraces(t, "replay the whole trace through the runtime")
	tr := loadDeepSeek(t)
	m := shapeModel(t, ShapeOf(tr, 2048, 1408, 0))
	rep, err := Simulate(bg, m, tr, Config{
		Budgets:  []Budget{{Slots: 8}, {Slots: 16}, {Slots: 32}},
		Policies: []Policy{{Name: "LRU", Policy: rotary.LRU}, {Name: "LFU", Policy: rotary.LFU}, {Name: "Belady", Policy: rotary.Belady(tr)}},
	})
	require.NoError(t, err)
	t.Log("\n" + rep.String())
	for _, row := range rep.Rows {
		var c int
		_, err := fmt.Sscan(row.Budget, &c)
		require.NoError(t, err)
		assert.InDelta(t, deepSeekREADME[c][row.Policy], 100*row.HitRate, 0.005, "%s %s", row.Policy, row.Budget)
	}
}
