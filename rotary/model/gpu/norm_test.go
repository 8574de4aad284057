package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Tolerances of the norms against the CPU backend: the GPU sums squares in
// float in a tree, the CPU in float64 in order, which moves the scale by a few
// float ulps.
const normRel, normAbs = 1e-5, 1e-6

func TestRMSNorm(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, rows := range []int{1, 3, 512} {
			for _, cols := range []int{1, 31, 257, 2048} {
				for _, scale := range []float32{1, 1e15, 1e-15} {
					if rows*cols > 1<<16 {
						continue // the largest batch with narrow rows only
					}
					t.Run(name("%dx%d/%g", rows, cols, scale), func(t *testing.T) {
						x, w := random(r, rows*cols, scale), random(r, cols, 2)
						want := e.cpu.NewTensor(rows, cols)
						require.NoError(t, e.cpu.RMSNorm(want, e.tensor(x, rows, cols), weight(w, 1, cols), 1e-6))

						xd, dst := e.upload(x, rows, cols), e.zeros(rows, cols)
						require.NoError(t, e.ks.RMSNorm(e.s, dst, xd, e.upload(w, 1, cols).Buf, 1e-6))
						assertClose(t, e.read(want), e.download(dst), normRel, normAbs, "out")
						// In place.
						require.NoError(t, e.ks.RMSNorm(e.s, xd, xd, e.upload(w, 1, cols).Buf, 1e-6))
						assertClose(t, e.read(want), e.download(xd), normRel, normAbs, "in place")
					})
				}
			}
		}
	})
}

func TestAddNorm(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, rows := range []int{1, 5} {
			for _, cols := range []int{33, 2048} {
				for _, variant := range []string{"add", "gated", "gated+c", "add+c"} {
					t.Run(name("%dx%d/%s", rows, cols, variant), func(t *testing.T) {
						gated, withC := variant == "gated" || variant == "gated+c", variant == "gated+c" || variant == "add+c"
						a, b, c := random(r, rows*cols, 3), random(r, rows*cols, 3), random(r, rows*cols, 3)
						g, w := random(r, rows*2, 8), random(r, cols, 2)

						// The CPU backend's sequence: AddGated or Add, Add, RMSNorm.
						ct := func(v []float32) model.Tensor { return e.tensor(v, rows, cols) }
						sum := ct(a)
						if gated {
							e.cpu.AddGated(sum, sum, ct(b), e.tensor(g, rows, 2))
						} else {
							e.cpu.Add(sum, sum, ct(b))
						}
						if withC {
							e.cpu.Add(sum, sum, ct(c))
						}
						want := e.cpu.NewTensor(rows, cols)
						require.NoError(t, e.cpu.RMSNorm(want, sum, weight(w, 1, cols), 1e-6))

						res := Residual{A: e.upload(a, rows, cols), B: e.upload(b, rows, cols)}
						if gated {
							res.Gate = e.upload(g, rows, 2)
						}
						if withC {
							res.C = e.upload(c, rows, cols)
						}
						dst := e.zeros(rows, cols)
						require.NoError(t, e.ks.AddNorm(e.s, res.A, dst, res, e.upload(w, 1, cols).Buf, 1e-6))
						assertClose(t, e.read(sum), e.download(res.A), 0, 0, "sum")
						assertClose(t, e.read(want), e.download(dst), normRel, normAbs, "norm")
					})
				}
			}
		}
	})
}

func TestGatedRMSNorm(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, shape := range [][3]int{{1, 128, 128}, {3, 4 * 96, 96}, {2, 64, 32}} {
			rows, cols, n := shape[0], shape[1], shape[2]
			t.Run(name("%dx%d/%d", rows, cols, n), func(t *testing.T) {
				x, z, w := random(r, rows*cols, 2), random(r, rows*cols, 6), random(r, n, 2)
				want := e.cpu.NewTensor(rows, cols)
				require.NoError(t, e.cpu.GatedRMSNorm(want, e.tensor(x, rows, cols), e.tensor(z, rows, cols), weight(w, 1, n), 1e-6))
				xd := e.upload(x, rows, cols)
				require.NoError(t, e.ks.GatedRMSNorm(e.s, xd, xd, e.upload(z, rows, cols), e.upload(w, 1, n).Buf, n, 1e-6))
				assertClose(t, e.read(want), e.download(xd), normRel, normAbs, "out")
			})
		}
	})
}

