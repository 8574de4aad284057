package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// f16Value computes a binary16 value from its fields, independently of
// Float16ToFloat32: ±man·2⁻²⁴ for subnormals, ±(1024+man)·2^(exp-25) else.
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, man := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(man, -24)
	case 0x1f:
		if man == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1024+man, exp-25)
}

func TestFloat16ToFloat32AllValues(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got, want := Float16ToFloat32(h), f16Value(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) || math.Signbit(float64(got)) != (h&0x8000 != 0) {
				t.Fatalf("%#04x: got %g, want NaN of the same sign", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("%#04x: got %g, want %g", h, got, want)
		}
	}
}

// TestFloat32ToFloat16Rounding checks exact values, the midpoint between
// every pair of neighbouring binary16 values (ties go to the even one) and
// the floats just either side of it, across subnormals, normals and the
// overflow threshold.
func TestFloat32ToFloat16Rounding(t *testing.T) {
	for i := 0; i < 0x7c00; i++ {
		h := uint16(i)
		for _, sign := range []uint16{0, 0x8000} {
			f := Float16ToFloat32(h | sign)
			expectF16(t, h|sign, f, "exact value")

			// Between h and the next value up (Inf after 65504).
			next := h + 1
			lo, hi := f16Value(h), f16Value(next)
			if next == 0x7c00 {
				hi = 65536 // where the next value would be; the tie rounds to Inf
			}
			mid := float32((lo + hi) / 2) // needs 12 significant bits: exact
			even := h
			if h&1 != 0 {
				even = next
			}
			neg := func(v float32) float32 {
				if sign != 0 {
					return -v
				}
				return v
			}
			expectF16(t, even|sign, neg(mid), "midpoint")
			expectF16(t, h|sign, neg(math.Nextafter32(mid, 0)), "below the midpoint")
			expectF16(t, next|sign, neg(math.Nextafter32(mid, float32(math.Inf(1)))), "above the midpoint")
		}
	}
	require.Equal(t, uint16(0x7c00), Float32ToFloat16(float32(math.Inf(1))))
	require.Equal(t, uint16(0xfc00), Float32ToFloat16(float32(math.Inf(-1))))
	require.Equal(t, uint16(0x7c00), Float32ToFloat16(1e30))
	require.Equal(t, uint16(0x0000), Float32ToFloat16(1e-30)) // below half the smallest subnormal
	require.Equal(t, uint16(0x8000), Float32ToFloat16(-1e-30))
	require.Equal(t, uint16(0x7e00), Float32ToFloat16(float32(math.NaN())))
	require.Equal(t, uint16(0xfe00), Float32ToFloat16(math.Float32frombits(0xffc00001)))
}

func expectF16(t *testing.T, want uint16, f float32, what string) {
	t.Helper()
	if got := Float32ToFloat16(f); got != want {
		t.Fatalf("%s %g: got %#04x, want %#04x", what, f, got, want)
	}
}

// bf16Nearest rounds a float32 to bfloat16 from first principles: the two
// candidates bracketing f, the nearer one, ties to the even one.
func bf16Nearest(f float32) uint16 {
	bits := math.Float32bits(f)
	lo := uint16(bits >> 16)
	rest := bits & 0xffff
	switch {
	case rest < 0x8000:
		return lo
	case rest > 0x8000:
		return lo + 1
	case lo&1 == 0:
		return lo
	default:
		return lo + 1
	}
}

func TestBF16(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToFloat32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("%#04x widens to %#08x", h, math.Float32bits(f))
		}
		if !math.IsNaN(float64(f)) && Float32ToBF16(f) != h {
			t.Fatalf("%#04x does not round-trip: %#04x", h, Float32ToBF16(f))
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 1 << 18 {
		f := math.Float32frombits(rng.Uint32())
		got := Float32ToBF16(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToFloat32(got))) || got&0x40 == 0 {
				t.Fatalf("NaN %#08x became %#04x, not a quiet NaN", math.Float32bits(f), got)
			}
			continue
		}
		if want := bf16Nearest(f); got != want {
			t.Fatalf("%g (%#08x): got %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
	require.Equal(t, uint16(0x0001), Float32ToBF16(math.Float32frombits(0x00010000)), "subnormals are kept")
	require.Equal(t, uint16(0x7f80), Float32ToBF16(math.MaxFloat32), "the largest float rounds to Inf")
}

func TestE8M0Half(t *testing.T) {
	for e := 0; e < 256; e++ {
		require.Equal(t, math.Ldexp(1, e-128), float64(e8m0HalfToFloat32(uint8(e))), "e=%d", e)
	}
}

func TestUE4M3(t *testing.T) {
	// A few codes worked out by hand (halved, as stored for the doubled FP4 table).
	for code, want := range map[uint8]float32{
		0x00: 0, 0x7f: 0, // zero and NaN
		0x01: 1.0 / 512 / 2,   // smallest subnormal, 2⁻⁹
		0x07: 7.0 / 512 / 2,   // largest subnormal
		0x08: 1.0 / 64 / 2,    // smallest normal, 2⁻⁶
		0x38: 0.5,             // 1.0
		0x3c: 1.5 * 0.5,       // 1.5
		0x7e: 448 * 0.5,       // largest finite, 1.75·2⁸
		0xb8: 0.5,             // bit 7 is ignored
		0xff: 1.875 * 128,     // exponent 15, mantissa 7: no NaN handling beyond 0x7f
		0x41: 1.125 * 2 * 0.5, // 2.25
	} {
		require.Equal(t, want, ue4m3HalfToFloat32(code), "%#02x", code)
	}
	// Every finite code below the top binade survives an encode of its
	// (unhalved) value; like ggml, the encoder treats exponent 15 as out of
	// range and saturates 256–448 to 0x7e.
	for code := uint8(1); code < 0x7f; code++ {
		want := code
		if code >= 0x78 {
			want = 0x7e
		}
		require.Equal(t, want, float32ToUE4M3(2*ue4m3HalfToFloat32(code)), "%#02x", code)
	}
	require.Equal(t, uint8(0), float32ToUE4M3(0))
	require.Equal(t, uint8(0), float32ToUE4M3(-1))
	require.Equal(t, uint8(0x7e), float32ToUE4M3(1e9), "saturates")
	require.Equal(t, uint8(0x39), float32ToUE4M3(1.0625), "mantissa halfway rounds up") // between 1.0 and 1.125
	require.Equal(t, uint8(0x38), float32ToUE4M3(1.06), "below halfway rounds down")
	require.Equal(t, uint8(0x40), float32ToUE4M3(1.95), "mantissa carry moves to the next binade")
}
