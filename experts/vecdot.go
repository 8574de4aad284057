package experts

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Dot products of one row of stored weights with activations already
// quantized to the weights' VecDotType, as ggml's CPU backend computes matrix
// products: activations go to 8 bits (Q8_0 or Q8_1 blocks of 32, Q8_K blocks
// of 256), each block's products are summed exactly in integers, and the
// block sums are scaled and accumulated in float32, block after block.
//
// Within a block the integer sum is exact, so it equals ggml's generic C
// (ggml-cpu/quants.c). Where ggml's generic code splits one block's integer
// sum into several float additions (the K-quants' eight lanes, IQ4_XS's
// 32-element halves) this code scales the block's whole integer sum once,
// which is the same value with fewer roundings; ggml's SIMD kernels sum in
// yet other orders, so agreement with llama.cpp is to float32 rounding, not
// to the bit. F32, F16 and BF16 rows are accumulated in float64, as ggml's
// generic code does.

// vecDotTypes is ggml's CPU type_traits vec_dot_type for every type that has
// a dot product there.
var vecDotTypes = map[Type]Type{
	TypeF32:     TypeF32,
	TypeF16:     TypeF16,
	TypeBF16:    TypeBF16,
	TypeQ4_0:    TypeQ8_0,
	TypeQ4_1:    TypeQ8_1,
	TypeQ5_0:    TypeQ8_0,
	TypeQ5_1:    TypeQ8_1,
	TypeQ8_0:    TypeQ8_0,
	TypeQ8_1:    TypeQ8_1,
	TypeQ2_K:    TypeQ8_K,
	TypeQ3_K:    TypeQ8_K,
	TypeQ4_K:    TypeQ8_K,
	TypeQ5_K:    TypeQ8_K,
	TypeQ6_K:    TypeQ8_K,
	TypeIQ2_XXS: TypeQ8_K,
	TypeIQ2_XS:  TypeQ8_K,
	TypeIQ3_XXS: TypeQ8_K,
	TypeIQ1_S:   TypeQ8_K,
	TypeIQ4_NL:  TypeQ8_0,
	TypeIQ3_S:   TypeQ8_K,
	TypeIQ2_S:   TypeQ8_K,
	TypeIQ4_XS:  TypeQ8_K,
	TypeIQ1_M:   TypeQ8_K,
	TypeTQ1_0:   TypeQ8_K,
	TypeTQ2_0:   TypeQ8_K,
	TypeMXFP4:   TypeQ8_0,
	TypeNVFP4:   TypeQ8_0,
	TypeQ1_0:    TypeQ8_0,
	TypeQ2_0:    TypeQ8_0,
}

// dotKernels are the dot products this package implements. Each gets w and
// act cut to exactly the blocks of one row.
var dotKernels = map[Type]func(w, act []byte) float32{
	TypeF32:    dotF32,
	TypeF16:    dotF16,
	TypeBF16:   dotBF16,
	TypeQ4_0:   dotQ4_0,
	TypeQ4_1:   dotQ4_1,
	TypeQ5_0:   dotQ5_0,
	TypeQ5_1:   dotQ5_1,
	TypeQ8_0:   dotQ8_0,
	TypeQ2_K:   dotQ2K,
	TypeQ3_K:   dotQ3K,
	TypeQ4_K:   dotQ4K,
	TypeQ5_K:   dotQ5K,
	TypeQ6_K:   dotQ6K,
	TypeIQ4_NL: dotIQ4NL,
	TypeIQ4_XS: dotIQ4XS,
	TypeTQ1_0:  dotTQ1_0,
	TypeTQ2_0:  dotTQ2_0,
	TypeMXFP4:  dotMXFP4,
	TypeNVFP4:  dotNVFP4,
	TypeQ1_0:   dotQ1_0,
	TypeQ2_0:   dotQ2_0,
}

// VecDotType is the type ggml's CPU backend converts activations to before a
// dot product with weights of type t (Q8_0 for Q4_0, Q5_0, Q8_0, IQ4_NL and
// MXFP4; Q8_1 for Q4_1 and Q5_1; Q8_K for the K-quants and IQ4_XS; F16, BF16
// and F32 for themselves). Types ggml cannot multiply report F32, the zero
// value of ggml's table.
func (t Type) VecDotType() Type {
	return vecDotTypes[t]
}

