package rotary

import (
	"errors"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/stretchr/testify/require"
)

// The GPU benchmarks run on GPU 0 and skip without a driver or a GPU. Build
// them here and run them there (see README-GPU lines in the report):
//
//	go test -c -o gpu/rotary.test ./rotary
//	./rotary.test -test.run '^$' -test.bench GPU -test.benchtime 200x
//
// BenchmarkGPUMisses reports the bandwidth at which Acquire streams misses
// (GB/s, from the copy batches' events) and its share of the measured pinned
// bandwidth (%pinned, target >= 85); BenchmarkGPUOverlap reports how much of
// the copies hide behind a kernel on another stream (%hidden, 100 = all).

func openGPU(b *testing.B) cuda.Device {
	b.Helper()
	dev, err := cuda.Open(bg, 0, cuda.WithCacheDir(b.TempDir()))
	if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) {
		b.Skipf("no GPU: %v", err)
	}
	require.NoError(b, err, "a driver that is there must work")
	b.Cleanup(func() { dev.Close() })
	return dev
}

// gpuModel has Qwen3-30B-A3B's experts (2048×768, Q4_K gate and up, Q6_K
// down: 2.9 MiB) in 4 layers of 64 (784 MB), without weights.
func gpuModel() synth.Shape {
	return synth.Shape{Arch: "llama", Layers: 4, Experts: 64, TopK: 8, Embedding: 2048, ExpertFFN: 768}
}

// pinnedBandwidth measures host-to-device copies of 8 MiB chunks from pinned
// memory, the bus's best.
func pinnedBandwidth(b *testing.B, dev cuda.Device) float64 {
	const chunk, n = 8 << 20, 64
	host, err := dev.AllocHost(chunk, 0)
	require.NoError(b, err)
	defer dev.FreeHost(host)
	buf, err := dev.Alloc(chunk)
	require.NoError(b, err)
	defer dev.Free(buf)
	s, err := dev.NewStream()
	require.NoError(b, err)
	defer s.Close()
	start, err := dev.NewEvent(0)
	require.NoError(b, err)
	defer start.Close()
	end, err := dev.NewEvent(0)
	require.NoError(b, err)
	defer end.Close()
	require.NoError(b, s.CopyHtoD(buf, 0, host.Bytes())) // warm up
	require.NoError(b, s.Record(start))
	for range n {
		require.NoError(b, s.CopyHtoD(buf, 0, host.Bytes()))
	}
	require.NoError(b, s.Record(end))
	require.NoError(b, s.Synchronize(bg))
	d, err := end.Since(start)
	require.NoError(b, err)
	return chunk * n / d.Seconds()
}

// missLoop Acquires 8 experts that are never resident (8 slots per layer,
// 4 sets taking turns), n times, on stream.
func missLoop(b *testing.B, rt *Runtime, stream cuda.Stream, n int) {
	layers := rt.Plan().Layers
	for i := range n {
		l := layers[i%len(layers)].Layer
		base := 8 * ((i / len(layers)) % 4)
		ids := []int{base, base + 1, base + 2, base + 3, base + 4, base + 5, base + 6, base + 7}
		set, err := rt.Acquire(bg, l, ids, stream)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Release(set, nil); err != nil { // nothing reads them
			b.Fatal(err)
		}
	}
}

func BenchmarkGPUMisses(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{
		{"mapped", nil},
		// Holds the 4 sets of each layer: copies come from pinned copies.
		{"pinned-lru", []Option{WithHostBudget(512 << 20), WithoutWarmup()}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			dev := openGPU(b)
			peak := pinnedBandwidth(b, dev)
			m := shapeModel(b, gpuModel())
			rt := openRuntime(b, m, dev, append(mode.opts, WithSlots(8))...)
			stream, err := dev.NewStream()
			require.NoError(b, err)
			defer stream.Close()
			missLoop(b, rt, stream, 16) // warm up; fill the host LRU
			require.NoError(b, stream.Synchronize(bg))
			rt.ResetStats()
			b.ResetTimer()
			missLoop(b, rt, stream, b.N)
			require.NoError(b, stream.Synchronize(bg))
			b.StopTimer()
			s := rt.Stats() // harvests every batch: stream waited for them all
			rt.batches.mu.Lock()
			left := len(rt.batches.inflight)
			rt.batches.mu.Unlock()
			require.Zero(b, left, "batches in flight after the stream's Synchronize")
			require.Zero(b, s.VRAM.Hits)
			bw := float64(s.VRAM.Bytes) / s.TransferTime.Seconds()
			b.ReportMetric(bw/1e9, "GB/s")
			b.ReportMetric(100*bw/peak, "%pinned")
			b.ReportMetric(peak/1e9, "pinnedGB/s")
			b.SetBytes(8 * m.ExpertBytes(0))
		})
	}
}

// spinProgram keeps an SM busy for a number of clock cycles.
var spinProgram = &cuda.Program{
	Name:   "spin.cu",
	Source: `extern "C" __global__ void spin(long long cycles) { long long t0 = clock64(); while (clock64() - t0 < cycles) {} }`,
	Host:   map[string]cuda.HostKernel{"spin": func(l *cuda.HostLaunch) error { return nil }},
}

func BenchmarkGPUOverlap(b *testing.B) {
	dev := openGPU(b)
	m := shapeModel(b, gpuModel())
	rt := openRuntime(b, m, dev, WithSlots(8))
	mod, err := dev.Load(bg, spinProgram)
	require.NoError(b, err)
	defer mod.Close()
	spin, err := mod.Kernel("spin")
	require.NoError(b, err)
	compute, err := dev.NewStream()
	require.NoError(b, err)
	defer compute.Close()
	copies, err := dev.NewStream()
	require.NoError(b, err)
	defer copies.Close()
	one := cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 1}}
	timed := func(f func()) time.Duration {
		require.NoError(b, dev.Synchronize(bg))
		start := time.Now()
		f()
		require.NoError(b, dev.Synchronize(bg))
		return time.Since(start)
	}
	n := max(b.N, 40)
	missLoop(b, rt, copies, 8)
	tCopy := timed(func() { missLoop(b, rt, copies, n) })
	// A kernel as long as the copies: calibrate cycles per second first.
	const probe = 100_000_000
	tProbe := timed(func() { require.NoError(b, compute.Launch(spin, one, cuda.I64(probe))) })
	cycles := int64(probe * tCopy.Seconds() / tProbe.Seconds())
	tSpin := timed(func() { require.NoError(b, compute.Launch(spin, one, cuda.I64(cycles))) })
	tBoth := timed(func() {
		require.NoError(b, compute.Launch(spin, one, cuda.I64(cycles)))
		missLoop(b, rt, copies, n)
	})
	// Serial would be tCopy+tSpin, perfect overlap max(tCopy, tSpin).
	hidden := float64(tCopy+tSpin-tBoth) / float64(min(tCopy, tSpin))
	b.ReportMetric(100*hidden, "%hidden")
	b.ReportMetric(float64(tCopy.Microseconds()), "copy-µs")
	b.ReportMetric(float64(tSpin.Microseconds()), "kernel-µs")
	b.ReportMetric(float64(tBoth.Microseconds()), "both-µs")
}
