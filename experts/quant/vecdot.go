package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/rotary-moe/rotary/experts"
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
var vecDotTypes = [...]experts.Type{
	experts.TypeF32:     experts.TypeF32,
	experts.TypeF16:     experts.TypeF16,
	experts.TypeBF16:    experts.TypeBF16,
	experts.TypeQ4_0:    experts.TypeQ8_0,
	experts.TypeQ4_1:    experts.TypeQ8_1,
	experts.TypeQ5_0:    experts.TypeQ8_0,
	experts.TypeQ5_1:    experts.TypeQ8_1,
	experts.TypeQ8_0:    experts.TypeQ8_0,
	experts.TypeQ8_1:    experts.TypeQ8_1,
	experts.TypeQ2_K:    experts.TypeQ8_K,
	experts.TypeQ3_K:    experts.TypeQ8_K,
	experts.TypeQ4_K:    experts.TypeQ8_K,
	experts.TypeQ5_K:    experts.TypeQ8_K,
	experts.TypeQ6_K:    experts.TypeQ8_K,
	experts.TypeIQ2_XXS: experts.TypeQ8_K,
	experts.TypeIQ2_XS:  experts.TypeQ8_K,
	experts.TypeIQ3_XXS: experts.TypeQ8_K,
	experts.TypeIQ1_S:   experts.TypeQ8_K,
	experts.TypeIQ4_NL:  experts.TypeQ8_0,
	experts.TypeIQ3_S:   experts.TypeQ8_K,
	experts.TypeIQ2_S:   experts.TypeQ8_K,
	experts.TypeIQ4_XS:  experts.TypeQ8_K,
	experts.TypeIQ1_M:   experts.TypeQ8_K,
	experts.TypeTQ1_0:   experts.TypeQ8_K,
	experts.TypeTQ2_0:   experts.TypeQ8_K,
	experts.TypeMXFP4:   experts.TypeQ8_0,
	experts.TypeNVFP4:   experts.TypeQ8_0,
	experts.TypeQ1_0:    experts.TypeQ8_0,
	experts.TypeQ2_0:    experts.TypeQ8_0,
}

// dotKernels are the dot products this package implements. Each gets w and
// act cut to exactly the blocks of one row.
var dotKernels = [...]func(w, act []byte) float32{
	experts.TypeF32:    dotF32,
	experts.TypeF16:    dotF16,
	experts.TypeBF16:   dotBF16,
	experts.TypeQ4_0:   dotQ4_0,
	experts.TypeQ4_1:   dotQ4_1,
	experts.TypeQ5_0:   dotQ5_0,
	experts.TypeQ5_1:   dotQ5_1,
	experts.TypeQ8_0:   dotQ8_0,
	experts.TypeQ2_K:   dotQ2K,
	experts.TypeQ3_K:   dotQ3K,
	experts.TypeQ4_K:   dotQ4K,
	experts.TypeQ5_K:   dotQ5K,
	experts.TypeQ6_K:   dotQ6K,
	experts.TypeIQ4_NL: dotIQ4NL,
	experts.TypeIQ4_XS: dotIQ4XS,
	experts.TypeTQ1_0:  dotTQ1_0,
	experts.TypeTQ2_0:  dotTQ2_0,
	experts.TypeMXFP4:  dotMXFP4,
	experts.TypeNVFP4:  dotNVFP4,
	experts.TypeQ1_0:   dotQ1_0,
	experts.TypeQ2_0:   dotQ2_0,
}

// dotPlan is what VecDot needs per weight type, gathered so that the per-row
// call reads one entry.
type dotPlan struct {
	kernel                  func(w, act []byte) float32
	wBlockSize, wBlockBytes int
	aBlockSize, aBlockBytes int
}

// dotPlans is indexed by Type, like dotKernels.
var dotPlans = func() (plans [len(dotKernels)]dotPlan) {
	for i, kernel := range dotKernels {
		if t := experts.Type(i); kernel != nil {
			at := VecDotType(t)
			plans[t] = dotPlan{kernel, t.BlockSize(), t.BlockBytes(), at.BlockSize(), at.BlockBytes()}
		}
	}
	return plans
}()

