package prefetch

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/stretchr/testify/require"
)

// benchShapes are the shapes the prefetcher runs on: DeepSeek-V2-Lite (26
// routed layers, top-6 of 64, embedding 2048) and Qwen3.5-35B-A3B (40, top-8
// of 256, 2048).
var benchShapes = []synth.Shape{
	{Name: "deepseek-v2-lite", Arch: "deepseek2", Layers: 27, Experts: 64, TopK: 6, Embedding: 2048, ExpertFFN: 1408},
	{Name: "qwen35moe-35b-a3b", Arch: "qwen3moe", Layers: 40, Experts: 256, TopK: 8, Embedding: 2048, ExpertFFN: 512},
}

// routedLayers are a shape's MoE layers: DeepSeek's first layer is dense.
func routedLayers(s synth.Shape) []int {
	var out []int
	for l := range s.Layers {
		if s.Arch != "deepseek2" || l > 0 {
			out = append(out, l)
		}
	}
	return out
}

// randomTrace routes tokens uniformly at random: what the statistics say
// does not change what a prediction costs.
func randomTrace(t testing.TB, s synth.Shape, tokens int) *profile.Trace {
	id := profile.ModelID{Arch: s.Arch, Layers: s.Layers, Experts: s.Experts, ExpertsUsed: s.TopK}
	tr, err := profile.NewTrace(id)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for range tokens {
		tok := tr.AddToken()
		for _, l := range routedLayers(s) {
			var ids []int32
			for _, e := range rng.Perm(s.Experts)[:s.TopK] {
				ids = append(ids, int32(e))
			}
			require.NoError(t, tr.Set(tok, l, ids, nil))
		}
	}
	return tr
}

// BenchmarkPredict measures one prediction (the host's work after a layer
// routed, before the runtime is called): Transition's table lookups, and
// GateAhead's GEMV on the CPU (MatrixGate; a GPU backend runs it as a
// kernel instead).
func BenchmarkPredict(b *testing.B) {
	for _, s := range benchShapes {
		tr := randomTrace(b, s, 200)
		trans, err := FitTransition(tr)
		require.NoError(b, err)
		routers := make([][]float32, s.Layers)
		for _, l := range routedLayers(s) {
			routers[l] = make([]float32, s.Embedding*s.Experts)
		}
		gate, err := NewMatrixGate(s.Embedding, s.Experts, routers)
		require.NoError(b, err)
		ahead, err := NewGateAhead(gate)
		require.NoError(b, err)
		for _, p := range []struct {
			name string
			Predictor
		}{{"transition", trans}, {"gate-ahead-cpu", ahead}} {
			b.Run(fmt.Sprintf("%s/%s", s.Name, p.name), func(b *testing.B) {
				layers := routedLayers(s)
				h, err := NewHistory(layers)
				require.NoError(b, err)
				x := make([]float32, s.Embedding)
				ids := make([]int, s.TopK)
				for i := range ids {
					ids[i] = i
				}
				for _, l := range layers[:3] {
					require.NoError(b, h.Observe(l, ids, x))
				}
				scores := make([]float32, s.Experts)
				top := make([]int, 0, s.TopK)
				b.ReportAllocs()
				for b.Loop() {
					if err := p.Predict(h, layers[2], layers[3], scores); err != nil {
						b.Fatal(err)
					}
					top = topM(top, scores, s.TopK)
				}
			})
		}
	}
}

// BenchmarkRouted measures the prefetcher's whole host cost per layer:
// Transition's prediction, the top-k, and the runtime's PrefetchN (locking
// the layer, choosing slots, queuing the copies of about half the
// candidates on the host backend, whose queuing stands for the driver's).
//
// "resident" gives every expert a slot, so nothing is copied: the
// prefetcher's own cost and the runtime's bookkeeping, without the copies.
func BenchmarkRouted(b *testing.B) {
	for _, c := range []struct {
		s     synth.Shape
		name  string
		slots int
	}{
		{benchShapes[0], "quarter", 16}, {benchShapes[0], "resident", 64},
		{benchShapes[1], "quarter", 64}, {benchShapes[1], "resident", 256},
	} {
		s := c.s
		b.Run(s.Name+"/"+c.name, func(b *testing.B) {
			s.MoELayers = routedLayers(s)
			w, err := synth.ShapeWriter(s)
			require.NoError(b, err)
			m, err := synth.OpenShape(w, b.TempDir())
			require.NoError(b, err)
			defer m.Close()
			rt := openRuntime(b, m, rotary.WithSlots(c.slots))
			tr := randomTrace(b, s, 400)
			trans, err := FitTransition(tr)
			require.NoError(b, err)
			f, err := New(rt, trans)
			require.NoError(b, err)
			var ids32 []int32
			var ids []int
			tok, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				l := s.MoELayers[i]
				ids32 = tr.AppendExperts(ids32[:0], tok, l)
				ids = ids[:0]
				for _, e := range ids32 {
					ids = append(ids, int(e))
				}
				f.Routed(l, ids, nil)
				if i++; i == len(s.MoELayers) {
					i, tok = 0, (tok+1)%tr.Tokens()
				}
			}
			b.StopTimer()
			require.NoError(b, f.Err())
		})
	}
}
