package quant

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

func quantizeTypes() []experts.Type { return typesWhere(CanQuantize) }

// errorBound returns, per element of one block x, how far the dequantized
// value may be from x for type t: half a quantization step (a whole step
// where the format clamps its extreme code), plus what rounding the scale to
// f16 moves the largest code by, plus float slack.
func errorBound(t experts.Type, x []float32) float64 {
	amax := float64(absMax(x))
	lo, hi := minMax(x)
	// f16err is how far v moves when stored as f16 (subnormals included).
	f16err := func(v float64) float64 { return math.Abs(v - float64(Float16ToFloat32(Float32ToFloat16(float32(v))))) }
	const slack = 1e-5
	switch t {
	case experts.TypeF32:
		return 0
	case experts.TypeF16:
		return amax*0x1p-11 + 0x1p-25
	case experts.TypeBF16:
		return amax * 0x1p-8
	case experts.TypeQ8_0, experts.TypeQ8_1:
		d := amax / 127
		return d/2 + 127*f16err(d) + slack*d
	case experts.TypeQ8_K:
		return amax / 127 / 2 * (1 + slack)
	case experts.TypeQ4_0:
		d := amax / 8
		return d + 8*f16err(d) + slack*d
	case experts.TypeQ5_0:
		d := amax / 16
		return d + 16*f16err(d) + slack*d
	case experts.TypeQ4_1, experts.TypeQ5_1:
		levels := 15.0
		if t == experts.TypeQ5_1 {
			levels = 31
		}
		d := float64(hi-lo) / levels
		return d/2 + levels*f16err(d) + f16err(float64(lo)) + slack*amax
	case experts.TypeTQ1_0, experts.TypeTQ2_0, experts.TypeQ2_0:
		return amax/2 + 2*f16err(amax) + slack*amax
	case experts.TypeMXFP4:
		if amax == 0 {
			return 0
		}
		s := math.Ldexp(1, int(math.Floor(math.Log2(amax)))-2)
		return 2 * s // top FP4 step (4→6) is 2s; values past 6s clamp to it, within 2s
	case experts.TypeNVFP4: // the loosest of the four 16-element sub-blocks
		var bound float64
		for s := 0; s < len(x); s += 16 {
			amax := float64(absMax(x[s : s+16]))
			d := 2 * float64(ue4m3HalfToFloat32(float32ToUE4M3(float32(amax/6))))
			bound = math.Max(bound, math.Max(d, amax-6*d)*(1+slack))
		}
		return bound
	}
	panic(t)
}

func TestQuantizeRoundTripError(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, typ := range quantizeTypes() {
		switch typ {
		case experts.TypeQ1_0: // stores signs and a mean magnitude: tested exactly below
			continue
		case experts.TypeQ2_K, experts.TypeQ3_K, experts.TypeQ4_K, experts.TypeQ5_K, experts.TypeQ6_K: // fitted scales: see TestQuantizeKQuants
			continue
		}
		t.Run(typ.String(), func(t *testing.T) {
			bs := typ.BlockSize()
			n := 4096
			for trial := 0; trial < 8; trial++ {
				x := randomActivations(n, rng)
				scale := math.Ldexp(1, rng.IntN(20)-10)
				for i := range x {
					x[i] *= float32(scale)
				}
				if trial == 0 {
					clear(x[:bs]) // an all-zero block
				}
				q := make([]byte, rowBytes(t, typ, n))
				require.NoError(t, Quantize(typ, x, q))
				y := make([]float32, n)
				require.NoError(t, Dequantize(typ, q, y))
				for b := 0; b < n; b += bs {
					bound := errorBound(typ, x[b:b+bs])
					for i := b; i < b+bs; i++ {
						if diff := math.Abs(float64(x[i]) - float64(y[i])); diff > bound {
							t.Fatalf("trial %d element %d: %g became %g, error %g > bound %g", trial, i, x[i], y[i], diff, bound)
						}
					}
				}
			}
		})
	}
}

func TestQuantizeExactValuesSurvive(t *testing.T) {
	// Multiples of a power of two that a format represents exactly must come
	// back unchanged.
	x := make([]float32, 256)
	for i := range x {
		x[i] = float32(int(i%255)-127) / 8 // -127/8 … 127/8: amax 127/8, step 1/8
	}
	for _, typ := range []experts.Type{experts.TypeQ8_0, experts.TypeQ8_1, experts.TypeQ8_K, experts.TypeF16, experts.TypeBF16, experts.TypeF32} {
		q := make([]byte, rowBytes(t, typ, len(x)))
		require.NoError(t, Quantize(typ, x, q))
		y := make([]float32, len(x))
		require.NoError(t, Dequantize(typ, q, y))
		if typ == experts.TypeQ8_0 || typ == experts.TypeQ8_1 {
			// Blocks whose amax is not 127/8 have d = amax/127, not exact in f16.
			for b := 0; b < len(x); b += 32 {
				if absMax(x[b:b+32]) == 127.0/8 {
					require.Equal(t, x[b:b+32], y[b:b+32], "%v block %d", typ, b/32)
				}
			}
			continue
		}
		require.Equal(t, x, y, "%v", typ)
	}
}

