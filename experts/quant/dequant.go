package quant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/experts"
)

// Dequantization of ggml's storage formats to float32.
//
// Every routine reproduces ggml's reference C (dequantize_row_* in
// ggml-quants.c) bit for bit: the same products in the same order, each
// rounded to float32. Products that ggml rounds before an addition are
// wrapped in an explicit float32 conversion, which stops the Go compiler from
// fusing them into an FMA on platforms that have one.

// ErrQuantSize means that a quantized buffer does not hold exactly the bytes
// its element count needs.
var ErrQuantSize = errors.New("quant: quantized data size mismatch")

// kvaluesIQ4NL are the 16 non-linear levels of IQ4_NL and IQ4_XS.
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// kvaluesMXFP4 are the FP4 (E2M1) code points doubled so they are integers;
// the block scales are halved to compensate (see e8m0HalfToFloat32).
var kvaluesMXFP4 = [16]int8{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}

// The per-type routines of this package (dequantizers, quantizers,
// activationQuantizers, vecDotTypes, dotKernels) are arrays indexed by Type,
// like typeTable, read through byType: the lookups sit on per-row paths, where
// a map's hashing would cost more than some rows take to compute.

// byType returns table[t], or the zero value (nil for a routine) when t is
// past the table's end.
func byType[E any](table []E, t experts.Type) E {
	if uint64(t) < uint64(len(table)) {
		return table[t]
	}
	var zero E
	return zero
}

// dequantizers holds, for each supported type, a routine that expands whole
// blocks; src and dst have been checked to hold the same number of blocks.
var dequantizers = [...]func(src []byte, dst []float32){
	experts.TypeF32:    dequantF32,
	experts.TypeF16:    dequantF16,
	experts.TypeBF16:   dequantBF16,
	experts.TypeQ4_0:   dequantQ4_0,
	experts.TypeQ4_1:   dequantQ4_1,
	experts.TypeQ5_0:   dequantQ5_0,
	experts.TypeQ5_1:   dequantQ5_1,
	experts.TypeQ8_0:   dequantQ8_0,
	experts.TypeQ8_1:   dequantQ8_1,
	experts.TypeQ2_K:   dequantQ2K,
	experts.TypeQ3_K:   dequantQ3K,
	experts.TypeQ4_K:   dequantQ4K,
	experts.TypeQ5_K:   dequantQ5K,
	experts.TypeQ6_K:   dequantQ6K,
	experts.TypeQ8_K:   dequantQ8K,
	experts.TypeIQ4_NL: dequantIQ4NL,
	experts.TypeIQ4_XS: dequantIQ4XS,
	experts.TypeTQ1_0:  dequantTQ1_0,
	experts.TypeTQ2_0:  dequantTQ2_0,
	experts.TypeMXFP4:  dequantMXFP4,
	experts.TypeNVFP4:  dequantNVFP4,
	experts.TypeQ1_0:   dequantQ1_0,
	experts.TypeQ2_0:   dequantQ2_0,
}

// CanDequantize reports whether Dequantize supports t.
func CanDequantize(t experts.Type) bool {
	return byType(dequantizers[:], t) != nil
}

// Dequantize expands len(dst) elements of type t, stored in src, to float32.
// src must hold exactly t.RowBytes(len(dst)) bytes, so len(dst) must be a
// multiple of t.BlockSize(). The elements may span several rows: ggml rows of
// a quantized tensor are whole blocks laid end to end. An unknown type gives
// an error wrapping ErrUnknownType, a known type without a dequantizer one
// wrapping ErrUnsupportedType, and a size mismatch one wrapping ErrQuantSize.
func Dequantize(t experts.Type, src []byte, dst []float32) error {
	if !t.Known() {
		return fmt.Errorf("%w: %v", experts.ErrUnknownType, t)
	}
	dequant := byType(dequantizers[:], t)
	if dequant == nil {
		return fmt.Errorf("%w: no dequantization for %v", experts.ErrUnsupportedType, t)
	}
	if err := checkQuantSize(t, len(src), len(dst)); err != nil {
		return fmt.Errorf("quant: dequantize: %w", err)
	}
	dequant(src, dst)
	return nil
}