// CanVecDot reports whether VecDot supports weights of type t.
func (t Type) CanVecDot() bool {
	_, ok := dotKernels[t]
	return ok
}

// VecDot returns the dot product of n weights of type t, stored in w, with n
// activations stored in act as t.VecDotType() (see QuantizeActivations).
//
// It is the inner loop of matrix-vector products and checks nothing beyond
// what Go's bounds checks do: n must be a multiple of t.BlockSize(), w and
// act must hold at least the bytes n elements take, and t must satisfy
// CanVecDot. Violations panic (short slices, unsupported type) or, for an n
// that is not a multiple of the block size, ignore the partial block. Callers
// validate once per matrix, with VecDotChecked on its first row or by
// comparing t.RowBytes(n) and t.VecDotType().RowBytes(n) with their buffers.
// VecDot does not allocate.
func VecDot(t Type, n int, w, act []byte) float32 {
	dot := dotKernels[t]
	if dot == nil {
		panic(fmt.Sprintf("experts: VecDot: no dot product for %v", t))
	}
	at := vecDotTypes[t]
	return dot(w[:n/t.BlockSize()*t.BlockBytes()], act[:n/at.BlockSize()*at.BlockBytes()])
}

// VecDotChecked is VecDot with its arguments validated: w must be exactly
// t.RowBytes(n) bytes and act exactly t.VecDotType().RowBytes(n). Errors wrap
// ErrUnknownType, ErrUnsupportedType or ErrQuantSize.
func VecDotChecked(t Type, n int, w, act []byte) (float32, error) {
	if !t.Known() {
		return 0, fmt.Errorf("%w: %v", ErrUnknownType, t)
	}
	if !t.CanVecDot() {
		return 0, fmt.Errorf("%w: no dot product for %v", ErrUnsupportedType, t)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: negative element count %d", ErrQuantSize, n)
	}
	if err := checkQuantSize(t, len(w), n); err != nil {
		return 0, fmt.Errorf("experts: vec dot weights: %w", err)
	}
	if err := checkQuantSize(vecDotTypes[t], len(act), n); err != nil {
		return 0, fmt.Errorf("experts: vec dot activations: %w", err)
	}
	return VecDot(t, n, w, act), nil
}

// dotI8x32 is the exact integer dot product of two blocks of 32 int8.
func dotI8x32(x, y *[32]byte) int32 {
	var s0, s1, s2, s3 int32
	for i := 0; i < 32; i += 4 {
		s0 += int32(int8(x[i])) * int32(int8(y[i]))
		s1 += int32(int8(x[i+1])) * int32(int8(y[i+1]))
		s2 += int32(int8(x[i+2])) * int32(int8(y[i+2]))
		s3 += int32(int8(x[i+3])) * int32(int8(y[i+3]))
	}
	return s0 + s1 + s2 + s3
}

// dotNibbles16 returns Σ lo(q[j])·y[j] + hi(q[j])·y[j+16] over 16 bytes of
// nibbles (unsigned 0–15) against 32 int8: the shared core of the 4-bit
// formats whose bytes hold elements j and j+16.
func dotNibbles16(q *[16]byte, y *[32]byte) int32 {
	var s0, s1, s2, s3 int32
	for j := 0; j < 16; j += 2 {
		a, b := q[j], q[j+1]
		s0 += int32(a&15) * int32(int8(y[j]))
		s1 += int32(a>>4) * int32(int8(y[j+16]))
		s2 += int32(b&15) * int32(int8(y[j+1]))
		s3 += int32(b>>4) * int32(int8(y[j+17]))
	}
	return s0 + s1 + s2 + s3
}

// sumI8x32 is Σ y over 32 int8.
func sumI8x32(y *[32]byte) int32 {
	var s0, s1 int32
	for i := 0; i < 32; i += 2 {
		s0 += int32(int8(y[i]))
		s1 += int32(int8(y[i+1]))
	}
	return s0 + s1
}

// dotTable16 returns Σ k[lo(q[j])]·y[j] + k[hi(q[j])]·y[j+16] for a
// 16-entry code table k (IQ4_NL, MXFP4).
func dotTable16(k *[16]int8, q *[16]byte, y *[32]byte) int32 {
	var s0, s1, s2, s3 int32
	for j := 0; j < 16; j += 2 {
		a, b := q[j], q[j+1]
		s0 += int32(k[a&15]) * int32(int8(y[j]))
		s1 += int32(k[a>>4]) * int32(int8(y[j+16]))
		s2 += int32(k[b&15]) * int32(int8(y[j+1]))
		s3 += int32(k[b>>4]) * int32(int8(y[j+17]))
	}
	return s0 + s1 + s2 + s3
}

