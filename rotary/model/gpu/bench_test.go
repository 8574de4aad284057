package gpu

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/model"
)

// The benchmarks time decode-step launches of qwen35moe's shapes on GPU 0
// (the emulator's timings mean nothing) and skip without one. Each reports
// the bytes a launch must move per second: what a memory-bound kernel is
// judged by against the card's bandwidth.

// gpuBench opens GPU 0 with the kernels, or skips.
type gpuBench struct {
	b   *testing.B
	dev cuda.Device
	ks  *Kernels
	s   cuda.Stream
	r   *rand.Rand
}

func newGPUBench(b *testing.B) *gpuBench {
	ctx := context.Background()
	dev, err := cuda.Open(ctx, 0)
	if err != nil {
		b.Skipf("no GPU: %v", err)
	}
	b.Cleanup(func() { dev.Close() })
	ks, err := Load(ctx, dev)
	require.NoError(b, err)
	b.Cleanup(func() { ks.Close() })
	s, err := dev.NewStream()
	require.NoError(b, err)
	return &gpuBench{b: b, dev: dev, ks: ks, s: s, r: rand.New(rand.NewPCG(1, 1))}
}

// matrix is a device matrix of random values in [-1, 1).
func (g *gpuBench) matrix(rows, cols int) Matrix {
	buf, err := g.dev.Alloc(4 * int64(rows*cols))
	require.NoError(g.b, err)
	require.NoError(g.b, g.s.CopyHtoD(buf, 0, floatBytes(random(g.r, rows*cols, 1))))
	return Matrix{Buf: buf, Rows: rows, Cols: cols}
}

// run times launch, reporting bytes moved per launch as GB/s.
func (g *gpuBench) run(bytes int64, launch func() error) {
	require.NoError(g.b, launch()) // warm up, and fail early
	require.NoError(g.b, g.s.Synchronize(context.Background()))
	g.b.ResetTimer()
	for range g.b.N {
		if err := launch(); err != nil {
			g.b.Fatal(err)
		}
	}
	require.NoError(g.b, g.s.Synchronize(context.Background()))
	g.b.ReportMetric(float64(bytes)*float64(g.b.N)/g.b.Elapsed().Seconds()/1e9, "GB/s")
}

func BenchmarkAttendDecode(b *testing.B) {
	for _, n := range []int{512, 4096, 32768} {
		b.Run(name("ctx%d", n), func(b *testing.B) {
			g := newGPUBench(b)
			const H, KV, dim = 16, 2, 256
			q := g.matrix(1, 2*H*dim)
			a := Attention{
				Q: q, QHeads: model.Heads{Count: H, Dim: dim, Stride: 2 * dim},
				Gate: q, GateHeads: model.Heads{Count: H, Dim: dim, Stride: 2 * dim, Offset: dim},
				KVHeads: KV, Cache: KVCache{K: g.matrix(n, KV*dim), V: g.matrix(n, KV*dim)}, Pos: n - 1, Scale: 0.0625,
			}
			if ws := a.WorkspaceBytes(); ws > 0 {
				a.Workspace = g.matrix(int(ws/4), 1).Buf
			}
			dst := g.matrix(1, H*dim)
			g.run(2*4*int64(n)*KV*dim, func() error { return g.ks.Attend(g.s, dst, a) })
		})
	}
}

func BenchmarkDeltaNetDecode(b *testing.B) {
	for _, fused := range []bool{false, true} {
		b.Run(name("norm=%v", fused), func(b *testing.B) {
			g := newGPUBench(b)
			const Hk, Hv, S = 16, 32, 128
			d := DeltaNet{
				QKV: g.matrix(1, (2*Hk+Hv)*S), Alpha: g.matrix(1, Hv), Beta: g.matrix(1, Hv),
				DTBias: g.matrix(1, Hv).Buf, A: g.matrix(1, Hv).Buf, State: g.matrix(Hv*S, S),
				KHeads: Hk, VHeads: Hv, HeadDim: S, Eps: 1e-6,
			}
			if fused {
				d.Z, d.NormWeight = g.matrix(1, Hv*S), g.matrix(1, S).Buf
			}
			dst := g.matrix(1, Hv*S)
			g.run(2*4*Hv*S*S, func() error { return g.ks.DeltaNet(g.s, dst, d) })
		})
	}
}

func BenchmarkConvSiLUDecode(b *testing.B) {
	g := newGPUBench(b)
	const C, K = 8192, 4
	x, state, kernel, dst := g.matrix(1, C), g.matrix(K-1, C), g.matrix(C, K), g.matrix(1, C)
	g.run(4*(C+2*(K-1)*C+C*K+C), func() error { return g.ks.ConvSiLU(g.s, dst, x, state, kernel) })
}

func BenchmarkRouteDecode(b *testing.B) {
	g := newGPUBench(b)
	const E, k = 256, 8
	logits, ids, w := g.matrix(1, E), g.matrix(1, k), g.matrix(1, k)
	r := Routing{IDs: ids.Buf, Weights: w.Buf, K: k, Normalize: true}
	g.run(4*(E+2*k), func() error { return g.ks.Route(g.s, r, logits) })
}

func BenchmarkNormRopeDecode(b *testing.B) {
	g := newGPUBench(b)
	const H, KV, dim, n = 16, 2, 256, 4096
	q, k, v := g.matrix(1, 2*H*dim), g.matrix(1, KV*dim), g.matrix(1, KV*dim)
	args := QKNorm{
		Q: q, QHeads: model.Heads{Count: H, Dim: dim, Stride: 2 * dim}, QWeight: g.matrix(1, dim).Buf,
		K: k, KHeads: model.Heads{Count: KV, Dim: dim, Stride: dim}, KWeight: g.matrix(1, dim).Buf,
		V: v, Cache: KVCache{K: g.matrix(n, KV*dim), V: g.matrix(n, KV*dim)},
		Eps: 1e-6, Rope: model.Rope{Dims: 64, Base: 1e7}, Pos: n - 1,
	}
	g.run(4*(2*H*dim+4*KV*dim), func() error { return g.ks.NormRope(g.s, args) })
}

func BenchmarkAddNormDecode(b *testing.B) {
	g := newGPUBench(b)
	const cols = 2048
	a, c, gate, dst := g.matrix(1, cols), g.matrix(1, cols), g.matrix(1, 1), g.matrix(1, cols)
	w := g.matrix(1, cols).Buf
	res := Residual{A: a, B: c, Gate: gate, C: c}
	g.run(4*5*cols, func() error { return g.ks.AddNorm(g.s, a, dst, res, w, 1e-6) })
}