// VecDotType is the type ggml's CPU backend converts activations to before a
// dot product with weights of type t (Q8_0 for Q4_0, Q5_0, Q8_0, IQ4_NL and
// MXFP4; Q8_1 for Q4_1 and Q5_1; Q8_K for the K-quants and IQ4_XS; F16, BF16
// and F32 for themselves). Types ggml cannot multiply report F32, the zero
// value of ggml's table.
func VecDotType(t experts.Type) experts.Type {
	return byType(vecDotTypes[:], t)
}

// CanVecDot reports whether VecDot supports weights of type t.
func CanVecDot(t experts.Type) bool {
	return byType(dotKernels[:], t) != nil
}

// VecDot returns the dot product of n weights of type t, stored in w, with n
// activations stored in act as VecDotType(t) (see QuantizeActivations).
//
// It is the inner loop of matrix-vector products and checks nothing beyond
// what Go's bounds checks do: n must be a multiple of t.BlockSize(), w and
// act must hold at least the bytes n elements take, and t must satisfy
// CanVecDot. Violations panic (short slices, unsupported type) or, for an n
// that is not a multiple of the block size, ignore the partial block. Callers
// validate once per matrix, with VecDotChecked on its first row or by
// comparing t.RowBytes(n) and VecDotType(t).RowBytes(n) with their buffers.
// VecDot does not allocate.
func VecDot(t experts.Type, n int, w, act []byte) float32 {
	p := byType(dotPlans[:], t)
	if p.kernel == nil {
		panic(fmt.Sprintf("quant: VecDot: no dot product for %v", t))
	}
	return p.kernel(w[:n/p.wBlockSize*p.wBlockBytes], act[:n/p.aBlockSize*p.aBlockBytes])
}

// VecDotChecked is VecDot with its arguments validated: w must be exactly
// t.RowBytes(n) bytes and act exactly VecDotType(t).RowBytes(n). Errors wrap
// ErrUnknownType, ErrUnsupportedType or ErrQuantSize.
func VecDotChecked(t experts.Type, n int, w, act []byte) (float32, error) {
	if !t.Known() {
		return 0, fmt.Errorf("%w: %v", experts.ErrUnknownType, t)
	}
	if !CanVecDot(t) {
		return 0, fmt.Errorf("%w: no dot product for %v", experts.ErrUnsupportedType, t)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: negative element count %d", ErrQuantSize, n)
	}
	if err := checkQuantSize(t, len(w), n); err != nil {
		return 0, fmt.Errorf("quant: vec dot weights: %w", err)
	}
	if err := checkQuantSize(VecDotType(t), len(act), n); err != nil {
		return 0, fmt.Errorf("quant: vec dot activations: %w", err)
	}
	return VecDot(t, n, w, act), nil
}

// MatVec multiplies len(out) rows of n weights of type t, stored back to back
// in w, with one activation vector act in VecDotType(t):
// out[r] = VecDot(t, n, row r, act). It validates the sizes once, so it suits
// whole matrices or row ranges handed to parallel workers.
func MatVec(t experts.Type, n int, w, act []byte, out []float32) error {
	if len(out) == 0 {
		return nil
	}
	rowBytes, err := t.RowBytes(uint64(max(n, 0)))
	if err != nil {
		return fmt.Errorf("quant: mat vec: %w: %w", ErrQuantSize, err)
	}
	if uint64(len(w)) != rowBytes*uint64(len(out)) {
		return fmt.Errorf("quant: mat vec: %w: %d rows of %d %v elements take %d bytes, got %d",
			ErrQuantSize, len(out), n, t, rowBytes*uint64(len(out)), len(w))
	}
	row := int(rowBytes)
	if _, err := VecDotChecked(t, n, w[:row], act); err != nil {
		return fmt.Errorf("quant: mat vec: %w", err)
	}
	for r := range out {
		out[r] = VecDot(t, n, w[r*row:(r+1)*row], act)
	}
	return nil
}