func dotF32(w, act []byte) float32 {
	var s [4]float64
	for len(w) >= 16 && len(act) >= 16 {
		x := (*[16]byte)(w)
		y := (*[16]byte)(act)
		for l := 0; l < 4; l++ {
			p := math.Float32frombits(binary.LittleEndian.Uint32(x[4*l:])) * math.Float32frombits(binary.LittleEndian.Uint32(y[4*l:]))
			s[l] += float64(p)
		}
		w, act = w[16:], act[16:]
	}
	for len(w) >= 4 && len(act) >= 4 {
		s[0] += float64(math.Float32frombits(binary.LittleEndian.Uint32(w)) * math.Float32frombits(binary.LittleEndian.Uint32(act)))
		w, act = w[4:], act[4:]
	}
	return float32((s[0] + s[1]) + (s[2] + s[3]))
}

func dotF16(w, act []byte) float32 {
	var s [4]float64
	for len(w) >= 8 && len(act) >= 8 {
		x := (*[8]byte)(w)
		y := (*[8]byte)(act)
		for l := 0; l < 4; l++ {
			p := Float16ToFloat32(binary.LittleEndian.Uint16(x[2*l:])) * Float16ToFloat32(binary.LittleEndian.Uint16(y[2*l:]))
			s[l] += float64(p)
		}
		w, act = w[8:], act[8:]
	}
	for len(w) >= 2 && len(act) >= 2 {
		s[0] += float64(Float16ToFloat32(binary.LittleEndian.Uint16(w)) * Float16ToFloat32(binary.LittleEndian.Uint16(act)))
		w, act = w[2:], act[2:]
	}
	return float32((s[0] + s[1]) + (s[2] + s[3]))
}

func dotBF16(w, act []byte) float32 {
	var s [4]float64
	for len(w) >= 8 && len(act) >= 8 {
		x := (*[8]byte)(w)
		y := (*[8]byte)(act)
		for l := 0; l < 4; l++ {
			p := BF16ToFloat32(binary.LittleEndian.Uint16(x[2*l:])) * BF16ToFloat32(binary.LittleEndian.Uint16(y[2*l:]))
			s[l] += float64(p)
		}
		w, act = w[8:], act[8:]
	}
	for len(w) >= 2 && len(act) >= 2 {
		s[0] += float64(BF16ToFloat32(binary.LittleEndian.Uint16(w)) * BF16ToFloat32(binary.LittleEndian.Uint16(act)))
		w, act = w[2:], act[2:]
	}
	return float32((s[0] + s[1]) + (s[2] + s[3]))
}

// Q4_0·Q8_0: Σ(q-8)·y = Σq·y - 8Σy; sumf += (sumi·dx)·dy.
func dotQ4_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 18 && len(act) >= 34 {
		y := (*[32]byte)(act[2:34])
		sumi := dotNibbles16((*[16]byte)(w[2:18]), y) - 8*sumI8x32(y)
		sumf += float32(float32(float32(sumi)*f16At(w)) * f16At(act))
		w, act = w[18:], act[34:]
	}
	return sumf
}

// Q4_1·Q8_1: (dx·dy)·Σq·y + m·s, where s = dy·Σy comes with the activations.
func dotQ4_1(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 20 && len(act) >= 36 {
		sumi := dotNibbles16((*[16]byte)(w[4:20]), (*[32]byte)(act[4:36]))
		scaled := float32(f16At(w)*f16At(act)) * float32(sumi)
		sumf += float32(scaled) + float32(f16At(w[2:])*f16At(act[2:]))
		w, act = w[20:], act[36:]
	}
	return sumf
}

// q5Codes expands a Q5_0/Q5_1 block's nibbles and high bits into 32 codes
// (0–31) in element order.
func q5Codes(qh uint32, qs *[16]byte, out *[32]byte) {
	for j, q := range qs {
		out[j] = q&15 | byte(qh>>j)<<4&0x10
		out[j+16] = q>>4 | byte(qh>>(j+12))&0x10
	}
}

