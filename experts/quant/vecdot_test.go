package quant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

// randomWeights returns nblocks random but well-formed blocks of type t:
// random quants, scales set to modest finite values.
func randomWeights(t experts.Type, nblocks int, rng *rand.Rand) []byte {
	bs := t.BlockBytes()
	b := make([]byte, nblocks*bs)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	scale := func() uint16 { return Float32ToFloat16(float32(0.002 + 0.05*rng.Float64())) }
	signedScale := func() uint16 {
		s := scale()
		if rng.IntN(2) == 0 {
			s |= 0x8000
		}
		return s
	}
	for i := 0; i < nblocks; i++ {
		blk := b[i*bs : (i+1)*bs]
		put := func(off int, v uint16) { binary.LittleEndian.PutUint16(blk[off:], v) }
		switch t {
		case experts.TypeF32:
			binary.LittleEndian.PutUint32(blk, math.Float32bits(float32(rng.NormFloat64())))
		case experts.TypeF16:
			put(0, Float32ToFloat16(float32(rng.NormFloat64())))
		case experts.TypeBF16:
			put(0, Float32ToBF16(float32(rng.NormFloat64())))
		case experts.TypeQ4_0, experts.TypeQ5_0, experts.TypeQ8_0, experts.TypeIQ4_NL, experts.TypeQ1_0, experts.TypeQ2_0, experts.TypeIQ4_XS:
			put(0, signedScale())
		case experts.TypeQ4_1, experts.TypeQ5_1:
			put(0, scale())
			put(2, signedScale())
		case experts.TypeQ2_K:
			put(80, scale())
			put(82, scale())
		case experts.TypeQ3_K:
			put(108, signedScale())
		case experts.TypeQ4_K, experts.TypeQ5_K:
			put(0, scale())
			put(2, scale())
		case experts.TypeQ6_K:
			put(208, signedScale())
		case experts.TypeTQ1_0:
			put(52, scale())
			for j := 0; j < 52; j++ { // valid packings only: 243 trits combinations
				blk[j] = tq1Pack(byte(rng.IntN(243)))
			}
		case experts.TypeTQ2_0:
			put(64, scale())
		case experts.TypeMXFP4:
			blk[0] = byte(110 + rng.IntN(20))
		case experts.TypeNVFP4:
			for s := 0; s < 4; s++ {
				blk[s] = byte(rng.IntN(0x7f))
			}
		default:
			panic(fmt.Sprintf("randomWeights: %v", t))
		}
	}
	return b
}

func randomActivations(n int, rng *rand.Rand) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		if rng.IntN(50) == 0 { // outliers, as real activations have
			x[i] *= 20
		}
	}
	return x
}

func dotTypes() []experts.Type { return typesWhere(CanVecDot) }

// typesWhere lists, in id order, the known types for which has is true
// (ggml's ids are below 256).
func typesWhere(has func(experts.Type) bool) []experts.Type {
	var ts []experts.Type
	for t := range experts.Type(256) {
		if t.Known() && has(t) {
			ts = append(ts, t)
		}
	}
	return ts
}