// dotI8x32 is the exact integer dot product of two blocks of 32 int8. Each
// weight byte is split into its low nibble and its signed high nibble
// (x = 16·hi + lo) so that the products fit the packed lanes of swarMul.
func dotI8x32(x, y *[32]byte) int32 {
	var s int32
	for i := 0; i <= 24; i += 8 {
		w := le64(x[i:])
		ye, yo := swarActivations(le64(y[i:]))
		s += 16*swarMul(w>>4&swarNibbles^0x0808080808080808, ye, yo, 8*swarLane) + swarMul(w&swarNibbles, ye, yo, 0)
	}
	return s
}

// The integer cores of the formats with linear codes are computed four products
// per 64-bit multiplication ("SIMD within a register"). Four codes c and four
// activations y are spread over the 16-bit lanes of two integers, the codes
// in reverse lane order, so that lane 3 of the product, Σc·y, is the
// coefficient of 2⁴⁸ in (Σ c_{3-k}·2¹⁶ᵏ)·(Σ y_k·2¹⁶ᵏ). Lanes hold signed values
// (the integers are those sums taken mod 2⁶⁴), every lane of the product
// stays below 2¹⁵ in magnitude as long as |c| ≤ 63 and |y| ≤ 128, and adding
// 2⁴⁷ before the arithmetic shift cancels the borrows of the lower lanes, so
// the extraction is exact.

const (
	swarNibbles = 0x0f0f0f0f0f0f0f0f // low nibble of each byte
	swarPairs   = 0x0303030303030303 // low two bits of each byte
	swarBits    = 0x0101010101010101 // low bit of each byte
	swarEven    = 0x00ff00ff00ff00ff // even bytes, i.e. the low byte of each 16-bit lane
	swarSign8   = 0x8080808080808080 // sign bit of each byte
	swarLane    = 0x0001000100010001 // 1 in each 16-bit lane
)

// swarDot8 returns Σ (c[i]-off)·y[i] over the 8 bytes of c (unsigned codes,
// little-endian) and y (int8, little-endian), where o is off in every 16-bit
// lane (off·swarLane) and |c-off| ≤ 63.
func swarDot8(c, y, o uint64) int32 {
	ye, yo := swarActivations(y)
	return swarMul(c, ye, yo, o)
}

// swarActivations spreads 8 int8 over the 16-bit lanes of two integers: the
// even-indexed ones (y0, y2, y4, y6) and the odd ones.
func swarActivations(y uint64) (even, odd uint64) {
	u := y ^ swarSign8 // int8 → y+128, so lanes can be sign-extended by a subtraction
	return u&swarEven - 128*swarLane, u>>8&swarEven - 128*swarLane
}

// swarMul is swarDot8 for activations already spread by swarActivations.
func swarMul(c, ye, yo, o uint64) int32 {
	r := bits.ReverseBytes64(c)
	// Even lanes of r hold c7, c5, c3, c1 and odd ones c6, c4, c2, c0.
	return int32(int64((r>>8&swarEven-o)*ye+1<<47)>>48 + int64((r&swarEven-o)*yo+1<<47)>>48)
}

// le64 reads 8 little-endian bytes.
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// spreadBits8 moves bit k of b to bit 0 of byte k.
func spreadBits8(b byte) uint64 {
	x := uint64(b)
	x = (x | x<<28) & 0x0000000f0000000f
	x = (x | x<<14) & 0x0003000300030003
	return (x | x<<7) & swarBits
}

// dotNibbleBlock returns Σ (q-off)·y for a 32-element block of nibbles (low
// nibbles are elements 0–15, high nibbles 16–31) and 32 int8, with optional
// fifth bits (bit j of qh for element j; 0 when the format has none). off
// is the code offset in every 16-bit lane, as for swarDot8.
func dotNibbleBlock(q *[16]byte, qh uint32, y *[32]byte, off uint64) int32 {
	w0, w1 := le64(q[0:]), le64(q[8:])
	h0, h1 := spreadBits8(byte(qh))<<4, spreadBits8(byte(qh>>8))<<4
	h2, h3 := spreadBits8(byte(qh>>16))<<4, spreadBits8(byte(qh>>24))<<4
	return swarDot8(w0&swarNibbles|h0, le64(y[0:]), off) +
		swarDot8(w1&swarNibbles|h1, le64(y[8:]), off) +
		swarDot8(w0>>4&swarNibbles|h2, le64(y[16:]), off) +
		swarDot8(w1>>4&swarNibbles|h3, le64(y[24:]), off)
}