// dotU8x32 is Σ x·y for 32 unsigned codes x and 32 int8 y.
func dotU8x32(x, y *[32]byte) int32 {
	var s0, s1, s2, s3 int32
	for i := 0; i < 32; i += 4 {
		s0 += int32(x[i]) * int32(int8(y[i]))
		s1 += int32(x[i+1]) * int32(int8(y[i+1]))
		s2 += int32(x[i+2]) * int32(int8(y[i+2]))
		s3 += int32(x[i+3]) * int32(int8(y[i+3]))
	}
	return s0 + s1 + s2 + s3
}

// Q5_0·Q8_0: Σ(q-16)·y; sumf += (dx·dy)·sumi.
func dotQ5_0(w, act []byte) float32 {
	var sumf float32
	var codes [32]byte
	for len(w) >= 22 && len(act) >= 34 {
		q5Codes(binary.LittleEndian.Uint32(w[2:]), (*[16]byte)(w[6:22]), &codes)
		y := (*[32]byte)(act[2:34])
		sumi := dotU8x32(&codes, y) - 16*sumI8x32(y)
		sumf += float32(float32(f16At(w)*f16At(act)) * float32(sumi))
		w, act = w[22:], act[34:]
	}
	return sumf
}

// Q5_1·Q8_1: like Q4_1 with 5-bit codes.
func dotQ5_1(w, act []byte) float32 {
	var sumf float32
	var codes [32]byte
	for len(w) >= 24 && len(act) >= 36 {
		q5Codes(binary.LittleEndian.Uint32(w[4:]), (*[16]byte)(w[8:24]), &codes)
		sumi := dotU8x32(&codes, (*[32]byte)(act[4:36]))
		scaled := float32(f16At(w)*f16At(act)) * float32(sumi)
		sumf += float32(scaled) + float32(f16At(w[2:])*f16At(act[2:]))
		w, act = w[24:], act[36:]
	}
	return sumf
}

// Q8_0·Q8_0: sumf += sumi·(dx·dy).
func dotQ8_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 34 && len(act) >= 34 {
		sumi := dotI8x32((*[32]byte)(w[2:34]), (*[32]byte)(act[2:34]))
		sumf += float32(float32(sumi) * (f16At(w) * f16At(act)))
		w, act = w[34:], act[34:]
	}
	return sumf
}

// IQ4_NL·Q8_0: sumf += (dy·dx)·Σk·y.
func dotIQ4NL(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 18 && len(act) >= 34 {
		sumi := dotTable16(&kvaluesIQ4NL, (*[16]byte)(w[2:18]), (*[32]byte)(act[2:34]))
		sumf += float32(float32(f16At(act)*f16At(w)) * float32(sumi))
		w, act = w[18:], act[34:]
	}
	return sumf
}

// MXFP4·Q8_0: sumf += (dy·e/2)·Σk·y.
func dotMXFP4(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 17 && len(act) >= 34 {
		sumi := dotTable16(&kvaluesMXFP4, (*[16]byte)(w[1:17]), (*[32]byte)(act[2:34]))
		sumf += float32(float32(f16At(act)*e8m0HalfToFloat32(w[0])) * float32(sumi))
		w, act = w[17:], act[34:]
	}
	return sumf
}

// NVFP4·Q8_0: one NVFP4 block spans two Q8_0 blocks; each 16-element
// sub-block has its own scale, so sumf += (dy·d)·sumi per sub-block.
func dotNVFP4(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 36 && len(act) >= 68 {
		b := (*[36]byte)(w)
		for s := 0; s < 4; s++ {
			y := act[34*(s/2):]
			dy := f16At(y)
			qy := (*[16]byte)(y[2+16*(s%2):])
			qs := (*[8]byte)(b[4+8*s:])
			var sumi int32
			for j, q := range qs {
				sumi += int32(int8(qy[j]))*int32(kvaluesMXFP4[q&15]) + int32(int8(qy[j+8]))*int32(kvaluesMXFP4[q>>4])
			}
			sumf += float32(float32(dy*ue4m3HalfToFloat32(b[s])) * float32(sumi))
		}
		w, act = w[36:], act[68:]
	}
	return sumf
}

