package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/experts"
)

// Quantization of float32 data into ggml's storage formats.
//
// Two flavours exist because ggml itself has two. Quantize is ggml's
// reference quantizer (quantize_row_*_ref in ggml-quants.c): what
// llama-quantize writes into model files, portable and deterministic.
// QuantizeActivations is what ggml's CPU backend does to the activations of a
// matrix product before its dot products; on x86-64 (the build the oracle
// data comes from) its Q8_0 and Q8_1 quantizers take the scale as 127/amax
// instead of 1/(amax/127) and round half to even instead of away from zero,
// so an element lying within a rounding error of a half step (rare: none in
// 64,000 Gaussian samples) can come out one step apart.

// quantizers holds, for each type Quantize supports, its reference quantizer;
// src and dst have been checked to hold the same number of blocks.
var quantizers = [...]func(src []float32, dst []byte){
	experts.TypeF32:   quantF32,
	experts.TypeF16:   quantF16,
	experts.TypeBF16:  quantBF16,
	experts.TypeQ4_0:  quantQ4_0,
	experts.TypeQ4_1:  quantQ4_1,
	experts.TypeQ5_0:  quantQ5_0,
	experts.TypeQ5_1:  quantQ5_1,
	experts.TypeQ8_0:  quantQ8_0,
	experts.TypeQ8_1:  quantQ8_1,
	experts.TypeQ8_K:  quantQ8K,
	experts.TypeQ2_K:  quantQ2K,
	experts.TypeQ3_K:  quantQ3K,
	experts.TypeQ4_K:  quantQ4K,
	experts.TypeQ5_K:  quantQ5K,
	experts.TypeQ6_K:  quantQ6K,
	experts.TypeTQ1_0: quantTQ1_0,
	experts.TypeTQ2_0: quantTQ2_0,
	experts.TypeMXFP4: quantMXFP4,
	experts.TypeNVFP4: quantNVFP4,
	experts.TypeQ1_0:  quantQ1_0,
	experts.TypeQ2_0:  quantQ2_0,
}

// activationQuantizers holds the types where ggml's x86-64 CPU backend
// quantizes activations differently from the reference quantizer.
var activationQuantizers = [...]func(src []float32, dst []byte){
	experts.TypeQ8_0: quantQ8_0x86,
	experts.TypeQ8_1: quantQ8_1x86,
}

// CanQuantize reports whether Quantize supports t.
func CanQuantize(t experts.Type) bool {
	return byType(quantizers[:], t) != nil
}

// Quantize encodes src as len(src) elements of type t into dst with ggml's
// reference quantizer, what llama-quantize writes without an importance
// matrix (the tests check Q8_0 and MXFP4 byte for byte against files it
// wrote). len(src) must be a multiple of t.BlockSize() and dst
// exactly t.RowBytes(len(src)) bytes long. Quantization works block by block,
// so src may span several rows. Errors wrap ErrUnknownType,
// ErrUnsupportedType or ErrQuantSize.
func Quantize(t experts.Type, src []float32, dst []byte) error {
	if !t.Known() {
		return fmt.Errorf("%w: %v", experts.ErrUnknownType, t)
	}
	q := byType(quantizers[:], t)
	if q == nil {
		return fmt.Errorf("%w: no quantization to %v", experts.ErrUnsupportedType, t)
	}
	if err := checkQuantSize(t, len(dst), len(src)); err != nil {
		return fmt.Errorf("quant: quantize: %w", err)
	}
	q(src, dst)
	return nil
}

// QuantizeActivations encodes src like Quantize but reproduces the
// quantizers ggml's CPU backend applies to activations on x86-64 (with AVX)
// before a dot product: use it to prepare the act argument of VecDot when
// results should match llama.cpp running on such a machine. It differs from
// Quantize only for Q8_0 and Q8_1.
func QuantizeActivations(t experts.Type, src []float32, dst []byte) error {
	q := byType(activationQuantizers[:], t)
	if q == nil {
		return Quantize(t, src, dst)
	}
	if err := checkQuantSize(t, len(dst), len(src)); err != nil {
		return fmt.Errorf("quant: quantize: %w", err)
	}
	q(src, dst)
	return nil
}

// putF16 stores f as little-endian binary16 at the start of b.
func putF16(b []byte, f float32) {
	binary.LittleEndian.PutUint16(b, Float32ToFloat16(f))
}

