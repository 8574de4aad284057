package quant

import "math"

// Conversions between float32 and the small float formats ggml stores:
// IEEE binary16 (F16), bfloat16 (BF16), and the scale formats of the
// microscaling types (E8M0 for MXFP4, unsigned E4M3 for NVFP4). All of them
// give the same bits as ggml's reference C conversions.

// Float16ToFloat32 widens an IEEE 754 binary16 value. The conversion is exact,
// subnormals included; NaN payloads are kept.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	bits := uint32(h & 0x7fff)
	switch {
	case bits < 0x400: // zero or subnormal: bits·2⁻²⁴, exact in float32
		return math.Float32frombits(sign | math.Float32bits(float32(bits)*0x1p-24))
	case bits >= 0x7c00: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | (bits&0x3ff)<<13)
	default: // move exponent and mantissa into place and rebias the exponent
		return math.Float32frombits(sign | (bits<<13 + (127-15)<<23))
	}
}

// Float32ToFloat16 rounds f to the nearest binary16 value, ties to even, as
// ggml's reference conversion does: overflow gives ±Inf, values below the
// smallest subnormal give ±0, and every NaN becomes the quiet NaN 0x7e00 with
// f's sign.
func Float32ToFloat16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	abs := bits & 0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN
		return sign | 0x7e00
	case abs >= 0x477ff000: // ≥ 65520 rounds to Inf (and Inf stays Inf)
		return sign | 0x7c00
	case abs < 0x38800000: // below 2⁻¹⁴: the result is subnormal (or the smallest normal)
		// Adding 0.5, whose ulp is 2⁻²⁴, rounds |f| to a multiple of the
		// binary16 subnormal step with the FPU's ties-to-even rounding.
		m := math.Float32bits(math.Float32frombits(abs)+0.5) - 0x3f000000
		return sign | uint16(m)
	default:
		// Round the 23-bit mantissa to 10 bits, ties to even; a carry
		// propagates into the exponent, which is what rounding up needs.
		abs += 0xfff + (abs>>13)&1
		return sign | uint16((abs-(127-15)<<23)>>13)
	}
}

// BF16ToFloat32 widens a bfloat16 value (the top half of a float32). Exact.
func BF16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBF16 rounds f to bfloat16, ties to even, keeping subnormals; a NaN
// is truncated and forced quiet, as ggml does.
func Float32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if bits&0x7fffffff > 0x7f800000 {
		return uint16(bits>>16) | 0x40
	}
	return uint16((bits + 0x7fff + (bits>>16)&1) >> 16)
}

// e8m0HalfToFloat32 decodes an E8M0 block scale (2^(e-127)) and halves it:
// ggml stores the MXFP4 code points doubled (kvaluesMXFP4), so the scale that
// multiplies them is 2^(e-128). e = 0 and 1 give the subnormals 2⁻¹²⁸ and
// 2⁻¹²⁷; e = 255, NaN in the OCP MX format, decodes as 2¹²⁷, as in ggml.
func e8m0HalfToFloat32(e uint8) float32 {
	if e < 2 {
		return math.Float32frombits(0x00200000 << e)
	}
	return math.Float32frombits(uint32(e-1) << 23)
}

// ue4m3HalfToFloat32 decodes an NVFP4 sub-block scale, an unsigned E4M3
// value (4 exponent bits with bias 7, 3 mantissa bits), halved for the same
// reason as e8m0HalfToFloat32. Like ggml it ignores bit 7 and maps 0 and the
// NaN code 0x7f to zero.
func ue4m3HalfToFloat32(x uint8) float32 {
	if x == 0 || x == 0x7f {
		return 0
	}
	exp := int(x>>3) & 0xf
	man := float32(x & 7)
	if exp == 0 {
		return man * 0x1p-9 * 0.5
	}
	return float32(math.Ldexp(float64(1+man/8), exp-7)) * 0.5
}

// float32ToUE4M3 encodes a non-negative scale as unsigned E4M3 the way ggml's
// NVFP4 reference quantizer does: clamped to 448, the mantissa rounded half
// up, and anything from 256 up (exponent 15, which ggml treats as out of
// range) saturated to 0x7e, i.e. 448.
func float32ToUE4M3(x float32) uint8 {
	if !(x > 0) {
		return 0
	}
	if x > 448 {
		x = 448
	}
	bits := math.Float32bits(x)
	exp := int(bits>>23&0xff) - 127 + 7
	if exp <= 0 {
		man := int(x*512 + 0.5)
		if man > 7 {
			man = 7
		}
		if man < 1 {
			return 0
		}
		return uint8(man)
	}
	if exp >= 15 {
		return 0x7e
	}
	man := int(bits>>20&7) + int(bits>>19&1)
	if man > 7 {
		man = 0
		exp++
		if exp >= 15 {
			return 0x7e
		}
	}
	return uint8(exp<<3 | man)
}