// nibblePairs maps each byte to the code-table values of its low and high
// nibble, so a 4-bit non-linear format costs one lookup per byte.
type nibblePairs [256][2]int32

func makeNibblePairs(k *[16]int8) *nibblePairs {
	var p nibblePairs
	for b := range p {
		p[b] = [2]int32{int32(k[b&15]), int32(k[b>>4])}
	}
	return &p
}

var (
	pairsIQ4NL = makeNibblePairs(&kvaluesIQ4NL)
	pairsMXFP4 = makeNibblePairs(&kvaluesMXFP4)
)

// dotTable16 returns Σ k[lo(q[j])]·y[j] + k[hi(q[j])]·y[j+16] for the code
// table k behind p (IQ4_NL, IQ4_XS, MXFP4).
func dotTable16(p *nibblePairs, q *[16]byte, y *[32]byte) int32 {
	var s0, s1 int32
	for j, b := range q {
		v := &p[b]
		s0 += v[0] * int32(int8(y[j]))
		s1 += v[1] * int32(int8(y[j+16]))
	}
	return s0 + s1
}

// dotF32, dotF16 and dotBF16 differ only in how an element decodes, yet they
// stay three loops: each walks its rows through fixed-size array pointers, so
// the loop has no bounds checks and the decoding inlines. Every shared form
// tried was slower on 2048-element rows (medians of 8, 2-core AMD EPYC): the
// decoder as a function value or as a type parameter's method 3.7× (F32) and
// 2.7-3.2× (F16), a switch on the type per element 4.2× and 1.8×, decoding
// 256-element chunks with the dequantizers 2.1× and 1.1×.
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

// Q4_0·Q8_0: Σ(q-8)·y; sumf += (sumi·dx)·dy.
func dotQ4_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 18 && len(act) >= 34 {
		sumi := dotNibbleBlock((*[16]byte)(w[2:18]), 0, (*[32]byte)(act[2:34]), 8*swarLane)
		sumf += float32(float32(float32(sumi)*f16At(w)) * f16At(act))
		w, act = w[18:], act[34:]
	}
	return sumf
}

// Q4_1·Q8_1: (dx·dy)·Σq·y + m·s, where s = dy·Σy comes with the activations.
func dotQ4_1(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 20 && len(act) >= 36 {
		sumi := dotNibbleBlock((*[16]byte)(w[4:20]), 0, (*[32]byte)(act[4:36]), 0)
		scaled := float32(f16At(w)*f16At(act)) * float32(sumi)
		sumf += float32(scaled) + float32(f16At(w[2:])*f16At(act[2:]))
		w, act = w[20:], act[36:]
	}
	return sumf
}

// Q5_0·Q8_0: Σ(q-16)·y; sumf += (dx·dy)·sumi.
func dotQ5_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 22 && len(act) >= 34 {
		sumi := dotNibbleBlock((*[16]byte)(w[6:22]), binary.LittleEndian.Uint32(w[2:]), (*[32]byte)(act[2:34]), 16*swarLane)
		sumf += float32(float32(f16At(w)*f16At(act)) * float32(sumi))
		w, act = w[22:], act[34:]
	}
	return sumf
}

// Q5_1·Q8_1: like Q4_1 with 5-bit codes.
func dotQ5_1(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 24 && len(act) >= 36 {
		sumi := dotNibbleBlock((*[16]byte)(w[8:24]), binary.LittleEndian.Uint32(w[4:]), (*[32]byte)(act[4:36]), 0)
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
		sumi := dotTable16(pairsIQ4NL, (*[16]byte)(w[2:18]), (*[32]byte)(act[2:34]))
		sumf += float32(float32(f16At(act)*f16At(w)) * float32(sumi))
		w, act = w[18:], act[34:]
	}
	return sumf
}

