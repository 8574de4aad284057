package moe_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/moe"
	"github.com/stretchr/testify/require"
)

// matmulReference is x·wᵀ in float64, with Σ|w·x| per output.
func matmulReference(w []float64, x []float32, rows, cols, tokens int) (want, mag []float64) {
	want, mag = make([]float64, tokens*rows), make([]float64, tokens*rows)
	for t := range tokens {
		for r := range rows {
			var s, m float64
			for c := range cols {
				p := w[r*cols+c] * float64(x[t*cols+c])
				s += p
				m += math.Abs(p)
			}
			want[t*rows+r], mag[t*rows+r] = s, m
		}
	}
	return want, mag
}

// runMatMul multiplies on the device and returns dst.
func runMatMul(t *testing.T, c cudatest.Case, k *moe.Kernels, wBytes []byte, typ experts.Type, rows, cols, tokens int, x []float32, off int64, opts ...moe.CallOption) []float32 {
	buf := upload(t, c, append(make([]byte, off), wBytes...))
	m := moe.Matrix{Buf: buf, Off: off, Type: typ, Rows: rows, Cols: cols}
	xb := cudatest.Upload(t, c, x)
	dst := c.Alloc(t, int64(4*tokens*rows))
	scratch := c.Alloc(t, max(moe.MatMulScratch(tokens, m), 1))
	require.NoError(t, k.MatMul(c.Stream, dst, xb, tokens, m, scratch, opts...))
	return cudatest.Download[float32](t, c, dst, tokens*rows)
}

// TestMatMul compares every type's decode and prefill products with the
// float64 product of the dequantized weights: rows that are not a multiple
// of any block's rows, the fewest columns a type takes, a few blocks more
// and 33 blocks (a full warp per row, one lane taking two), one token,
// DecodeTokens, and batches over one and two GEMM tiles.
func TestMatMul(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		for _, typ := range allTypes {
			t.Run(typ.String(), func(t *testing.T) {
				k := kernelsFor(t, c, typ)
				r := rand.New(rand.NewPCG(uint64(typ), 1))
				for _, sh := range []struct{ rows, colBlocks, tokens int }{
					{37, 1, 1}, {5, 3, moe.DecodeTokens}, {3, 33, 2}, {70, 2, moe.DecodeTokens + 1}, {3, 1, 70},
				} {
					cols := sh.colBlocks * minCols(typ)
					t.Run(fmt.Sprintf("%dx%d/T%d", sh.rows, cols, sh.tokens), func(t *testing.T) {
						w := randomWeights(t, r, typ, sh.rows, cols)
						x := randomFloats(r, sh.tokens*cols)
						got := runMatMul(t, c, k, w, typ, sh.rows, cols, sh.tokens, x, 16)
						want, mag := matmulReference(dequantize(t, typ, w, sh.rows, cols), x, sh.rows, cols, sh.tokens)
						check(t, got, want, mag, tolerance(typ, sh.tokens))
					})
				}
			})
		}
	})
}

// TestMatMulAccumulate checks that Accumulate adds to dst on both paths.
func TestMatMulAccumulate(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		typ := experts.TypeQ8_0
		k := kernelsFor(t, c, typ)
		r := rand.New(rand.NewPCG(7, 7))
		for _, tokens := range []int{1, moe.DecodeTokens + 1} {
			rows, cols := 9, 64
			w := randomWeights(t, r, typ, rows, cols)
			x := randomFloats(r, tokens*cols)
			buf := upload(t, c, w)
			m := moe.Matrix{Buf: buf, Type: typ, Rows: rows, Cols: cols}
			dst := cudatest.Upload(t, c, make([]float32, tokens*rows))
			for i := range 2 { // dst starts at 0: once gives w·x, twice 2·w·x
				scratch := c.Alloc(t, max(moe.MatMulScratch(tokens, m), 1))
				require.NoError(t, k.MatMul(c.Stream, dst, cudatest.Upload(t, c, x), tokens, m, scratch, moe.Accumulate()))
				got := cudatest.Download[float32](t, c, dst, tokens*rows)
				want, mag := matmulReference(dequantize(t, typ, w, rows, cols), x, rows, cols, tokens)
				for j := range want {
					want[j] *= float64(i + 1)
					mag[j] *= float64(i + 1)
				}
				check(t, got, want, mag, tolerance(typ, tokens))
			}
		}
	})
}

// A second matrix of another quantized type reuses the first MatMul's
// quantized activations (Prequantized) and gives what it gives alone.
func TestMatMulPrequantized(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		first, second := experts.TypeQ8_0, experts.TypeQ4_K
		k := kernelsFor(t, c, first, second)
		r := rand.New(rand.NewPCG(9, 9))
		const tokens, rows, cols = 3, 11, 256
		x := randomFloats(r, tokens*cols)
		xb := cudatest.Upload(t, c, x)
		m := func(typ experts.Type) (moe.Matrix, []byte) {
			w := randomWeights(t, r, typ, rows, cols)
			return moe.Matrix{Buf: upload(t, c, w), Type: typ, Rows: rows, Cols: cols}, w
		}
		a, _ := m(first)
		b, bw := m(second)
		require.True(t, moe.Quantizes(tokens, a))
		require.False(t, moe.Quantizes(moe.DecodeTokens+1, a), "prefill does not quantize")
		scratch := c.Alloc(t, moe.MatMulScratch(tokens, a))
		dst := c.Alloc(t, 4*tokens*rows)
		require.NoError(t, k.MatMul(c.Stream, dst, xb, tokens, a, scratch))
		before := c.Device.Calls().Launches
		require.NoError(t, k.MatMul(c.Stream, dst, xb, tokens, b, scratch, moe.Prequantized()))
		require.Equal(t, uint64(1), c.Device.Calls().Launches-before, "the GEMV alone")
		got := cudatest.Download[float32](t, c, dst, tokens*rows)
		alone := runMatMul(t, c, k, bw, second, rows, cols, tokens, x, 0)
		require.Equal(t, alone, got)
	})
}