// nearestInt rounds f to the nearest integer, ties to even, for |f| < 2²²,
// with ggml's trick of adding 1.5·2²³ so the FPU does the rounding. Callers
// pass products through float32() so they are not fused with that addition.
func nearestInt(f float32) int {
	return int(math.Float32bits(f+12582912)&0x7fffff) - 0x400000
}

// roundAway rounds half away from zero, as C's roundf and lroundf do.
func roundAway(f float32) float32 {
	return float32(math.Round(float64(f)))
}

// absMax returns the largest |x|, combining like ggml's MAX macro.
func absMax(x []float32) float32 {
	var amax float32
	for _, v := range x {
		a := float32(math.Abs(float64(v)))
		if !(amax > a) {
			amax = a
		}
	}
	return amax
}

// signedAbsMax returns the element of largest magnitude (the first one on a
// tie) and that magnitude.
func signedAbsMax(x []float32) (max, amax float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, max = a, v
		}
	}
	return max, amax
}

func quantF32(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func quantF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], Float32ToFloat16(v))
	}
}

func quantBF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(v))
	}
}

// Q4_0: d = max/-8 where max is the element of largest magnitude, so that it
// maps to code 0; q = min(15, trunc(x/d + 8.5)).
func quantQ4_0(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 18 {
		x := (*[32]float32)(src)
		max, _ := signedAbsMax(x[:])
		d := max / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(dst, d)
		qs := (*[16]byte)(dst[2:18])
		for j := range qs {
			q0 := min(15, int8(float32(x[j]*id)+8.5))
			q1 := min(15, int8(float32(x[j+16]*id)+8.5))
			qs[j] = byte(q0) | byte(q1)<<4
		}
		src, dst = src[32:], dst[18:]
	}
}

// minMax returns the smallest and largest element, starting from ±FLT_MAX as
// ggml does.
func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// Q4_1: d = (max-min)/15, m = min; q = min(15, trunc((x-min)/d + 0.5)).
func quantQ4_1(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 20 {
		x := (*[32]float32)(src)
		lo, hi := minMax(x[:])
		d := (hi - lo) / 15
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(dst, d)
		putF16(dst[2:], lo)
		qs := (*[16]byte)(dst[4:20])
		for j := range qs {
			q0 := min(15, int8(float32((x[j]-lo)*id)+0.5))
			q1 := min(15, int8(float32((x[j+16]-lo)*id)+0.5))
			qs[j] = byte(q0) | byte(q1)<<4
		}
		src, dst = src[32:], dst[20:]
	}
}

// Q5_0: d = max/-16; q = min(31, trunc(x/d + 16.5)), fifth bits in qh.
func quantQ5_0(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 22 {
		x := (*[32]float32)(src)
		max, _ := signedAbsMax(x[:])
		d := max / -16
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(dst, d)
		qs := (*[16]byte)(dst[6:22])
		var qh uint32
		for j := range qs {
			q0 := byte(min(31, int8(float32(x[j]*id)+16.5)))
			q1 := byte(min(31, int8(float32(x[j+16]*id)+16.5)))
			qs[j] = q0&15 | q1<<4
			qh |= uint32(q0>>4) << j
			qh |= uint32(q1>>4) << (j + 16)
		}
		binary.LittleEndian.PutUint32(dst[2:], qh)
		src, dst = src[32:], dst[22:]
	}
}

// Q5_1: d = (max-min)/31, m = min; q = trunc((x-min)/d + 0.5).
func quantQ5_1(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 24 {
		x := (*[32]float32)(src)
		lo, hi := minMax(x[:])
		d := (hi - lo) / 31
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(dst, d)
		putF16(dst[2:], lo)
		qs := (*[16]byte)(dst[8:24])
		var qh uint32
		for j := range qs {
			q0 := uint8(float32((x[j]-lo)*id) + 0.5)
			q1 := uint8(float32((x[j+16]-lo)*id) + 0.5)
			qs[j] = q0&15 | q1<<4
			qh |= uint32(q0>>4&1) << j
			qh |= uint32(q1>>4&1) << (j + 16)
		}
		binary.LittleEndian.PutUint32(dst[4:], qh)
		src, dst = src[32:], dst[24:]
	}
}

// q8Ref fills 32 int8 quants with the reference rounding (d = amax/127,
// q = round(x·(1/d)), halves away from zero) and returns d and Σq.
func q8Ref(x *[32]float32, qs *[32]byte) (d float32, sum int) {
	d = absMax(x[:]) / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	for j, v := range x {
		q := int8(roundAway(v * id))
		qs[j] = byte(q)
		sum += int(q)
	}
	return d, sum
}