// Q1_0·Q8_0: 128 sign bits against four Q8_0 blocks;
// sumf += dx·Σ(dy·Σ±y).
func dotQ1_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 18 && len(act) >= 136 {
		qs := (*[16]byte)(w[2:18])
		var sumi float32
		for k := 0; k < 4; k++ {
			y := act[34*k:]
			qy := (*[32]byte)(y[2:34])
			var s int32
			for j, v := range qy {
				if qs[4*k+j/8]>>(j%8)&1 != 0 {
					s += int32(int8(v))
				} else {
					s -= int32(int8(v))
				}
			}
			sumi += float32(f16At(y) * float32(s))
		}
		sumf += float32(f16At(w) * sumi)
		w, act = w[18:], act[136:]
	}
	return sumf
}

// Q2_0·Q8_0: 64 two-bit codes (value code-1) against two Q8_0 blocks.
func dotQ2_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 18 && len(act) >= 68 {
		qs := (*[16]byte)(w[2:18])
		var sumi float32
		for k := 0; k < 2; k++ {
			y := act[34*k:]
			qy := (*[32]byte)(y[2:34])
			var s int32
			for j, v := range qy {
				s += (int32(qs[8*k+j/4]>>(2*(j%4))&3) - 1) * int32(int8(v))
			}
			sumi += float32(f16At(y) * float32(s))
		}
		sumf += float32(f16At(w) * sumi)
		w, act = w[18:], act[68:]
	}
	return sumf
}

// q8KScale reads a Q8_K block's float32 scale.
func q8KScale(b []byte) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(b))
}

// q8KBsum reads the jth 16-element sum of a Q8_K block.
func q8KBsum(b *[292]byte, j int) int32 {
	return int32(int16(binary.LittleEndian.Uint16(b[260+2*j:])))
}

// Q2_K·Q8_K: Σ sc·Σq·y over 16 groups of 16, minus Σ m·bsum;
// sumf += dall·isum - dmin·summs.
func dotQ2K(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 84 && len(act) >= 292 {
		x := (*[84]byte)(w)
		y := (*[292]byte)(act)
		var summs, isum int32
		for j := 0; j < 16; j++ {
			summs += q8KBsum(y, j) * int32(x[j]>>4)
		}
		g := 0 // group of 16 elements, 0–15
		for half := 0; half < 2; half++ {
			q := (*[32]byte)(x[16+32*half:])
			for shift := 0; shift < 8; shift += 2 {
				qy := (*[32]byte)(y[4+32*(g/2):])
				var s0, s1 int32
				for l := 0; l < 16; l++ {
					s0 += int32(q[l]>>shift&3) * int32(int8(qy[l]))
					s1 += int32(q[l+16]>>shift&3) * int32(int8(qy[l+16]))
				}
				isum += int32(x[g]&15)*s0 + int32(x[g+1]&15)*s1
				g += 2
			}
		}
		dy := q8KScale(y[:])
		dall := dy * f16At(x[80:])
		dmin := dy * f16At(x[82:])
		sumf += float32(float32(dall*float32(isum)) - float32(dmin*float32(summs)))
		w, act = w[84:], act[292:]
	}
	return sumf
}

// Q3_K·Q8_K: Σ sc·Σq·y over 16 groups of 16 with q in [-4, 3];
// sumf += (dx·dy)·isum.
func dotQ3K(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 110 && len(act) >= 292 {
		x := (*[110]byte)(w)
		y := (*[292]byte)(act)
		hm := (*[32]byte)(x[0:32])
		scales := q3KScales((*[12]byte)(x[96:108]))
		var isum int32
		g := 0
		m := byte(1)
		for half := 0; half < 2; half++ {
			q := (*[32]byte)(x[32+32*half:])
			for shift := 0; shift < 8; shift += 2 {
				qy := (*[32]byte)(y[4+32*(g/2):])
				var s0, s1 int32
				for l := 0; l < 16; l++ {
					v0 := int32(q[l] >> shift & 3)
					if hm[l]&m == 0 {
						v0 -= 4
					}
					v1 := int32(q[l+16] >> shift & 3)
					if hm[l+16]&m == 0 {
						v1 -= 4
					}
					s0 += v0 * int32(int8(qy[l]))
					s1 += v1 * int32(int8(qy[l+16]))
				}
				isum += int32(scales[g])*s0 + int32(scales[g+1])*s1
				g += 2
				m <<= 1
			}
		}
		sumf += float32(float32(f16At(x[108:])*q8KScale(y[:])) * float32(isum))
		w, act = w[110:], act[292:]
	}
	return sumf
}