// TestMatMulExtremes runs blocks at the edges of their formats: zero
// activations and weights, -0, the largest f16 scale, subnormal f16 scales
// and MXFP4's smallest and large exponents.
func TestMatMulExtremes(t *testing.T) {
	type extreme struct {
		name string
		typ  experts.Type
		fill func(w []byte, r *rand.Rand) // sets the block scales
		x    func(x []float32)
	}
	f16Scale := func(bits uint16) func(w []byte, r *rand.Rand) {
		return func(w []byte, r *rand.Rand) {
			for b := 0; b < len(w); b += experts.TypeQ8_0.BlockBytes() {
				w[b], w[b+1] = byte(bits), byte(bits>>8)
			}
		}
	}
	mxfp4Exp := func(e byte) func(w []byte, r *rand.Rand) {
		return func(w []byte, r *rand.Rand) {
			for b := 0; b < len(w); b += experts.TypeMXFP4.BlockBytes() {
				w[b] = e
			}
		}
	}
	zeroX := func(x []float32) {
		for i := range x {
			x[i] = float32(math.Copysign(0, -1))
		}
	}
	cases := []extreme{
		{"Q8_0/max-f16-scale", experts.TypeQ8_0, f16Scale(0x7bff), nil},
		{"Q8_0/subnormal-scale", experts.TypeQ8_0, f16Scale(0x0001), nil},
		{"Q8_0/negative-zero-x", experts.TypeQ8_0, nil, zeroX},
		{"Q4_0/zero-scale", experts.TypeQ4_0, f16Scale(0x0000), nil},
		{"Q5_1/subnormal-scale", experts.TypeQ5_1, f16Scale(0x03ff), nil},
		{"MXFP4/e0", experts.TypeMXFP4, mxfp4Exp(0), nil},
		{"MXFP4/e200", experts.TypeMXFP4, mxfp4Exp(200), nil},
		{"F16/negative-zero-x", experts.TypeF16, nil, zeroX},
	}
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		for _, e := range cases {
			t.Run(e.name, func(t *testing.T) {
				k := kernelsFor(t, c, e.typ)
				r := rand.New(rand.NewPCG(3, 3))
				rows, cols := 6, 64
				for _, tokens := range []int{1, moe.DecodeTokens + 1} {
					w := randomWeights(t, r, e.typ, rows, cols)
					if e.fill != nil {
						e.fill(w, r)
					}
					x := randomFloats(r, tokens*cols)
					if e.x != nil {
						e.x(x)
					}
					got := runMatMul(t, c, k, w, e.typ, rows, cols, tokens, x, 0)
					want, mag := matmulReference(dequantize(t, e.typ, w, rows, cols), x, rows, cols, tokens)
					check(t, got, want, mag, tolerance(e.typ, tokens))
				}
			})
		}
	})
}

// TestMatMulErrors checks what MatMul refuses before it queues anything.
func TestMatMulErrors(t *testing.T) {
	dev, err := cuda.NewHost()
	require.NoError(t, err)
	defer dev.Close()
	k, err := moe.Load(context.Background(), dev, moe.WithTypes(experts.TypeQ8_0))
	cudatest.Skip(t, err)
	defer k.Close()
	s, err := dev.NewStream()
	require.NoError(t, err)
	buf, err := dev.Alloc(1 << 12)
	require.NoError(t, err)
	good := moe.Matrix{Buf: buf, Type: experts.TypeQ8_0, Rows: 4, Cols: 64}
	for _, tc := range []struct {
		name    string
		m       moe.Matrix
		tokens  int
		scratch int64
		want    error
	}{
		{"unsupported type", moe.Matrix{Buf: buf, Type: experts.TypeQ8_1, Rows: 4, Cols: 64}, 1, 1024, moe.ErrUnsupported},
		{"not loaded", moe.Matrix{Buf: buf, Type: experts.TypeQ4_0, Rows: 4, Cols: 64}, 1, 1024, moe.ErrUnsupported},
		{"partial block", moe.Matrix{Buf: buf, Type: experts.TypeQ8_0, Rows: 4, Cols: 48}, 1, 1024, moe.ErrShape},
		{"past the buffer", moe.Matrix{Buf: buf, Type: experts.TypeQ8_0, Rows: 1000, Cols: 64}, 1, 1024, moe.ErrShape},
		{"misaligned", moe.Matrix{Buf: buf, Off: 1, Type: experts.TypeQ8_0, Rows: 4, Cols: 64}, 1, 1024, moe.ErrShape},
		{"no tokens", good, 0, 1024, moe.ErrShape},
		{"small scratch", good, 2, 32, moe.ErrScratch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scratch, err := buf.Slice(0, tc.scratch)
			require.NoError(t, err)
			err = k.MatMul(s, buf, buf, tc.tokens, tc.m, scratch)
			require.ErrorIs(t, err, tc.want)
		})
	}
	require.ErrorIs(t, moe.Supported(experts.TypeIQ2_XXS), moe.ErrUnsupported)
	require.NoError(t, k.Close())
	require.ErrorIs(t, k.MatMul(s, buf, buf, 1, good, buf), moe.ErrClosed)
	require.ErrorIs(t, k.Close(), moe.ErrClosed)
}