func TestQuantizeHandWorked(t *testing.T) {
	// Q4_0: the element of largest magnitude is -4, so d = -4/-8 = 0.5 and it
	// gets code 0; 1.3 → trunc(1.3/0.5 + 8.5) = 11; 4 → 16 clamped to 15.
	x := make([]float32, 32)
	x[3], x[5], x[20] = -4, 1.3, 4
	q := make([]byte, 18)
	require.NoError(t, Quantize(experts.TypeQ4_0, x, q))
	require.Equal(t, uint16(f16Half), binary.LittleEndian.Uint16(q))
	require.Equal(t, byte(0x80), q[2+3], "element 3 code 0, element 19 code 8 (zero)")
	require.Equal(t, byte(0x8b), q[2+5], "element 5 code 11")
	require.Equal(t, byte(0xf8), q[2+4], "element 20 code 15 (clamped)")

	// Q8_K: max = 2 at index 7, so iscale = -127/2 and d = -2/127; 1 → -64
	// (-63.5 rounded half to even), -2 → 127.
	x = make([]float32, 256)
	x[7], x[8], x[9] = 2, 1, -2
	q = make([]byte, 292)
	require.NoError(t, Quantize(experts.TypeQ8_K, x, q))
	require.Equal(t, float32(1/(-127.0/2)), math.Float32frombits(binary.LittleEndian.Uint32(q)))
	require.Equal(t, []byte{0x81, 0xc0, 0x7f}, q[4+7:4+10]) // -127, -64, 127
	require.Equal(t, int16(-127-64+127), int16(binary.LittleEndian.Uint16(q[260:])), "bsums[0]")

	// Q1_0: d is the mean magnitude, bits are the signs (zero counts as positive).
	x = make([]float32, 128)
	for i := range x {
		x[i] = float32(i%4) - 1.5 // -1.5, -0.5, 0.5, 1.5: mean magnitude 1
	}
	x[126] = 0
	q = make([]byte, 18)
	require.NoError(t, Quantize(experts.TypeQ1_0, x, q))
	require.Equal(t, Float32ToFloat16(float32(126.0/128+1.5/128)), binary.LittleEndian.Uint16(q), "mean of |x| with one 1.5 replaced by 0")
	require.Equal(t, byte(0xcc), q[2], "elements 2, 3, 6, 7 positive")
	require.Equal(t, byte(0xcc|0x40), q[17], "element 126 (zero) positive")
}

// TestQuantizeActivationsRounding pins the two places where ggml's x86
// activation quantizer and its reference quantizer differ.
func TestQuantizeActivationsRounding(t *testing.T) {
	x := make([]float32, 32)
	x[0], x[1], x[2] = 127, 2.5, -2.5 // amax 127: d = 1, and 2.5 is a tie
	ref := make([]byte, 34)
	act := make([]byte, 34)
	require.NoError(t, Quantize(experts.TypeQ8_0, x, ref))
	require.NoError(t, QuantizeActivations(experts.TypeQ8_0, x, act))
	require.Equal(t, []byte{127, 3, 0xfd}, ref[2:5], "reference: ties away from zero")
	require.Equal(t, []byte{127, 2, 0xfe}, act[2:5], "x86: ties to even")

	// With amax = 0.3, 1/(0.3/127) and 127/0.3 differ in the last bit. Sweep
	// values within a few ulps of the rounding midpoints, where that moves
	// the result, and check both quantizers against their formulas.
	amax := float32(0.3)
	idRef, idX86 := 1/(amax/127), 127/amax
	require.NotEqual(t, idRef, idX86, "the example needs scales that differ")
	var differs int
	for k := 0; k < 120; k++ {
		mid := (float32(k) + 0.5) / idX86
		x[0] = amax
		for j := 1; j < 32; j++ {
			x[j] = math.Float32frombits(math.Float32bits(mid) + uint32(j) - 16)
		}
		require.NoError(t, Quantize(experts.TypeQ8_0, x, ref))
		require.NoError(t, QuantizeActivations(experts.TypeQ8_0, x, act))
		for j, v := range x {
			wantRef := int8(math.Round(float64(v * idRef)))
			wantX86 := int8(math.RoundToEven(float64(v * idX86)))
			require.Equal(t, wantRef, int8(ref[2+j]), "reference, %g", v)
			require.Equal(t, wantX86, int8(act[2+j]), "x86, %g", v)
			if wantRef != wantX86 {
				differs++
			}
		}
	}
	require.NotZero(t, differs, "the sweep never hit a value where the quantizers differ")

	rng := rand.New(rand.NewPCG(31, 32))
	// Types without an x86 variant are quantized by the reference.
	for _, typ := range []experts.Type{experts.TypeQ8_K, experts.TypeF16, experts.TypeBF16, experts.TypeF32} {
		x := randomActivations(256, rng)
		r, a := make([]byte, rowBytes(t, typ, 256)), make([]byte, rowBytes(t, typ, 256))
		require.NoError(t, Quantize(typ, x, r))
		require.NoError(t, QuantizeActivations(typ, x, a))
		require.Equal(t, r, a, "%v", typ)
	}
}