// dotLoHi32 returns Σ lo(q[l])·ylo[l] and Σ hi(q[l])·yhi[l] for 32 bytes of
// nibbles: the two 32-element sub-blocks a Q4_K byte range encodes.
func dotLoHi32(q, ylo, yhi *[32]byte) (lo, hi int32) {
	var l0, l1, h0, h1 int32
	for l := 0; l < 32; l += 2 {
		a, b := q[l], q[l+1]
		l0 += int32(a&15) * int32(int8(ylo[l]))
		h0 += int32(a>>4) * int32(int8(yhi[l]))
		l1 += int32(b&15) * int32(int8(ylo[l+1]))
		h1 += int32(b>>4) * int32(int8(yhi[l+1]))
	}
	return l0 + l1, h0 + h1
}

// kMinSum is Σ bsum·min over a Q4_K/Q5_K super-block (two 16-element sums
// per 32-element sub-block).
func kMinSum(scales *[12]byte, y *[292]byte) int32 {
	var s int32
	for j := 0; j < 8; j++ {
		_, m := kScaleMin(j, scales)
		s += int32(m) * (q8KBsum(y, 2*j) + q8KBsum(y, 2*j+1))
	}
	return s
}

// Q4_K·Q8_K: Σ sc·Σq·y over 8 sub-blocks of 32, minus Σ m·bsum;
// sumf += d·isum - dmin·summ with d = dx·dy, dmin = dminx·dy.
func dotQ4K(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 144 && len(act) >= 292 {
		x := (*[144]byte)(w)
		y := (*[292]byte)(act)
		scales := (*[12]byte)(x[4:16])
		var isum int32
		for j := 0; j < 4; j++ {
			lo, hi := dotLoHi32((*[32]byte)(x[16+32*j:]), (*[32]byte)(y[4+64*j:]), (*[32]byte)(y[36+64*j:]))
			sc1, _ := kScaleMin(2*j, scales)
			sc2, _ := kScaleMin(2*j+1, scales)
			isum += int32(sc1)*lo + int32(sc2)*hi
		}
		summ := kMinSum(scales, y)
		dy := q8KScale(y[:])
		d := f16At(x[0:]) * dy
		dmin := f16At(x[2:]) * dy
		sumf += float32(float32(d*float32(isum)) - float32(dmin*float32(summ)))
		w, act = w[144:], act[292:]
	}
	return sumf
}

// Q5_K·Q8_K: Q4_K with a fifth bit per element from qh.
func dotQ5K(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 176 && len(act) >= 292 {
		x := (*[176]byte)(w)
		y := (*[292]byte)(act)
		scales := (*[12]byte)(x[4:16])
		qh := (*[32]byte)(x[16:48])
		var isum int32
		for j := 0; j < 4; j++ {
			q := (*[32]byte)(x[48+32*j:])
			ylo := (*[32]byte)(y[4+64*j:])
			yhi := (*[32]byte)(y[36+64*j:])
			lo, hi := dotLoHi32(q, ylo, yhi)
			// Add 16·y wherever the fifth bit is set.
			var blo, bhi int32
			for l := 0; l < 32; l++ {
				h := int32(qh[l] >> (2 * j))
				blo += h & 1 * int32(int8(ylo[l]))
				bhi += h >> 1 & 1 * int32(int8(yhi[l]))
			}
			sc1, _ := kScaleMin(2*j, scales)
			sc2, _ := kScaleMin(2*j+1, scales)
			isum += int32(sc1)*(lo+16*blo) + int32(sc2)*(hi+16*bhi)
		}
		summ := kMinSum(scales, y)
		dy := q8KScale(y[:])
		d := f16At(x[0:]) * dy
		dmin := f16At(x[2:]) * dy
		sumf += float32(float32(d*float32(isum)) - float32(dmin*float32(summ)))
		w, act = w[176:], act[292:]
	}
	return sumf
}

