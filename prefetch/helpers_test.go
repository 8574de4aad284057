package prefetch

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/stretchr/testify/require"
)

var bg = context.Background()

// chainID is the model of chainTrace: layer 0 dense, layers 1-4 routed.
var chainID = profile.ModelID{Arch: "llama", Layers: 5, Experts: 16, ExpertsUsed: 2}

// chainTrace returns a trace of chainID whose routing is predictable from
// the layer before: expert e at layer l is followed by 3e+1 mod 16 at l+1,
// except that each selection is replaced by a random expert with
// probability noise. Layer 1 draws from the first 8 experts.
func chainTrace(t testing.TB, tokens int, noise float64, seed uint64) *profile.Trace {
	t.Helper()
	tr, err := profile.NewTrace(chainID)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(seed, 1))
	for range tokens {
		tok := tr.AddToken()
		a := rng.IntN(8)
		sel := []int{a, (a + 1 + rng.IntN(7)) % 8}
		for l := 1; l < chainID.Layers; l++ {
			if l > 1 {
				for i, e := range sel {
					sel[i] = (3*e + 1) % chainID.Experts
				}
			}
			for i := range sel {
				if rng.Float64() < noise {
					sel[i] = rng.IntN(chainID.Experts)
				}
			}
			if sel[0] == sel[1] {
				sel[1] = (sel[1] + 1) % chainID.Experts
			}
			require.NoError(t, tr.Set(tok, l, []int32{int32(sel[0]), int32(sel[1])}, nil))
		}
	}
	return tr
}

// chainModel is a model of chainID's shape without weights.
func chainModel(t testing.TB) *experts.Model {
	t.Helper()
	w, err := synth.ShapeWriter(synth.Shape{Arch: "llama", Layers: 5, MoELayers: []int{1, 2, 3, 4}, Experts: 16, TopK: 2,
		Embedding: 64, ExpertFFN: 64})
	require.NoError(t, err)
	m, err := synth.OpenShape(w, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// openRuntime opens a runtime of m on a host device in virtual time.
func openRuntime(t testing.TB, m *experts.Model, opts ...rotary.Option) *rotary.Runtime {
	t.Helper()
	dev, err := cuda.NewHost(cuda.WithVirtualClock(), cuda.WithoutData(), cuda.WithCapacity(1<<50))
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	rt, err := rotary.Open(bg, m, dev, append([]rotary.Option{rotary.WithoutWarmup()}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { rt.Close() })
	return rt
}