func TestVecDotTypeMatchesGGML(t *testing.T) {
	want := map[experts.Type]experts.Type{
		experts.TypeF32: experts.TypeF32, experts.TypeF16: experts.TypeF16, experts.TypeBF16: experts.TypeBF16,
		experts.TypeQ4_0: experts.TypeQ8_0, experts.TypeQ5_0: experts.TypeQ8_0, experts.TypeQ8_0: experts.TypeQ8_0, experts.TypeIQ4_NL: experts.TypeQ8_0, experts.TypeMXFP4: experts.TypeQ8_0, experts.TypeNVFP4: experts.TypeQ8_0,
		experts.TypeQ1_0: experts.TypeQ8_0, experts.TypeQ2_0: experts.TypeQ8_0,
		experts.TypeQ4_1: experts.TypeQ8_1, experts.TypeQ5_1: experts.TypeQ8_1, experts.TypeQ8_1: experts.TypeQ8_1,
		experts.TypeQ2_K: experts.TypeQ8_K, experts.TypeQ3_K: experts.TypeQ8_K, experts.TypeQ4_K: experts.TypeQ8_K, experts.TypeQ5_K: experts.TypeQ8_K, experts.TypeQ6_K: experts.TypeQ8_K,
		experts.TypeIQ4_XS: experts.TypeQ8_K, experts.TypeIQ2_XXS: experts.TypeQ8_K, experts.TypeIQ1_M: experts.TypeQ8_K, experts.TypeTQ1_0: experts.TypeQ8_K, experts.TypeTQ2_0: experts.TypeQ8_K,
		experts.TypeQ8_K: experts.TypeF32, experts.TypeI32: experts.TypeF32,
	}
	for typ, vt := range want {
		require.Equal(t, vt, VecDotType(typ), "%v", typ)
	}
	for _, typ := range dotTypes() {
		require.True(t, CanQuantize(VecDotType(typ)), "%v: activations %v cannot be quantized", typ, VecDotType(typ))
		require.Zero(t, typ.BlockSize()%VecDotType(typ).BlockSize(), "%v", typ)
	}
}

// TestVecDotAgreesWithFloatDot checks every kernel against float arithmetic:
// VecDot(w, q(x)) must equal Dequantize(w)·Dequantize(q(x)) to float32
// rounding, and differ from Dequantize(w)·x by no more than the activation
// quantization error allows.
func TestVecDotAgreesWithFloatDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, typ := range dotTypes() {
		t.Run(typ.String(), func(t *testing.T) {
			at := VecDotType(typ)
			n := 1024
			for n%typ.BlockSize() != 0 || n%at.BlockSize() != 0 {
				n += 256
			}
			for trial := 0; trial < 20; trial++ {
				w := randomWeights(typ, n/typ.BlockSize(), rng)
				x := randomActivations(n, rng)
				act := make([]byte, rowBytes(t, at, n))
				require.NoError(t, QuantizeActivations(at, x, act))

				wf := make([]float32, n)
				require.NoError(t, Dequantize(typ, w, wf))
				xq := make([]float32, n)
				require.NoError(t, Dequantize(at, act, xq))

				var exact, quantized, magnitude, actErr float64
				step := activationSteps(at, x)
				for i := range wf {
					exact += float64(wf[i]) * float64(x[i])
					quantized += float64(wf[i]) * float64(xq[i])
					magnitude += math.Abs(float64(wf[i]) * float64(xq[i]))
					actErr += math.Abs(float64(wf[i])) * step[i]
				}
				if at == experts.TypeQ8_1 {
					// Q4_1/Q5_1 apply their offset m through s = d·Σq,
					// which Q8_1 stores as f16: allow its rounding.
					for b := 0; b < n/32; b++ {
						m := float64(Float16ToFloat32(binary.LittleEndian.Uint16(w[b*typ.BlockBytes()+2:])))
						s := float64(Float16ToFloat32(binary.LittleEndian.Uint16(act[36*b+2:])))
						magnitude += math.Abs(m*s) * 0x1p-11 / 2e-6
					}
				}
				got := VecDot(typ, n, w, act)
				require.InDelta(t, quantized, float64(got), 2e-6*magnitude+1e-30,
					"trial %d: kernel disagrees with the dot of dequantized values", trial)
				require.InDelta(t, exact, float64(got), actErr+2e-6*magnitude,
					"trial %d: more than the activation quantization error", trial)

				checked, err := VecDotChecked(typ, n, w, act)
				require.NoError(t, err)
				require.Equal(t, math.Float32bits(got), math.Float32bits(checked))
			}
		})
	}
}

func rowBytes(t testing.TB, typ experts.Type, n int) int {
	t.Helper()
	size, err := typ.RowBytes(uint64(n))
	require.NoError(t, err)
	return int(size)
}