// Rope angles: the CPU takes cos and sin in float64 of the float32 angle, the
// GPU sincosf; at positions near 2^17 the angle's own rounding is shared, so
// the results stay within a few ulps.
const ropeRel, ropeAbs = 1e-5, 2e-6

func TestNormRope(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, c := range []struct {
			T, H, KV, dim, ropeDims, pos int
			gated, store                 bool
			posAt                        bool // the position read from device memory
		}{
			{1, 4, 2, 64, 64, 0, false, true, false},
			{1, 16, 2, 256, 64, 131071, true, false, false}, // qwen35moe: interleaved gate, partial rope, far position
			{5, 3, 1, 128, 128, 7, false, false, false},
			{9, 2, 2, 80, 32, 1000, true, true, false},
			{2, 2, 0, 96, 96, 3, true, false, false},   // queries only
			{512, 2, 1, 32, 32, 0, false, true, false}, // the largest batch
			{1, 4, 2, 64, 64, 37, false, true, true},
		} {
			t.Run(name("%+v", c), func(t *testing.T) {
				stride := c.dim
				if c.gated {
					stride = 2 * c.dim
				}
				qCols, kvCols := c.H*stride, c.KV*c.dim
				q, k, v := random(r, c.T*qCols, 4), random(r, c.T*max(kvCols, 1), 4), random(r, c.T*max(kvCols, 1), 4)
				qw, kw := random(r, c.dim, 2), random(r, c.dim, 2)
				rope := model.Rope{Dims: c.ropeDims, Base: 1e7}
				qh := model.Heads{Count: c.H, Dim: c.dim, Stride: stride}
				kh := model.Heads{Count: c.KV, Dim: c.dim, Stride: c.dim}

				wantQ := e.tensor(q, c.T, qCols)
				require.NoError(t, e.cpu.NormRope(wantQ, qh, weight(qw, 1, c.dim), 1e-6, rope, c.pos))
				args := QKNorm{Q: e.upload(q, c.T, qCols), QHeads: qh, QWeight: e.upload(qw, 1, c.dim).Buf, Eps: 1e-6, Rope: rope, Pos: c.pos}
				var wantK model.Tensor
				if c.KV > 0 {
					wantK = e.tensor(k, c.T, kvCols)
					require.NoError(t, e.cpu.NormRope(wantK, kh, weight(kw, 1, c.dim), 1e-6, rope, c.pos))
					args.K, args.KHeads, args.KWeight = e.upload(k, c.T, kvCols), kh, e.upload(kw, 1, c.dim).Buf
				}
				rows := c.pos + c.T
				if c.store {
					args.V = e.upload(v, c.T, kvCols)
					args.Cache = KVCache{K: e.zeros(rows, kvCols), V: e.zeros(rows, kvCols)}
				}
				if c.posAt {
					args.Pos, args.PosAt = 0, cudatest.Upload(t, e.c, []int32{int32(c.pos)})
				}
				require.NoError(t, e.ks.NormRope(e.s, args))
				assertClose(t, e.read(wantQ), e.download(args.Q), ropeRel, ropeAbs, "q")
				if c.KV > 0 {
					assertClose(t, e.read(wantK), e.download(args.K), ropeRel, ropeAbs, "k")
				}
				if c.store {
					ck, cv := e.download(args.Cache.K), e.download(args.Cache.V)
					assertClose(t, e.read(wantK), ck[c.pos*kvCols:], ropeRel, ropeAbs, "cached k")
					require.Equal(t, v, cv[c.pos*kvCols:], "cached v")
					require.Equal(t, make([]float32, c.pos*kvCols), ck[:c.pos*kvCols], "rows before pos untouched")
				}
			})
		}
	})
}
