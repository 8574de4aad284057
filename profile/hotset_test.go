package profile

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomProfile returns a profile with random counts (some zero) and layer
// sizes drawn from a few size classes.
func randomProfile(rng *rand.Rand) (*Profile, []int64) {
	m := ModelID{Arch: "test", Layers: 1 + rng.IntN(3), Experts: 1 + rng.IntN(4), ExpertsUsed: 1}
	p := newProfile(m, false)
	sizes := make([]int64, m.Layers)
	classes := []int64{3, 4, 5, 7}[:1+rng.IntN(4)]
	for l := range p.Layers {
		sizes[l] = classes[rng.IntN(len(classes))]
		for e := range p.Layers[l].Counts {
			if rng.IntN(4) > 0 {
				p.Layers[l].Counts[e] = uint64(rng.IntN(20))
			}
		}
	}
	return p, sizes
}

// bruteForce returns the best hits over all subsets of (layer, expert) that fit:
// the budget per layer (perLayer) or in total.
func bruteForce(p *Profile, sizes []int64, budget int64, perLayer bool) uint64 {
	L, E := len(p.Layers), p.Model.Experts
	var best uint64
	for mask := 0; mask < 1<<(L*E); mask++ {
		var hits uint64
		var total int64
		fits := true
		for l := range L {
			var bytes int64
			for e := range E {
				if mask&(1<<(l*E+e)) != 0 {
					bytes += sizes[l]
					hits += p.Layers[l].Counts[e]
				}
			}
			total += bytes
			if perLayer && bytes > budget {
				fits = false
			}
		}
		if !perLayer && total > budget {
			fits = false
		}
		if fits {
			best = max(best, hits)
		}
	}
	return best
}

// checkHotSet verifies the set's own bookkeeping and that it fits the budget.
func checkHotSet(t *testing.T, p *Profile, sizes []int64, budget int64, h *HotSet) {
	t.Helper()
	var hits uint64
	var bytes int64
	for l, lh := range h.Layers {
		seen := map[int]bool{}
		var lhits uint64
		for _, e := range lh.Experts {
			require.False(t, seen[e], "layer %d: expert %d twice", l, e)
			seen[e] = true
			lhits += p.Layers[l].Counts[e]
			require.Positive(t, p.Layers[l].Counts[e], "pinned an expert never selected")
		}
		require.Equal(t, lhits, lh.Hits)
		require.Equal(t, int64(len(lh.Experts))*sizes[l], lh.Bytes)
		if h.Mode == PerLayer {
			require.LessOrEqual(t, lh.Bytes, budget)
		}
		hits += lhits
		bytes += lh.Bytes
	}
	require.Equal(t, hits, h.Hits)
	require.Equal(t, bytes, h.Bytes)
	if h.Mode == Global {
		require.LessOrEqual(t, bytes, budget)
	}
	require.GreaterOrEqual(t, h.MaxHits, h.Hits)
}

func TestSelectHotSetMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 400 {
		p, sizes := randomProfile(rng)
		budget := int64(rng.IntN(30))
		for _, mode := range []Mode{PerLayer, Global} {
			h, err := SelectHotSet(p, sizes, budget, mode)
			require.NoError(t, err)
			checkHotSet(t, p, sizes, budget, h)
			best := bruteForce(p, sizes, budget, mode == PerLayer)
			require.Equal(t, best, h.Hits, "instance %d %v: sizes %v budget %d", i, mode, sizes, budget)
			assert.True(t, h.Optimal)
		}
	}
}

// TestSelectHotSetGreedyFallback forces the greedy path and checks its bound:
// hits <= optimum <= MaxHits, and Optimal only when hits reach MaxHits.
func TestSelectHotSetGreedyFallback(t *testing.T) {
	saved := enumLimit
	enumLimit = 0
	t.Cleanup(func() { enumLimit = saved })
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 400 {
		p, sizes := randomProfile(rng)
		budget := int64(rng.IntN(30))
		h, err := SelectHotSet(p, sizes, budget, Global)
		require.NoError(t, err)
		checkHotSet(t, p, sizes, budget, h)
		best := bruteForce(p, sizes, budget, false)
		require.LessOrEqual(t, h.Hits, best, "instance %d", i)
		require.GreaterOrEqual(t, h.MaxHits, best, "instance %d: MaxHits must bound the optimum", i)
		if h.Optimal {
			require.Equal(t, best, h.Hits, "instance %d", i)
		}
	}
}

// TestSelectHotSetKnapsack is the case where greedy by hits per byte is wrong:
// one big expert beats two small ones that have more hits per byte.
func TestSelectHotSetKnapsack(t *testing.T) {
	p := newProfile(ModelID{Arch: "test", Layers: 2, Experts: 2, ExpertsUsed: 1}, false)
	p.Layers[0].Counts = []uint64{10, 0} // size 6: 1.67 hits/byte
	p.Layers[1].Counts = []uint64{6, 0}  // size 3: 2 hits/byte
	sizes := []int64{6, 3}
	h, err := SelectHotSet(p, sizes, 7, Global)
	require.NoError(t, err)
	assert.EqualValues(t, 10, h.Hits)
	assert.Equal(t, []int{0}, h.Layers[0].Experts)
	assert.Empty(t, h.Layers[1].Experts)
	assert.InDelta(t, 10.0/16, h.HitRate, 1e-12)
	assert.True(t, h.Optimal)

	saved := enumLimit
	enumLimit = 0
	defer func() { enumLimit = saved }()
	g, err := SelectHotSet(p, sizes, 7, Global)
	require.NoError(t, err)
	assert.EqualValues(t, 6, g.Hits, "greedy takes a small expert first and then cannot fit the big one")
	assert.False(t, g.Optimal)
	assert.EqualValues(t, 12, g.MaxHits) // LP bound: 6 + 10·4/6, floored
}

func TestSelectHotSetErrors(t *testing.T) {
	p := newProfile(tiny, false)
	p.Layers[0].Counts[1] = 3
	_, err := SelectHotSet(p, []int64{1, 1}, -1, Global)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = SelectHotSet(p, []int64{1}, 10, Global)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = SelectHotSet(p, []int64{0, 1}, 10, Global)
	assert.ErrorIs(t, err, ErrInvalid, "routed layer of size 0")
	_, err = SelectHotSet(p, []int64{1, 1}, 10, Mode(9))
	assert.ErrorIs(t, err, ErrInvalid)
	h, err := SelectHotSet(p, []int64{1, 0}, 10, PerLayer)
	require.NoError(t, err, "a layer without selections may have size 0")
	assert.Equal(t, []int{1}, h.Layers[0].Experts)
	assert.Equal(t, 1.0, h.HitRate)
}

// BenchmarkSelectHotSetGlobal measures global selection on a 40×256 profile
// with two size classes (Q4_K and Q6_K down projections alternating).
func BenchmarkSelectHotSetGlobal(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	p := newProfile(benchModel, false)
	sizes := make([]int64, benchModel.Layers)
	for l := range p.Layers {
		sizes[l] = 1_622_016 + int64(l%2)*344_064
		for e := range p.Layers[l].Counts {
			p.Layers[l].Counts[e] = uint64(rng.IntN(10000))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SelectHotSet(p, sizes, 8<<30, Global); err != nil {
			b.Fatal(err)
		}
	}
}
