package gpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/model"
)

// TestBadArguments checks that each wrapper rejects arguments that do not fit
// together before anything is queued. It needs no emulator: a zero Kernels
// would fail any launch that got through.
func TestBadArguments(t *testing.T) {
	dev, err := cuda.NewHost()
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	s, err := dev.NewStream()
	require.NoError(t, err)
	mat := func(rows, cols int) Matrix {
		b, err := dev.Alloc(4 * int64(rows*cols))
		require.NoError(t, err)
		return Matrix{Buf: b, Rows: rows, Cols: cols}
	}
	ks := &Kernels{}
	x, w := mat(2, 64), mat(1, 64)
	heads := model.Heads{Count: 1, Dim: 64, Stride: 64}
	cache := KVCache{K: mat(8, 64), V: mat(8, 64)}
	for _, c := range []struct {
		name string
		err  error
		call func() error
	}{
		{"matrix past its buffer", ErrShape, func() error { return ks.RMSNorm(s, x, Matrix{Buf: x.Buf, Rows: 3, Cols: 64}, w.Buf, 1e-6) }},
		{"empty matrix", ErrShape, func() error { return ks.Add(s, x, Matrix{Buf: x.Buf}, x) }},
		{"no buffer", ErrShape, func() error { return ks.SwiGLU(s, x, x, Matrix{Rows: 2, Cols: 64}) }},
		{"short weight", ErrShape, func() error { return ks.RMSNorm(s, x, x, mat(1, 63).Buf, 1e-6) }},
		{"shapes differ", ErrShape, func() error { return ks.Add(s, x, x, mat(1, 128)) }},
		{"gate rows", ErrShape, func() error { return ks.AddGated(s, x, x, x, mat(1, 1)) }},
		{"residual gate rows", ErrShape, func() error {
			return ks.AddNorm(s, x, mat(2, 64), Residual{A: x, B: x, Gate: mat(3, 1)}, w.Buf, 1e-6)
		}},
		{"heads outside rows", ErrShape, func() error {
			return ks.NormRope(s, QKNorm{Q: x, QHeads: model.Heads{Count: 2, Dim: 64, Stride: 64}, QWeight: w.Buf, Rope: model.Rope{Dims: 64}})
		}},
		{"odd rope", ErrShape, func() error {
			return ks.NormRope(s, QKNorm{Q: x, QHeads: heads, QWeight: w.Buf, Rope: model.Rope{Dims: 63}})
		}},
		{"cache overflow", ErrShape, func() error {
			return ks.NormRope(s, QKNorm{Q: x, QHeads: heads, QWeight: w.Buf, K: x, KHeads: heads, KWeight: w.Buf,
				V: x, Cache: cache, Rope: model.Rope{Dims: 64}, Pos: 7})
		}},
		{"heads over KV heads", ErrShape, func() error {
			return ks.Attend(s, x, Attention{Q: x, QHeads: heads, KVHeads: 2, Cache: cache})
		}},
		{"head too large", ErrShape, func() error {
			big := mat(1, 2*MaxHeadDim)
			return ks.Attend(s, big, Attention{Q: big, QHeads: model.Heads{Count: 1, Dim: 2 * MaxHeadDim, Stride: 2 * MaxHeadDim},
				KVHeads: 1, Cache: KVCache{K: big, V: big}})
		}},
		{"no workspace", ErrShape, func() error {
			return ks.Attend(s, x, Attention{Q: x, QHeads: heads, KVHeads: 1, Cache: cache, Pos: 6, SplitLen: 4})
		}},
		{"wide conv", ErrShape, func() error { return ks.ConvSiLU(s, x, x, mat(8, 64), mat(64, 9)) }},
		{"conv state", ErrShape, func() error { return ks.ConvSiLU(s, x, x, mat(2, 64), mat(64, 4)) }},
		{"delta head", ErrShape, func() error { return ks.DeltaNet(s, x, DeltaNet{KHeads: 1, VHeads: 1, HeadDim: 48}) }},
		{"delta heads", ErrShape, func() error { return ks.DeltaNet(s, x, DeltaNet{KHeads: 2, VHeads: 3, HeadDim: 32}) }},
		{"delta alpha", ErrShape, func() error {
			return ks.DeltaNet(s, mat(2, 32), DeltaNet{QKV: mat(2, 96), Alpha: mat(2, 2), Beta: mat(2, 1), State: mat(32, 32),
				DTBias: w.Buf, A: w.Buf, KHeads: 1, VHeads: 1, HeadDim: 32})
		}},
		{"delta Z", ErrShape, func() error {
			return ks.DeltaNet(s, mat(2, 32), DeltaNet{QKV: mat(2, 96), Alpha: mat(2, 1), Beta: mat(2, 1), State: mat(32, 32),
				DTBias: w.Buf, A: w.Buf, KHeads: 1, VHeads: 1, HeadDim: 32, Z: mat(1, 32), NormWeight: w.Buf})
		}},
		{"top k over experts", ErrShape, func() error {
			return ks.Route(s, Routing{IDs: x.Buf, Weights: x.Buf, K: 65}, x)
		}},
		{"short ids", ErrShape, func() error {
			return ks.Route(s, Routing{IDs: mat(1, 3).Buf, Weights: x.Buf, K: 2}, x)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			assert.ErrorIs(t, err, c.err)
			assert.Regexp(t, "^gpu: ", err.Error())
		})
	}
}