func TestQuantizeQ8Sums(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	x := randomActivations(512, rng)
	for _, quantize := range []func(experts.Type, []float32, []byte) error{Quantize, QuantizeActivations} {
		q1 := make([]byte, 16*36)
		require.NoError(t, quantize(experts.TypeQ8_1, x, q1))
		for b := 0; b < 16; b++ {
			blk := q1[36*b:]
			var sum int
			for _, v := range blk[4:36] {
				sum += int(int8(v))
			}
			d := absMax(x[32*b:32*b+32]) / 127 // the scale before it is rounded to f16
			require.Equal(t, Float32ToFloat16(float32(sum)*d), binary.LittleEndian.Uint16(blk[2:]), "Q8_1 block %d: s = d·Σq", b)
		}
		qk := make([]byte, 2*292)
		require.NoError(t, quantize(experts.TypeQ8_K, x, qk))
		for b := 0; b < 2; b++ {
			blk := qk[292*b:]
			for g := 0; g < 16; g++ {
				var sum int
				for _, v := range blk[4+16*g : 20+16*g] {
					sum += int(int8(v))
				}
				require.Equal(t, int16(sum), int16(binary.LittleEndian.Uint16(blk[260+2*g:])), "Q8_K block %d bsum %d", b, g)
			}
		}
	}
}

func TestQuantizeErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    experts.Type
		n, dst int
		target error
	}{
		{"unknown type", experts.Type(200), 32, 34, experts.ErrUnknownType},
		{"no quantizer", experts.TypeIQ2_XS, 256, 74, experts.ErrUnsupportedType},
		{"partial block", experts.TypeQ8_0, 33, 34, ErrQuantSize},
		{"short destination", experts.TypeQ8_0, 64, 67, ErrQuantSize},
		{"long destination", experts.TypeQ8_K, 256, 293, ErrQuantSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, quantize := range []func(experts.Type, []float32, []byte) error{Quantize, QuantizeActivations} {
				err := quantize(tc.typ, make([]float32, tc.n), make([]byte, tc.dst))
				require.Error(t, err)
				require.True(t, errors.Is(err, tc.target), "%v", err)
			}
		})
	}
	require.True(t, CanQuantize(experts.TypeQ8_K))
	require.False(t, CanQuantize(experts.TypeIQ2_XS))
}

// TestQuantizeKQuants checks the K-quant reference quantizers by their error
// on Gaussian data: relative RMS bounds about 1.3 times what they achieve
// (0.29, 0.15, 0.072, 0.036, 0.018 for Q2_K to Q6_K), so a broken scale
// search or packing fails. No oracle covers them bit for bit: the oracle's
// K-quant files come from F32 sources that are not shipped.
func TestQuantizeKQuants(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	maxRelRMS := map[experts.Type]float64{experts.TypeQ2_K: 0.38, experts.TypeQ3_K: 0.2, experts.TypeQ4_K: 0.093, experts.TypeQ5_K: 0.047, experts.TypeQ6_K: 0.023}
	for _, typ := range []experts.Type{experts.TypeQ2_K, experts.TypeQ3_K, experts.TypeQ4_K, experts.TypeQ5_K, experts.TypeQ6_K} {
		t.Run(typ.String(), func(t *testing.T) {
			const n = 256 * 64
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			clear(x[:256]) // an all-zero super-block
			q := make([]byte, rowBytes(t, typ, n))
			require.NoError(t, Quantize(typ, x, q))
			y := make([]float32, n)
			require.NoError(t, Dequantize(typ, q, y))
			require.Equal(t, make([]float32, 256), y[:256], "zeros stay zeros")
			var se, ss float64
			for i := range x {
				d := float64(x[i] - y[i])
				se += d * d
				ss += float64(x[i]) * float64(x[i])
			}
			rel := math.Sqrt(se / ss)
			t.Logf("relative RMS error %.4f", rel)
			require.Less(t, rel, maxRelRMS[typ])
		})
	}
}

// TestQuantizeHostileInput feeds NaN, infinities, huge and subnormal values
// to every quantizer: the output is garbage in, garbage out, but nothing may
// panic or hang.
func TestQuantizeHostileInput(t *testing.T) {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32, 1e-45, -1e-40, 0}
	rng := rand.New(rand.NewPCG(71, 72))
	for _, typ := range quantizeTypes() {
		for trial := 0; trial < 20; trial++ {
			x := randomActivations(512, rng)
			for i := range x {
				if rng.IntN(4) == 0 {
					x[i] = specials[rng.IntN(len(specials))]
				}
			}
			q := make([]byte, rowBytes(t, typ, len(x)))
			require.NoError(t, Quantize(typ, x, q), "%v", typ)
			require.NoError(t, QuantizeActivations(typ, x, q), "%v", typ)
			require.NoError(t, Dequantize(typ, q, x), "%v", typ)
		}
	}
}
