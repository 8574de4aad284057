package device

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/rotary"
)

// BenchmarkResolveFill times a decode step's residency on GPU 0 (the
// emulator's timings mean nothing; it skips without a GPU): 8 routed
// experts of qwen3moe-30b-a3b's size (Q4_K_M, 2048×768), every one a miss,
// resolved and copied from the registered, mapped model file by the fill
// kernel. It reports the copies' GB/s, against the ~55 GB/s a pinned copy
// reaches over PCIe Gen5, and the step's time.
func BenchmarkResolveFill(b *testing.B) {
	ctx := context.Background()
	dev, err := cuda.Open(ctx, 0)
	if err != nil {
		b.Skipf("no GPU: %v", err)
	}
	b.Cleanup(func() { dev.Close() })
	const layers, experts, k = 2, 128, 8
	w, err := synth.ShapeWriter(synth.Shape{Name: "bench", Arch: "llama", Layers: layers, Experts: experts, TopK: k, Embedding: 2048, ExpertFFN: 768})
	require.NoError(b, err)
	m, err := synth.OpenShape(w, b.TempDir())
	require.NoError(b, err)
	b.Cleanup(func() { m.Close() })
	rt, err := rotary.Open(ctx, m, dev, rotary.WithSlots(k), rotary.WithDeviceResidency())
	require.NoError(b, err)
	b.Cleanup(func() { rt.Close() })
	r, err := New(ctx, dev, rt)
	require.NoError(b, err)
	b.Cleanup(func() { r.Close() })
	s, err := dev.NewStream()
	require.NoError(b, err)
	layer := m.MoELayers()[0]
	plane, err := rt.Plane(layer)
	require.NoError(b, err)

	// Steps of 8 experts in turn, each set new to the 8 slots: all misses.
	steps := make([][]int32, experts/k)
	for i := range steps {
		for j := range k {
			steps[i] = append(steps[i], int32(i*k+j))
		}
	}
	ids, err := dev.Alloc(4 * k * int64(len(steps)))
	require.NoError(b, err)
	for i, st := range steps {
		require.NoError(b, s.CopyHtoD(ids, 4*k*int64(i), cuda.Bytes(st)))
	}
	slots, err := dev.Alloc(4 * k)
	require.NoError(b, err)
	step := func(i int) error {
		in, err := ids.Slice(4*k*int64(i%len(steps)), 4*k)
		if err != nil {
			return err
		}
		return r.Resolve(s, layer, in, k, slots)
	}
	require.NoError(b, step(0))
	require.NoError(b, s.Synchronize(ctx))
	b.ResetTimer()
	for i := range b.N {
		if err := step(i + 1); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, s.Synchronize(ctx))
	b.ReportMetric(float64(k*plane.SlotBytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/step")
}