// q8x86 fills 32 int8 quants the way ggml's AVX code does: scale 127/amax,
// products rounded half to even and saturated to int8.
func q8x86(x *[32]float32, qs *[32]byte) (d float32, sum int) {
	amax := absMax(x[:])
	d = amax / 127
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for j, v := range x {
		r := math.RoundToEven(float64(v * id))
		var q int8
		switch {
		case r > 127:
			q = 127
		case r >= -128:
			q = int8(r)
		default: // below range or NaN: the x86 conversion saturates low
			q = -128
		}
		qs[j] = byte(q)
		sum += int(q)
	}
	return d, sum
}

// Q8_0: d (f16), 32 int8.
func quantQ8_0(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 34 {
		d, _ := q8Ref((*[32]float32)(src), (*[32]byte)(dst[2:34]))
		putF16(dst, d)
		src, dst = src[32:], dst[34:]
	}
}

func quantQ8_0x86(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 34 {
		d, _ := q8x86((*[32]float32)(src), (*[32]byte)(dst[2:34]))
		putF16(dst, d)
		src, dst = src[32:], dst[34:]
	}
}

// Q8_1: d, s = d·Σq (both f16), 32 int8. The sum lets Q4_1 and Q5_1 dot
// products apply their offsets without touching the quants again.
func quantQ8_1(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 36 {
		d, sum := q8Ref((*[32]float32)(src), (*[32]byte)(dst[4:36]))
		putF16(dst, d)
		putF16(dst[2:], float32(sum)*d)
		src, dst = src[32:], dst[36:]
	}
}

func quantQ8_1x86(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 36 {
		d, sum := q8x86((*[32]float32)(src), (*[32]byte)(dst[4:36]))
		putF16(dst, d)
		putF16(dst[2:], d*float32(sum))
		src, dst = src[32:], dst[36:]
	}
}

// Q8_K: d (float32), 256 int8, 16 int16 sums of 16 quants. The scale is
// -127/max for the element max of largest magnitude, so d is negative when
// max is positive and the quants have the opposite sign of the values.
func quantQ8K(src []float32, dst []byte) {
	for len(src) >= 256 && len(dst) >= 292 {
		x := (*[256]float32)(src)
		b := (*[292]byte)(dst)
		max, amax := signedAbsMax(x[:])
		if amax == 0 {
			clear(b[:])
		} else {
			iscale := -127 / max
			for j, v := range x {
				b[4+j] = byte(int8(min(127, nearestInt(float32(iscale*v)))))
			}
			for j := 0; j < 16; j++ {
				var sum int16
				for _, q := range b[4+16*j : 20+16*j] {
					sum += int16(int8(q))
				}
				binary.LittleEndian.PutUint16(b[260+2*j:], uint16(sum))
			}
			binary.LittleEndian.PutUint32(b[0:], math.Float32bits(1/iscale))
		}
		src, dst = src[256:], dst[292:]
	}
}

// TQ2_0: d = amax; codes round(x/d)+1 in {0, 1, 2}, packed as dequantTQ2_0
// reads them.
func quantTQ2_0(src []float32, dst []byte) {
	for len(src) >= 256 && len(dst) >= 66 {
		x := (*[256]float32)(src)
		b := (*[66]byte)(dst)
		d := absMax(x[:])
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(b[64:], d)
		for half := 0; half < 2; half++ {
			for m := 0; m < 32; m++ {
				var q byte
				for n := 0; n < 4; n++ {
					xi := int(roundAway(x[128*half+32*n+m]*id)) + 1
					q += byte(xi&3) << (2 * n)
				}
				b[32*half+m] = q
			}
		}
		src, dst = src[256:], dst[66:]
	}
}

// tq1Pack turns up to five ternary codes (most significant first) into the
// fixed-point byte that tq1Trit decodes: ceil(value·256/243).
func tq1Pack(q byte) byte {
	return byte((uint16(q)*256 + 242) / 243)
}