// MXFP4·Q8_0: sumf += (dy·e/2)·Σk·y.
func dotMXFP4(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 17 && len(act) >= 34 {
		sumi := dotTable16(pairsMXFP4, (*[16]byte)(w[1:17]), (*[32]byte)(act[2:34]))
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
				v := &pairsMXFP4[q]
				sumi += int32(int8(qy[j]))*v[0] + int32(int8(qy[j+8]))*v[1]
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
			y := (*[34]byte)(act[34*k:])
			var s int32
			for j := 0; j < 4; j++ { // bit set: +y, clear: -y, i.e. code 2·bit - 1
				s += swarDot8(spreadBits8(qs[4*k+j])<<1, le64(y[2+8*j:]), swarLane)
			}
			sumi += float32(f16At(y[:]) * float32(s))
		}
		sumf += float32(f16At(w) * sumi)
		w, act = w[18:], act[136:]
	}
	return sumf
}

// spreadPairs8 moves bit pair k of p to the low bits of byte k.
func spreadPairs8(p uint16) uint64 {
	x := uint64(p)
	x = (x | x<<24) & 0x000000ff000000ff
	x = (x | x<<12) & 0x000f000f000f000f
	return (x | x<<6) & swarPairs
}

// Q2_0·Q8_0: 64 two-bit codes (value code-1, four per byte, least
// significant first) against two Q8_0 blocks.
func dotQ2_0(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 18 && len(act) >= 68 {
		qs := (*[16]byte)(w[2:18])
		var sumi float32
		for k := 0; k < 2; k++ {
			y := (*[34]byte)(act[34*k:])
			var s int32
			for j := 0; j < 4; j++ {
				codes := spreadPairs8(binary.LittleEndian.Uint16(qs[8*k+2*j:]))
				s += swarDot8(codes, le64(y[2+8*j:]), swarLane)
			}
			sumi += float32(f16At(y[:]) * float32(s))
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
			w0, w1, w2, w3 := le64(q[0:]), le64(q[8:]), le64(q[16:]), le64(q[24:])
			for shift := 0; shift < 8; shift += 2 {
				qy := (*[32]byte)(y[4+32*(g/2):])
				s0 := swarDot8(w0>>shift&swarPairs, le64(qy[0:]), 0) + swarDot8(w1>>shift&swarPairs, le64(qy[8:]), 0)
				s1 := swarDot8(w2>>shift&swarPairs, le64(qy[16:]), 0) + swarDot8(w3>>shift&swarPairs, le64(qy[24:]), 0)
				isum += int32(x[g&15]&15)*s0 + int32(x[(g+1)&15]&15)*s1
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
		m0, m1, m2, m3 := le64(hm[0:]), le64(hm[8:]), le64(hm[16:]), le64(hm[24:])
		scales := q3KScales((*[12]byte)(x[96:108]))
		var isum int32
		g := 0
		bit := 0 // hmask bit of the current 32 elements
		for half := 0; half < 2; half++ {
			q := (*[32]byte)(x[32+32*half:])
			w0, w1, w2, w3 := le64(q[0:]), le64(q[8:]), le64(q[16:]), le64(q[24:])
			for shift := 0; shift < 8; shift += 2 {
				qy := (*[32]byte)(y[4+32*(g/2):])
				// code = low two bits + 4·high bit, value = code - 4
				s0 := swarDot8(w0>>shift&swarPairs|m0>>bit&swarBits<<2, le64(qy[0:]), 4*swarLane) +
					swarDot8(w1>>shift&swarPairs|m1>>bit&swarBits<<2, le64(qy[8:]), 4*swarLane)
				s1 := swarDot8(w2>>shift&swarPairs|m2>>bit&swarBits<<2, le64(qy[16:]), 4*swarLane) +
					swarDot8(w3>>shift&swarPairs|m3>>bit&swarBits<<2, le64(qy[24:]), 4*swarLane)
				isum += int32(scales[g&15])*s0 + int32(scales[(g+1)&15])*s1
				g += 2
				bit++
			}
		}
		sumf += float32(float32(f16At(x[108:])*q8KScale(y[:])) * float32(isum))
		w, act = w[110:], act[292:]
	}
	return sumf
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
// sumf += d·isum - dmin·summ with d = dx·dy, dmin = dminx·dy. Byte range j
// (32 bytes) holds sub-block 2j in its low nibbles and 2j+1 in its high ones.
func dotQ4K(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 144 && len(act) >= 292 {
		x := (*[144]byte)(w)
		y := (*[292]byte)(act)
		scales := (*[12]byte)(x[4:16])
		var isum int32
		for j := 0; j < 4; j++ {
			q := (*[32]byte)(x[16+32*j:])
			ylo := (*[32]byte)(y[4+64*j:])
			yhi := (*[32]byte)(y[36+64*j:])
			var lo, hi int32
			for i := 0; i <= 24; i += 8 {
				v := le64(q[i:])
				lo += swarDot8(v&swarNibbles, le64(ylo[i:]), 0)
				hi += swarDot8(v>>4&swarNibbles, le64(yhi[i:]), 0)
			}
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

// Q5_K·Q8_K: Q4_K with a fifth bit per element from qh (bit 2j of qh[l] for
// element l of sub-block 2j, bit 2j+1 for sub-block 2j+1).
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
			var lo, hi int32
			for i := 0; i <= 24; i += 8 {
				v, h := le64(q[i:]), le64(qh[i:])>>(2*j)
				lo += swarDot8(v&swarNibbles|h&swarBits<<4, le64(ylo[i:]), 0)
				hi += swarDot8(v>>4&swarNibbles|h>>1&swarBits<<4, le64(yhi[i:]), 0)
			}
			sc1, _ := kScaleMin(2*j, scales)
			sc2, _ := kScaleMin(2*j+1, scales)
			isum += int32(sc1)*lo + int32(sc2)*hi
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

// Q6_K·Q8_K: Σ sc·Σ(q-32)·y over 16 groups of 16; sumf += (dx·dy)·isum.
// Each half of the super-block has 64 bytes of low nibbles and 32 of high
// bit pairs: byte l of each holds element l of the four 32-element quarters.
func dotQ6K(w, act []byte) float32 {
	var sumf float32
	for len(w) >= 210 && len(act) >= 292 {
		x := (*[210]byte)(w)
		y := (*[292]byte)(act)
		sc := (*[16]byte)(x[192:208])
		var isum int32
		for half := 0; half < 2; half++ {
			ql := (*[64]byte)(x[64*half:])
			qh := (*[32]byte)(x[128+32*half:])
			qy := (*[128]byte)(y[4+128*half:])
			s := (*[8]byte)(sc[8*half:])
			var g [8]int32 // sums per group of 16 in this half
			for i := 0; i <= 24; i += 8 {
				a, b, h := le64(ql[i:]), le64(ql[32+i:]), le64(qh[i:])
				k := i / 16
				g[k] += swarDot8(a&swarNibbles|h&swarPairs<<4, le64(qy[i:]), 32*swarLane)
				g[k+2] += swarDot8(b&swarNibbles|h>>2&swarPairs<<4, le64(qy[32+i:]), 32*swarLane)
				g[k+4] += swarDot8(a>>4&swarNibbles|h>>4&swarPairs<<4, le64(qy[64+i:]), 32*swarLane)
				g[k+6] += swarDot8(b>>4&swarNibbles|h>>6&swarPairs<<4, le64(qy[96+i:]), 32*swarLane)
			}
			for k, v := range g {
				isum += int32(int8(s[k])) * v
			}
		}
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
			s := dotTable16(pairsIQ4NL, (*[16]byte)(x[8+16*ib:]), (*[32]byte)(y[4+32*ib:]))
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
			for i := 0; i <= 24; i += 8 {
				v := le64(qs[i:])
				for l := 0; l < 4; l++ {
					sumi += swarDot8(v>>(2*l)&swarPairs, le64(qy[32*l+i:]), swarLane)
				}
			}
		}
		sumf += float32(float32(sumi) * (q8KScale(y[:]) * f16At(x[64:])))
		w, act = w[66:], act[292:]
	}
	return sumf
}