// checkQuantSize verifies that n elements of type t take exactly size bytes.
func checkQuantSize(t experts.Type, size, n int) error {
	want, err := t.RowBytes(uint64(n))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrQuantSize, err)
	}
	if uint64(size) != want {
		return fmt.Errorf("%w: %d elements of %v take %d bytes, got %d", ErrQuantSize, n, t, want, size)
	}
	return nil
}

// f16At decodes the little-endian binary16 value at the start of b.
func f16At(b []byte) float32 {
	return Float16ToFloat32(binary.LittleEndian.Uint16(b))
}

func dequantF32(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func dequantF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = Float16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func dequantBF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// Q4_0: d (f16), 16 bytes of nibbles. Element j is the low nibble of byte j,
// element j+16 the high nibble; value (q-8)·d.
func dequantQ4_0(src []byte, dst []float32) {
	for len(src) >= 18 && len(dst) >= 32 {
		d := f16At(src)
		qs := (*[16]byte)(src[2:18])
		y := (*[32]float32)(dst)
		var lut [16]float32
		for i := range lut {
			lut[i] = float32(i-8) * d
		}
		for j, q := range qs {
			y[j] = lut[q&15]
			y[j+16] = lut[q>>4]
		}
		src, dst = src[18:], dst[32:]
	}
}

// Q4_1: d, m (f16), 16 bytes of nibbles; value q·d + m.
func dequantQ4_1(src []byte, dst []float32) {
	for len(src) >= 20 && len(dst) >= 32 {
		d, m := f16At(src), f16At(src[2:])
		qs := (*[16]byte)(src[4:20])
		y := (*[32]float32)(dst)
		var lut [16]float32
		for i := range lut {
			lut[i] = float32(float32(i)*d) + m
		}
		for j, q := range qs {
			y[j] = lut[q&15]
			y[j+16] = lut[q>>4]
		}
		src, dst = src[20:], dst[32:]
	}
}

// Q5_0: d, 32 high bits (u32 LE, bit j for element j), 16 bytes of nibbles;
// value (q-16)·d.
func dequantQ5_0(src []byte, dst []float32) {
	for len(src) >= 22 && len(dst) >= 32 {
		d := f16At(src)
		qh := binary.LittleEndian.Uint32(src[2:])
		qs := (*[16]byte)(src[6:22])
		y := (*[32]float32)(dst)
		for j, q := range qs {
			h0 := byte(qh>>j) << 4 & 0x10
			h1 := byte(qh>>(j+12)) & 0x10
			y[j] = float32(int(q&15|h0)-16) * d
			y[j+16] = float32(int(q>>4|h1)-16) * d
		}
		src, dst = src[22:], dst[32:]
	}
}

// Q5_1: d, m, 32 high bits, 16 bytes of nibbles; value q·d + m.
func dequantQ5_1(src []byte, dst []float32) {
	for len(src) >= 24 && len(dst) >= 32 {
		d, m := f16At(src), f16At(src[2:])
		qh := binary.LittleEndian.Uint32(src[4:])
		qs := (*[16]byte)(src[8:24])
		y := (*[32]float32)(dst)
		for j, q := range qs {
			h0 := byte(qh>>j) << 4 & 0x10
			h1 := byte(qh>>(j+12)) & 0x10
			y[j] = float32(float32(q&15|h0)*d) + m
			y[j+16] = float32(float32(q>>4|h1)*d) + m
		}
		src, dst = src[24:], dst[32:]
	}
}

// Q8_0: d, 32 int8; value q·d.
func dequantQ8_0(src []byte, dst []float32) {
	for len(src) >= 34 && len(dst) >= 32 {
		d := f16At(src)
		qs := (*[32]byte)(src[2:34])
		y := (*[32]float32)(dst)
		for j, q := range qs {
			y[j] = float32(int8(q)) * d
		}
		src, dst = src[34:], dst[32:]
	}
}

// Q8_1: d, s = d·Σq (f16), 32 int8; value q·d. ggml has no dequantizer for
// this activation-only type; this one follows Q8_0.
func dequantQ8_1(src []byte, dst []float32) {
	for len(src) >= 36 && len(dst) >= 32 {
		d := f16At(src)
		qs := (*[32]byte)(src[4:36])
		y := (*[32]float32)(dst)
		for j, q := range qs {
			y[j] = float32(int8(q)) * d
		}
		src, dst = src[36:], dst[32:]
	}
}

// Q2_K super-block (84 bytes): scales[16] (low nibble scale, high nibble
// min, per 16 elements), qs[64] (2-bit quants), d, dmin (f16). Value
// (d·sc)·q - dmin·m.
func dequantQ2K(src []byte, dst []float32) {
	for len(src) >= 84 && len(dst) >= 256 {
		b := (*[84]byte)(src)
		y := (*[256]float32)(dst)
		d, dmin := f16At(b[80:]), f16At(b[82:])
		for half := 0; half < 2; half++ {
			q := (*[32]byte)(b[16+32*half:])
			for k := 0; k < 4; k++ { // bit pair k of the 32 bytes: 32 elements, two groups of 16
				shift := 2 * k
				g := 8*half + 2*k
				var lut0, lut1 [4]float32
				for v := range lut0 {
					lut0[v] = float32(d*float32(b[g]&15)*float32(v)) - float32(dmin*float32(b[g]>>4))
					lut1[v] = float32(d*float32(b[g+1]&15)*float32(v)) - float32(dmin*float32(b[g+1]>>4))
				}
				out := (*[32]float32)(y[128*half+32*k:])
				for l := 0; l < 16; l++ {
					out[l] = lut0[q[l]>>shift&3]
					out[l+16] = lut1[q[l+16]>>shift&3]
				}
			}
		}
		src, dst = src[84:], dst[256:]
	}
}

// q3KScales unpacks Q3_K's sixteen 6-bit scales (low 4 bits in bytes 0–7,
// two nibbles each; high 2 bits in bytes 8–11) and removes their bias of 32.
func q3KScales(sc *[12]byte) [16]int8 {
	var s [16]int8
	for j := range s {
		var low byte
		if j < 8 {
			low = sc[j] & 15
		} else {
			low = sc[j-8] >> 4
		}
		high := sc[8+j%4] >> (2 * (j / 4)) & 3
		s[j] = int8(low|high<<4) - 32
	}
	return s
}

// Q3_K super-block (110 bytes): hmask[32] (high bits), qs[64] (low 2 bits),
// scales[12] (16 six-bit scales), d (f16). Value (d·sc)·q with q in [-4, 3]:
// the low bits minus 4 where the high bit is clear.
func dequantQ3K(src []byte, dst []float32) {
	for len(src) >= 110 && len(dst) >= 256 {
		b := (*[110]byte)(src)
		y := (*[256]float32)(dst)
		hm := (*[32]byte)(b[0:32])
		scales := q3KScales((*[12]byte)(b[96:108]))
		dall := f16At(b[108:])
		for half := 0; half < 2; half++ {
			q := (*[32]byte)(b[32+32*half:])
			for k := 0; k < 4; k++ { // bit pair k: 32 elements, two groups of 16
				shift := 2 * k
				m := byte(1) << (4*half + k)
				g := 8*half + 2*k
				dl0, dl1 := dall*float32(scales[g&15]), dall*float32(scales[(g+1)&15])
				out := (*[32]float32)(y[128*half+32*k:])
				for l := 0; l < 32; l++ {
					v := int(q[l] >> shift & 3)
					if hm[l]&m == 0 {
						v -= 4
					}
					if l < 16 {
						out[l] = dl0 * float32(v)
					} else {
						out[l] = dl1 * float32(v)
					}
				}
			}
		}
		src, dst = src[110:], dst[256:]
	}
}

// kScaleMin unpacks scale and min j (0–7) of a Q4_K/Q5_K super-block from
// its 12 packed bytes of 6-bit values.
func kScaleMin(j int, q *[12]byte) (sc, m byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&15 | q[j-4]>>6<<4, q[j+4]>>4 | q[j]>>6<<4
}

// Q4_K super-block (144 bytes): d, dmin (f16), scales[12] (eight 6-bit
// scales and mins), qs[128]. Each 64 elements use two sub-blocks: the low
// nibbles of 32 bytes, then their high nibbles. Value (d·sc)·q - dmin·m.
func dequantQ4K(src []byte, dst []float32) {
	for len(src) >= 144 && len(dst) >= 256 {
		b := (*[144]byte)(src)
		y := (*[256]float32)(dst)
		d, dmin := f16At(b[0:]), f16At(b[2:])
		scales := (*[12]byte)(b[4:16])
		for j := 0; j < 4; j++ {
			q := (*[32]byte)(b[16+32*j:])
			sc1, m1 := kScaleMin(2*j, scales)
			sc2, m2 := kScaleMin(2*j+1, scales)
			d1, min1 := d*float32(sc1), float32(dmin*float32(m1))
			d2, min2 := d*float32(sc2), float32(dmin*float32(m2))
			var lut1, lut2 [16]float32
			for v := range lut1 {
				lut1[v] = float32(d1*float32(v)) - min1
				lut2[v] = float32(d2*float32(v)) - min2
			}
			lo := (*[32]float32)(y[64*j:])
			hi := (*[32]float32)(y[64*j+32:])
			for l, v := range q {
				lo[l] = lut1[v&15]
				hi[l] = lut2[v>>4]
			}
		}
		src, dst = src[144:], dst[256:]
	}
}

// Q5_K super-block (176 bytes): like Q4_K plus qh[32]; bit 2j of qh[l] is
// the fifth bit of element 64j+l, bit 2j+1 that of element 64j+32+l.
func dequantQ5K(src []byte, dst []float32) {
	for len(src) >= 176 && len(dst) >= 256 {
		b := (*[176]byte)(src)
		y := (*[256]float32)(dst)
		d, dmin := f16At(b[0:]), f16At(b[2:])
		scales := (*[12]byte)(b[4:16])
		qh := (*[32]byte)(b[16:48])
		for j := 0; j < 4; j++ {
			q := (*[32]byte)(b[48+32*j:])
			sc1, m1 := kScaleMin(2*j, scales)
			sc2, m2 := kScaleMin(2*j+1, scales)
			d1, min1 := d*float32(sc1), float32(dmin*float32(m1))
			d2, min2 := d*float32(sc2), float32(dmin*float32(m2))
			lo := (*[32]float32)(y[64*j:])
			hi := (*[32]float32)(y[64*j+32:])
			for l, v := range q {
				h := qh[l] >> (2 * j)
				lo[l] = float32(d1*float32(v&15|h<<4&16)) - min1
				hi[l] = float32(d2*float32(v>>4|h<<3&16)) - min2
			}
		}
		src, dst = src[176:], dst[256:]
	}
}

// Q6_K super-block (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits),
// scales[16] (int8, per 16 elements), d (f16). Value (d·sc)·(q-32).
func dequantQ6K(src []byte, dst []float32) {
	for len(src) >= 210 && len(dst) >= 256 {
		b := (*[210]byte)(src)
		y := (*[256]float32)(dst)
		d := f16At(b[208:])
		for half := 0; half < 2; half++ {
			ql := (*[64]byte)(b[64*half:])
			qh := (*[32]byte)(b[128+32*half:])
			sc := (*[8]byte)(b[192+8*half:])
			out := (*[128]float32)(y[128*half:])
			for l := 0; l < 32; l++ {
				is := l / 16
				h := qh[l]
				q1 := int(ql[l]&15|h<<4&0x30) - 32
				q2 := int(ql[l+32]&15|h<<2&0x30) - 32
				q3 := int(ql[l]>>4|h&0x30) - 32
				q4 := int(ql[l+32]>>4|h>>2&0x30) - 32
				out[l] = d * float32(int8(sc[is])) * float32(q1)
				out[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
				out[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
				out[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
			}
		}
		src, dst = src[210:], dst[256:]
	}
}

// Q8_K super-block (292 bytes): d (float32), qs[256] int8, bsums[16] int16.
// Value d·q.
func dequantQ8K(src []byte, dst []float32) {
	for len(src) >= 292 && len(dst) >= 256 {
		d := math.Float32frombits(binary.LittleEndian.Uint32(src))
		qs := (*[256]byte)(src[4:260])
		y := (*[256]float32)(dst)
		for j, q := range qs {
			y[j] = d * float32(int8(q))
		}
		src, dst = src[292:], dst[256:]
	}
}

// IQ4_NL: d (f16), 16 bytes of nibbles indexing kvaluesIQ4NL; value d·k.
func dequantIQ4NL(src []byte, dst []float32) {
	for len(src) >= 18 && len(dst) >= 32 {
		d := f16At(src)
		qs := (*[16]byte)(src[2:18])
		y := (*[32]float32)(dst)
		var lut [16]float32
		for i, k := range kvaluesIQ4NL {
			lut[i] = d * float32(k)
		}
		for j, q := range qs {
			y[j] = lut[q&15]
			y[j+16] = lut[q>>4]
		}
		src, dst = src[18:], dst[32:]
	}
}

// IQ4_XS super-block (136 bytes): d (f16), scales_h (u16: 2 high bits per
// 32 elements), scales_l[4] (4 low bits per 32 elements), qs[128] nibbles
// indexing kvaluesIQ4NL. Value (d·(ls-32))·k.
func dequantIQ4XS(src []byte, dst []float32) {
	for len(src) >= 136 && len(dst) >= 256 {
		b := (*[136]byte)(src)
		y := (*[256]float32)(dst)
		d := f16At(b[0:])
		scalesH := binary.LittleEndian.Uint16(b[2:])
		for ib := 0; ib < 8; ib++ {
			ls := int(b[4+ib/2]>>(4*(ib%2))&15) | int(scalesH>>(2*ib)&3)<<4
			dl := d * float32(ls-32)
			qs := (*[16]byte)(b[8+16*ib:])
			out := (*[32]float32)(y[32*ib:])
			var lut [16]float32
			for i, k := range kvaluesIQ4NL {
				lut[i] = dl * float32(k)
			}
			for j, q := range qs {
				out[j] = lut[q&15]
				out[j+16] = lut[q>>4]
			}
		}
		src, dst = src[136:], dst[256:]
	}
}

// tq1Trit extracts a base-3 digit from TQ1_0's fixed-point packing: a byte
// holds trits as a fraction of 243, and multiplying by 3^n brings the nth
// one to the top.
func tq1Trit(b, pow3 byte) int {
	q := b * pow3 // wraps, as the uint8 arithmetic in ggml does
	return int(uint16(q)*3>>8) - 1
}

var tq1Pow3 = [5]byte{1, 3, 9, 27, 81}

// TQ1_0 super-block (54 bytes): qs[48] (5 trits per byte), qh[4] (4 trits
// per byte), d (f16). Value t·d with t in {-1, 0, 1}.
func dequantTQ1_0(src []byte, dst []float32) {
	for len(src) >= 54 && len(dst) >= 256 {
		b := (*[54]byte)(src)
		y := (*[256]float32)(dst)
		d := f16At(b[52:])
		out := 0
		for _, group := range [2][2]int{{0, 32}, {32, 16}} { // 32 bytes of 5 trits, then 16
			start, width := group[0], group[1]
			for _, p := range tq1Pow3 {
				for m := start; m < start+width; m++ {
					y[out&255] = float32(tq1Trit(b[m], p)) * d
					out++
				}
			}
		}
		for _, p := range tq1Pow3[:4] {
			for j := 48; j < 52; j++ {
				y[out&255] = float32(tq1Trit(b[j], p)) * d
				out++
			}
		}
		src, dst = src[54:], dst[256:]
	}
}

// TQ2_0 super-block (66 bytes): qs[64] (2 bits per element, 0–2 meaning
// -1–1), d (f16). Byte m of each 32-byte group holds elements m, m+32, m+64,
// m+96 of its 128.
func dequantTQ2_0(src []byte, dst []float32) {
	for len(src) >= 66 && len(dst) >= 256 {
		b := (*[66]byte)(src)
		y := (*[256]float32)(dst)
		d := f16At(b[64:])
		for half := 0; half < 2; half++ {
			qs := (*[32]byte)(b[32*half:])
			out := (*[128]float32)(y[128*half:])
			for l := 0; l < 4; l++ {
				for m, q := range qs {
					out[32*l+m] = float32(int(q>>(2*l)&3)-1) * d
				}
			}
		}
		src, dst = src[66:], dst[256:]
	}
}

// MXFP4: e (E8M0 scale), 16 bytes of FP4 nibbles (low nibbles are elements
// 0–15, high nibbles 16–31); value k·e/2 with k from kvaluesMXFP4.
func dequantMXFP4(src []byte, dst []float32) {
	for len(src) >= 17 && len(dst) >= 32 {
		d := e8m0HalfToFloat32(src[0])
		qs := (*[16]byte)(src[1:17])
		y := (*[32]float32)(dst)
		var lut [16]float32
		for i, k := range kvaluesMXFP4 {
			lut[i] = float32(k) * d
		}
		for j, q := range qs {
			y[j] = lut[q&15]
			y[j+16] = lut[q>>4]
		}
		src, dst = src[17:], dst[32:]
	}
}

// NVFP4 block (36 bytes, 64 elements): d[4] (UE4M3 scale per 16 elements),
// qs[32]; each 16-element sub-block is laid out like a half-size MXFP4
// block: 8 bytes, low nibbles first.
func dequantNVFP4(src []byte, dst []float32) {
	for len(src) >= 36 && len(dst) >= 64 {
		b := (*[36]byte)(src)
		y := (*[64]float32)(dst)
		for s := 0; s < 4; s++ {
			d := ue4m3HalfToFloat32(b[s])
			qs := (*[8]byte)(b[4+8*s:])
			out := (*[16]float32)(y[16*s:])
			for j, q := range qs {
				out[j] = float32(kvaluesMXFP4[q&15]) * d
				out[j+8] = float32(kvaluesMXFP4[q>>4]) * d
			}
		}
		src, dst = src[36:], dst[64:]
	}
}

// Q1_0 block (18 bytes, 128 elements): d (f16), one sign bit per element,
// least significant bit first; value ±d.
func dequantQ1_0(src []byte, dst []float32) {
	for len(src) >= 18 && len(dst) >= 128 {
		d := f16At(src)
		qs := (*[16]byte)(src[2:18])
		y := (*[128]float32)(dst)
		for j := range y {
			if qs[j/8]>>(j%8)&1 != 0 {
				y[j] = d
			} else {
				y[j] = -d
			}
		}
		src, dst = src[18:], dst[128:]
	}
}

// Q2_0 block (18 bytes, 64 elements): d (f16), 2 bits per element, least
// significant pair first; codes 0–3 mean -1, 0, 1, 2.
func dequantQ2_0(src []byte, dst []float32) {
	for len(src) >= 18 && len(dst) >= 64 {
		d := f16At(src)
		qs := (*[16]byte)(src[2:18])
		y := (*[64]float32)(dst)
		for j := range y {
			y[j] = float32(int(qs[j/4]>>(2*(j%4))&3)-1) * d
		}
		src, dst = src[18:], dst[64:]
	}
}