// TQ1_0: d = amax; 240 trits five to a byte, the last 16 four to a byte.
func quantTQ1_0(src []float32, dst []byte) {
	for len(src) >= 256 && len(dst) >= 54 {
		x := (*[256]float32)(src)
		b := (*[54]byte)(dst)
		d := absMax(x[:])
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(b[52:], d)
		trit := func(i int) byte { return byte(int(roundAway(x[i]*id)) + 1) }
		base := 0
		for _, group := range [2][2]int{{0, 32}, {32, 16}} {
			start, width := group[0], group[1]
			for m := 0; m < width; m++ {
				var q byte
				for n := 0; n < 5; n++ {
					q = q*3 + trit(base+m+n*width)
				}
				b[start+m] = tq1Pack(q)
			}
			base += 5 * width
		}
		for j := 0; j < 4; j++ {
			var q byte
			for m := 0; m < 4; m++ {
				q = q*3 + trit(base+j+4*m)
			}
			b[48+j] = tq1Pack(q * 3)
		}
		src, dst = src[256:], dst[54:]
	}
}

// mxfp4Index picks the code whose value k·e is nearest x, the first on a tie.
func mxfp4Index(x, e float32) byte {
	best := 0
	bestErr := float32(math.Abs(float64(float32(float32(kvaluesMXFP4[0])*e) - x)))
	for i := 1; i < 16; i++ {
		err := float32(math.Abs(float64(float32(float32(kvaluesMXFP4[i])*e) - x)))
		if err < bestErr {
			best, bestErr = i, err
		}
	}
	return byte(best)
}

// MXFP4: the shared exponent is floor(log2(amax)) - 2, so amax lands in the
// top FP4 binade (4–6·2^e); each element takes the nearest code.
func quantMXFP4(src []float32, dst []byte) {
	for len(src) >= 32 && len(dst) >= 17 {
		x := (*[32]float32)(src)
		var amax float32
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); amax < a {
				amax = a
			}
		}
		var e uint8
		if amax > 0 {
			// log2f, then the float→uint8 conversion of x86 C code
			// (through int32, keeping the low byte).
			lg := float32(math.Log2(float64(amax)))
			e = uint8(int32(float32(math.Floor(float64(lg))) - 2 + 127))
		}
		d := e8m0HalfToFloat32(e)
		dst[0] = e
		qs := (*[16]byte)(dst[1:17])
		for j := range qs {
			qs[j] = mxfp4Index(x[j], d) | mxfp4Index(x[j+16], d)<<4
		}
		src, dst = src[32:], dst[17:]
	}
}

// NVFP4: per 16 elements a UE4M3 scale amax/6 (6 being the largest FP4
// value), then the nearest FP4 code for each element.
func quantNVFP4(src []float32, dst []byte) {
	for len(src) >= 64 && len(dst) >= 36 {
		b := (*[36]byte)(dst)
		for s := 0; s < 4; s++ {
			x := (*[16]float32)(src[16*s:])
			var amax float32
			for _, v := range x {
				if a := float32(math.Abs(float64(v))); amax < a {
					amax = a
				}
			}
			ue := float32ToUE4M3(amax / 6)
			b[s] = ue
			d := ue4m3HalfToFloat32(ue)
			qs := (*[8]byte)(b[4+8*s:])
			for j := range qs {
				qs[j] = mxfp4Index(x[j], d) | mxfp4Index(x[j+8], d)<<4
			}
		}
		src, dst = src[64:], dst[36:]
	}
}

// Q1_0: d = mean |x|; one bit per element, set for x ≥ 0.
func quantQ1_0(src []float32, dst []byte) {
	for len(src) >= 128 && len(dst) >= 18 {
		x := (*[128]float32)(src)
		var sum float32
		for _, v := range x {
			sum += float32(math.Abs(float64(v)))
		}
		putF16(dst, sum/128)
		qs := (*[16]byte)(dst[2:18])
		clear(qs[:])
		for j, v := range x {
			if v >= 0 {
				qs[j/8] |= 1 << (j % 8)
			}
		}
		src, dst = src[128:], dst[18:]
	}
}

// Q2_0: d = amax; codes round(x/d)+1 clamped to 0–3 (values -1, 0, 1, 2).
func quantQ2_0(src []float32, dst []byte) {
	for len(src) >= 64 && len(dst) >= 18 {
		x := (*[64]float32)(src)
		var d float32
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); a > d {
				d = a
			}
		}
		var id float32
		if d > 0 {
			id = 1 / d
		}
		putF16(dst, d)
		qs := (*[16]byte)(dst[2:18])
		clear(qs[:])
		for j, v := range x {
			q := max(0, min(3, int(roundAway(v*id))+1))
			qs[j/4] |= byte(q) << (2 * (j % 4))
		}
		src, dst = src[64:], dst[18:]
	}
}
