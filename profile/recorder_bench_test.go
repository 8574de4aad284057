package profile

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// benchRoutes returns n top-k routing decisions drawn from a skewed
// distribution over experts, with softmax-like weights.
func benchRoutes(m ModelID, n int) ([][]int32, [][]float32) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([][]int32, n)
	wts := make([][]float32, n)
	for i := range ids {
		seen := map[int32]bool{}
		for len(ids[i]) < m.ExpertsUsed {
			e := int32(float64(m.Experts) * rng.Float64() * rng.Float64())
			if !seen[e] {
				seen[e] = true
				ids[i] = append(ids[i], e)
				wts[i] = append(wts[i], 1/float32(m.ExpertsUsed))
			}
		}
	}
	return ids, wts
}

var benchModel = ModelID{Arch: "qwen35moe", Layers: 40, Experts: 256, ExpertsUsed: 8}

// BenchmarkRecord measures one Record call (one layer of one token, top-8 of
// 256) from one goroutine walking the layers, as an inference loop does.
func BenchmarkRecord(b *testing.B) {
	for _, bc := range []struct {
		name    string
		weights bool
		opts    []Option
	}{
		{"ids", false, nil},
		{"weights", true, nil},
		{"weights+coactivation", true, []Option{WithCoActivation()}},
		{"weights+transitions", true, []Option{WithTransitions()}},
		{"weights+trace", true, []Option{WithTrace(1 << 16)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := NewRecorder(benchModel, bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			ids, wts := benchRoutes(benchModel, 4096)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var w []float32
				if bc.weights {
					w = wts[i&4095]
				}
				if err := r.Record(i%benchModel.Layers, ids[i&4095], w); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRecordParallel measures Record from GOMAXPROCS goroutines: "spread"
// has each goroutine walk the layers from its own offset (several sequences in
// flight), "same-layer" makes all goroutines hit one layer (worst contention).
func BenchmarkRecordParallel(b *testing.B) {
	for _, spread := range []bool{true, false} {
		name := "same-layer"
		if spread {
			name = "spread"
		}
		b.Run(name, func(b *testing.B) {
			r, err := NewRecorder(benchModel)
			if err != nil {
				b.Fatal(err)
			}
			ids, wts := benchRoutes(benchModel, 4096)
			var worker atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(worker.Add(1)) * 7
				for pb.Next() {
					layer := 0
					if spread {
						layer = i % benchModel.Layers
					}
					if err := r.Record(layer, ids[i&4095], wts[i&4095]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