// Q6_K·Q8_K: Σ sc·Σ(q-32)·y over 16 groups of 16, computed as
// Σ sc·Σq·y - 32·Σ sc·bsum; sumf += (dx·dy)·isum.
func dotQ6K(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 210 && len(act) >= 292 {
		x := (*[210]byte)(w)
		y := (*[292]byte)(act)
		sc := (*[16]byte)(x[192:208])
		var isum, bias int32
		for g := 0; g < 16; g++ {
			bias += int32(int8(sc[g])) * q8KBsum(y, g)
		}
		for half := 0; half < 2; half++ {
			ql := (*[64]byte)(x[64*half:])
			qh := (*[32]byte)(x[128+32*half:])
			qy := (*[128]byte)(y[4+128*half:])
			s := (*[8]byte)(sc[8*half:])
			// Sub-sums per group of 16: elements l (0–31) of each of the
			// four 32-element quarters.
			var g [8]int32
			for l := 0; l < 32; l++ {
				h := qh[l]
				q1 := int32(ql[l]&15 | h<<4&0x30)
				q2 := int32(ql[l+32]&15 | h<<2&0x30)
				q3 := int32(ql[l]>>4 | h&0x30)
				q4 := int32(ql[l+32]>>4 | h>>2&0x30)
				k := l / 16
				g[k] += q1 * int32(int8(qy[l]))
				g[k+2] += q2 * int32(int8(qy[l+32]))
				g[k+4] += q3 * int32(int8(qy[l+64]))
				g[k+6] += q4 * int32(int8(qy[l+96]))
			}
			for k, v := range g {
				isum += int32(int8(s[k])) * v
			}
		}
		isum -= 32 * bias
		sumf += float32(float32(f16At(x[208:])*q8KScale(y[:])) * float32(isum))
		w, act = w[210:], act[292:]
	}
	return sumf
}

// IQ4_XS·Q8_K: Σ (ls-32)·Σk·y over 8 sub-blocks of 32; sumf += (dx·dy)·isum.
func dotIQ4XS(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 136 && len(act) >= 292 {
		x := (*[136]byte)(w)
		y := (*[292]byte)(act)
		scalesH := binary.LittleEndian.Uint16(x[2:])
		var isum int32
		for ib := 0; ib < 8; ib++ {
			ls := int32(x[4+ib/2]>>(4*(ib%2))&15) | int32(scalesH>>(2*ib)&3)<<4
			s := dotTable16(&kvaluesIQ4NL, (*[16]byte)(x[8+16*ib:]), (*[32]byte)(y[4+32*ib:]))
			isum += (ls - 32) * s
		}
		sumf += float32(float32(f16At(x[0:])*q8KScale(y[:])) * float32(isum))
		w, act = w[136:], act[292:]
	}
	return sumf
}

// TQ1_0·Q8_K: ternary codes against int8; sumf += sum·(dx·dy).
func dotTQ1_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 54 && len(act) >= 292 {
		x := (*[54]byte)(w)
		y := (*[292]byte)(act)
		qy := (*[256]byte)(y[4:260])
		var sum int32
		out := 0
		for _, group := range [2][2]int{{0, 32}, {32, 16}} {
			start, width := group[0], group[1]
			for _, p := range tq1Pow3 {
				for m := start; m < start+width; m++ {
					sum += int32(tq1Trit(x[m], p)) * int32(int8(qy[out&255]))
					out++
				}
			}
		}
		for _, p := range tq1Pow3[:4] {
			for j := 48; j < 52; j++ {
				sum += int32(tq1Trit(x[j], p)) * int32(int8(qy[out&255]))
				out++
			}
		}
		sumf += float32(float32(sum) * (f16At(x[52:]) * q8KScale(y[:])))
		w, act = w[54:], act[292:]
	}
	return sumf
}

// TQ2_0·Q8_K: 2-bit codes (value code-1) against int8; sumf += sumi·(dy·dx).
func dotTQ2_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 66 && len(act) >= 292 {
		x := (*[66]byte)(w)
		y := (*[292]byte)(act)
		var sumi int32
		for half := 0; half < 2; half++ {
			qs := (*[32]byte)(x[32*half:])
			qy := (*[128]byte)(y[4+128*half:])
			for l := 0; l < 4; l++ {
				for m, q := range qs {
					sumi += (int32(q>>(2*l)&3) - 1) * int32(int8(qy[32*l+m]))
				}
			}
		}
		sumf += float32(float32(sumi) * (q8KScale(y[:]) * f16At(x[64:])))
		w, act = w[66:], act[292:]
	}
	return sumf
}