// activationSteps bounds |x - dequantized activation| per element: half a
// quantization step, plus for f16 scales the scale's own rounding (at most
// 2⁻¹¹ relative, times |q| ≤ 127), plus float slack.
func activationSteps(at experts.Type, x []float32) []float64 {
	steps := make([]float64, len(x))
	switch at {
	case experts.TypeF32:
	case experts.TypeF16:
		for i, v := range x {
			steps[i] = math.Abs(float64(v)) * 0x1p-11
		}
	case experts.TypeBF16:
		for i, v := range x {
			steps[i] = math.Abs(float64(v)) * 0x1p-8
		}
	default:
		bs := at.BlockSize()
		for b := 0; b < len(x); b += bs {
			amax := float64(absMax(x[b : b+bs]))
			d := amax / 127
			e := d*0.5*(1+1e-6) + 127*d*0x1p-11
			if at == experts.TypeQ8_K {
				e = d * 0.5 * (1 + 1e-6)
			}
			for i := b; i < b+bs; i++ {
				steps[i] = e
			}
		}
	}
	return steps
}

// TestVecDotMatchesScalarReference compares every kernel bit for bit with a
// plain element-by-element implementation of the same arithmetic (see
// refVecDot): the integer part of each block is exact, so any difference is
// a bug in the kernels' unpacking.
func TestVecDotMatchesScalarReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, typ := range dotTypes() {
		t.Run(typ.String(), func(t *testing.T) {
			at := VecDotType(typ)
			n := 2048
			for trial := 0; trial < 10; trial++ {
				w := randomWeights(typ, n/typ.BlockSize(), rng)
				act := make([]byte, rowBytes(t, at, n))
				require.NoError(t, QuantizeActivations(at, randomActivations(n, rng), act))
				got := VecDot(typ, n, w, act)
				want := refVecDot(t, typ, n, w, act)
				require.Equal(t, math.Float32bits(want), math.Float32bits(got), "trial %d: got %g, reference %g", trial, got, want)
			}
		})
	}
}

func TestVecDotCheckedRejectsBadArguments(t *testing.T) {
	w := make([]byte, 18*2)
	act := make([]byte, 34*2)
	_, err := VecDotChecked(experts.TypeQ4_0, 64, w, act)
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		typ    experts.Type
		n      int
		w, act []byte
		target error
	}{
		{"unknown type", experts.Type(99), 64, w, act, experts.ErrUnknownType},
		{"no kernel", experts.TypeIQ2_XXS, 256, make([]byte, 66), make([]byte, 292), experts.ErrUnsupportedType},
		{"partial block", experts.TypeQ4_0, 48, w, act, ErrQuantSize},
		{"negative n", experts.TypeQ4_0, -32, w, act, ErrQuantSize},
		{"short weights", experts.TypeQ4_0, 64, w[:35], act, ErrQuantSize},
		{"long activations", experts.TypeQ4_0, 64, w, append(act, 0), ErrQuantSize},
		{"activations of the wrong type", experts.TypeQ4_0, 64, w, make([]byte, 36*2), ErrQuantSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VecDotChecked(tc.typ, tc.n, tc.w, tc.act)
			require.Error(t, err)
			require.True(t, errors.Is(err, tc.target), "%v", err)
		})
	}
}

func TestVecDotPanicsOnShortInput(t *testing.T) {
	require.Panics(t, func() { VecDot(experts.TypeQ4_0, 64, make([]byte, 18), make([]byte, 68)) })
	require.Panics(t, func() { VecDot(experts.TypeIQ2_XXS, 256, make([]byte, 66), make([]byte, 292)) })
}

func TestVecDotDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, typ := range dotTypes() {
		n := 512
		w := randomWeights(typ, n/typ.BlockSize(), rng)
		act := make([]byte, rowBytes(t, VecDotType(typ), n))
		require.NoError(t, QuantizeActivations(VecDotType(typ), randomActivations(n, rng), act))
		allocs := testing.AllocsPerRun(10, func() { VecDot(typ, n, w, act) })
		require.Zero(t, allocs, "%v", typ)
	}
}

// TestSwarDot8 checks the packed 4-products-per-multiply core against plain
// arithmetic at the extremes its lane arithmetic must survive (codes up to
// 63 away from their offset, activations of -128 and 127) and at random.
func TestSwarDot8(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	check := func(c, y [8]byte, off int) {
		want := int32(0)
		for i := range c {
			want += (int32(c[i]) - int32(off)) * int32(int8(y[i]))
		}
		got := swarDot8(binary.LittleEndian.Uint64(c[:]), binary.LittleEndian.Uint64(y[:]), uint64(off)*swarLane)
		require.Equal(t, want, got, "c=%v y=%v off=%d", c, y, off)
	}
	fill := func(v byte) (a [8]byte) {
		for i := range a {
			a[i] = v
		}
		return a
	}
	for _, off := range []int{0, 1, 4, 8, 16, 32} {
		hi := byte(off + 63)
		if off == 0 {
			hi = 63
		}
		for _, cv := range []byte{0, byte(off), hi} {
			for _, yv := range []byte{0x80, 0x7f, 0, 1, 0xff} {
				check(fill(cv), fill(yv), off)
			}
		}
		for range 2000 {
			var c, y [8]byte
			for i := range c {
				c[i] = byte(off) + byte(rng.IntN(127)) - 63
				if int(c[i]) < 0 || c[i] > byte(off+63) {
					c[i] = byte(off)
				}
				y[i] = byte(rng.Uint32())
			}
			check(c, y, off)
		}
	}
}

func TestMatVec(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const n, rows = 512, 7
	for _, typ := range []experts.Type{experts.TypeQ4_K, experts.TypeQ8_0, experts.TypeF16} {
		at := VecDotType(typ)
		row := rowBytes(t, typ, n)
		w := randomWeights(typ, rows*n/typ.BlockSize(), rng)
		act := make([]byte, rowBytes(t, at, n))
		require.NoError(t, QuantizeActivations(at, randomActivations(n, rng), act))
		out := make([]float32, rows)
		require.NoError(t, MatVec(typ, n, w, act, out))
		for r := range out {
			require.Equal(t, VecDot(typ, n, w[r*row:(r+1)*row], act), out[r], "%v row %d", typ, r)
		}
		require.ErrorIs(t, MatVec(typ, n, w[:len(w)-1], act, out), ErrQuantSize)
		require.ErrorIs(t, MatVec(typ, n, w, act[1:], out), ErrQuantSize)
		require.ErrorIs(t, MatVec(typ, n, w, act, out[:rows-1]), ErrQuantSize)
		require.ErrorIs(t, MatVec(typ, n+1, w, act, out), ErrQuantSize)
		require.NoError(t, MatVec(typ, n, nil, nil, nil), "no rows, nothing to do")
	}
	require.ErrorIs(t, MatVec(experts.TypeIQ2_XXS, 256, make([]byte, 66), make([]byte, 292), make([]float32, 1)), experts.ErrUnsupportedType)
}

func TestSpreadBits(t *testing.T) {
	for b := 0; b < 256; b++ {
		got := spreadBits8(byte(b))
		for k := 0; k < 8; k++ {
			require.Equal(t, uint64(b>>k&1), got>>(8*k)&0xff, "bit %d of %#02x", k, b)
		}
	}
	for p := 0; p < 1<<16; p += 7 {
		got := spreadPairs8(uint16(p))
		for k := 0; k < 8; k++ {
			if want := uint64(p >> (2 * k) & 3); got>>(8*k)&0xff != want {
				t.Fatalf("pair %d of %#04x: got %d, want %d", k, p, got>>(8*k)&0xff, want)
			}
		}
	}
}
