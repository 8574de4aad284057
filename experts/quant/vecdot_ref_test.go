package quant

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/rotary-moe/rotary/experts"
)

// refVecDot is a deliberately plain implementation of the dot products: every
// weight is decoded on its own from its element index with the format's bit
// layout, products are summed in int over each block, and the block sums are
// combined with the float arithmetic documented on VecDot (ggml's generic C).

func refF16(b []byte, off int) float32 {
	return Float16ToFloat32(uint16(b[off]) | uint16(b[off+1])<<8)
}

// refNibble returns element i (0–31) of a 32-element block of nibbles laid
// out as ggml's 4-bit formats do: low nibbles first, then high nibbles.
func refNibble(qs []byte, i int) int {
	if i < 16 {
		return int(qs[i] & 15)
	}
	return int(qs[i-16] >> 4)
}

// refQ8 is one element of int8 activations: its value code and its block's
// scale fields.
type refAct struct {
	q    int
	d, s float32 // s only for Q8_1
}

func refActivation(at experts.Type, act []byte, i int) refAct {
	switch at {
	case experts.TypeQ8_0:
		b := act[34*(i/32):]
		return refAct{q: int(int8(b[2+i%32])), d: refF16(b, 0)}
	case experts.TypeQ8_1:
		b := act[36*(i/32):]
		return refAct{q: int(int8(b[4+i%32])), d: refF16(b, 0), s: refF16(b, 2)}
	case experts.TypeQ8_K:
		b := act[292*(i/256):]
		return refAct{q: int(int8(b[4+i%256])), d: math.Float32frombits(binary.LittleEndian.Uint32(b))}
	}
	panic(at)
}

// refK2Bits is the 2-bit field of element i (0–255) in Q2_K/Q3_K/TQ2_0
// layouts: 32 bytes per 128 elements, four bit pairs per byte, pair k
// holding elements 32k..32k+31 of the 128.
func refK2Bits(qs []byte, i int) int {
	return int(qs[32*(i/128)+i%32]>>(2*((i%128)/32))) & 3
}

// refK6 returns the 6-bit scale and min of sub-block j of a Q4_K/Q5_K
// super-block: j < 4 in the low 6 bits of bytes j and j+4; j ≥ 4 split into
// a nibble of byte j+4 and the top 2 bits of bytes j-4 and j.
func refK6(sc []byte, j int) (scale, min int) {
	if j < 4 {
		return int(sc[j] & 63), int(sc[j+4] & 63)
	}
	scale = int(sc[j+4]&15) + 16*int(sc[j-4]>>6)
	min = int(sc[j+4]>>4) + 16*int(sc[j]>>6)
	return scale, min
}

func refTrit(b byte, n int) int {
	p := byte(1)
	for range n {
		p *= 3
	}
	return int(uint16(b*p)*3>>8) - 1
}

func refVecDot(t testing.TB, typ experts.Type, n int, w, act []byte) float32 {
	t.Helper()
	at := VecDotType(typ)
	bs, bb := typ.BlockSize(), typ.BlockBytes()
	a := func(i int) refAct { return refActivation(at, act, i) }
	var sumf float32
	switch typ {
	case experts.TypeF32, experts.TypeF16, experts.TypeBF16:
		var s [4]float64
		for i := 0; i < n; i++ {
			var x, y float32
			switch typ {
			case experts.TypeF32:
				x = math.Float32frombits(binary.LittleEndian.Uint32(w[4*i:]))
				y = math.Float32frombits(binary.LittleEndian.Uint32(act[4*i:]))
			case experts.TypeF16:
				x, y = refF16(w, 2*i), refF16(act, 2*i)
			case experts.TypeBF16:
				x = math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i:])) << 16)
				y = math.Float32frombits(uint32(binary.LittleEndian.Uint16(act[2*i:])) << 16)
			}
			s[i%4] += float64(x * y)
		}
		return float32((s[0] + s[1]) + (s[2] + s[3]))
	}
	for b := 0; b < n/bs; b++ {
		x := w[b*bb : (b+1)*bb]
		first := b * bs
		switch typ {
		case experts.TypeQ4_0, experts.TypeQ5_0, experts.TypeQ8_0, experts.TypeIQ4_NL, experts.TypeMXFP4:
			sumi := 0
			for i := 0; i < 32; i++ {
				var code int
				switch typ {
				case experts.TypeQ4_0:
					code = refNibble(x[2:], i) - 8
				case experts.TypeQ5_0:
					code = refNibble(x[6:], i) + 16*int(binary.LittleEndian.Uint32(x[2:])>>i&1) - 16
				case experts.TypeQ8_0:
					code = int(int8(x[2+i]))
				case experts.TypeIQ4_NL:
					code = int(kvaluesIQ4NL[refNibble(x[2:], i)])
				case experts.TypeMXFP4:
					code = int(kvaluesMXFP4[refNibble(x[1:], i)])
				}
				sumi += code * a(first+i).q
			}
			dy := a(first).d
			switch typ {
			case experts.TypeQ4_0:
				sumf += float32(float32(float32(sumi)*refF16(x, 0)) * dy)
			case experts.TypeQ5_0:
				sumf += float32(float32(refF16(x, 0)*dy) * float32(sumi))
			case experts.TypeQ8_0:
				sumf += float32(float32(sumi) * (refF16(x, 0) * dy))
			case experts.TypeIQ4_NL:
				sumf += float32(float32(dy*refF16(x, 0)) * float32(sumi))
			case experts.TypeMXFP4:
				sumf += float32(float32(dy*e8m0HalfToFloat32(x[0])) * float32(sumi))
			}
		case experts.TypeQ4_1, experts.TypeQ5_1:
			sumi := 0
			for i := 0; i < 32; i++ {
				code := refNibble(x[4:], i)
				if typ == experts.TypeQ5_1 {
					code = refNibble(x[8:], i) + 16*int(binary.LittleEndian.Uint32(x[4:])>>i&1)
				}
				sumi += code * a(first+i).q
			}
			y := a(first)
			sumf += float32(float32(refF16(x, 0)*y.d)*float32(sumi)) + float32(refF16(x, 2)*y.s)
		case experts.TypeNVFP4:
			for s := 0; s < 4; s++ {
				sumi := 0
				for j := 0; j < 16; j++ {
					byt := x[4+8*s+j%8]
					nib := byt & 15
					if j >= 8 {
						nib = byt >> 4
					}
					sumi += int(kvaluesMXFP4[nib]) * a(first+16*s+j).q
				}
				sumf += float32(float32(a(first+16*s).d*ue4m3HalfToFloat32(x[s])) * float32(sumi))
			}
		case experts.TypeQ1_0, experts.TypeQ2_0:
			var partial float32
			for k := 0; k < bs/32; k++ {
				s := 0
				for j := 0; j < 32; j++ {
					i := 32*k + j
					var code int
					if typ == experts.TypeQ1_0 {
						code = 2*int(x[2+i/8]>>(i%8)&1) - 1
					} else {
						code = int(x[2+i/4]>>(2*(i%4))&3) - 1
					}
					s += code * a(first+i).q
				}
				partial += float32(a(first+32*k).d * float32(s))
			}
			sumf += float32(refF16(x, 0) * partial)
		case experts.TypeTQ1_0, experts.TypeTQ2_0:
			sum := 0
			for i := 0; i < 256; i++ {
				var code int
				if typ == experts.TypeTQ2_0 {
					code = refK2Bits(x, i) - 1
				} else {
					switch {
					case i < 160:
						code = refTrit(x[i%32], i/32)
					case i < 240:
						code = refTrit(x[32+(i-160)%16], (i-160)/16)
					default:
						code = refTrit(x[48+(i-240)%4], (i-240)/4)
					}
				}
				sum += code * a(first+i).q
			}
			dy := a(first).d
			if typ == experts.TypeTQ2_0 {
				sumf += float32(float32(sum) * (dy * refF16(x, 64)))
			} else {
				sumf += float32(float32(sum) * (refF16(x, 52) * dy))
			}
		case experts.TypeQ2_K:
			isum, summs := 0, 0
			for i := 0; i < 256; i++ {
				sc := x[i/16]
				q := a(first + i).q
				isum += int(sc&15) * refK2Bits(x[16:], i) * q
				summs += int(sc>>4) * q
			}
			dy := a(first).d
			dall, dmin := dy*refF16(x, 80), dy*refF16(x, 82)
			sumf += float32(float32(dall*float32(isum)) - float32(dmin*float32(summs)))
		case experts.TypeQ3_K:
			isum := 0
			for i := 0; i < 256; i++ {
				j := i / 16
				scale := int(x[96+j%8]>>(4*(j/8))&15) + 16*int(x[96+8+j%4]>>(2*(j/4))&3) - 32
				code := refK2Bits(x[32:], i) - 4 + 4*int(x[i%32]>>(i/32)&1)
				isum += scale * code * a(first+i).q
			}
			sumf += float32(float32(refF16(x, 108)*a(first).d) * float32(isum))
		case experts.TypeQ4_K, experts.TypeQ5_K:
			isum, summ := 0, 0
			for i := 0; i < 256; i++ {
				scale, min := refK6(x[4:16], i/32)
				var code int
				if typ == experts.TypeQ4_K {
					code = int(x[16+32*(i/64)+i%32]>>(4*((i%64)/32))) & 15
				} else {
					code = int(x[48+32*(i/64)+i%32]>>(4*((i%64)/32)))&15 + 16*int(x[16+i%32]>>(i/32)&1)
				}
				q := a(first + i).q
				isum += scale * code * q
				summ += min * q
			}
			dy := a(first).d
			d, dmin := refF16(x, 0)*dy, refF16(x, 2)*dy
			sumf += float32(float32(d*float32(isum)) - float32(dmin*float32(summ)))
		case experts.TypeQ6_K:
			isum := 0
			for i := 0; i < 256; i++ {
				half, l, quarter := i/128, i%32, (i%128)/32
				lowByte := x[64*half+l+32*(quarter%2)]
				low := int(lowByte & 15)
				if quarter >= 2 {
					low = int(lowByte >> 4)
				}
				high := int(x[128+32*half+l]>>(2*quarter)) & 3
				code := low + 16*high - 32
				isum += int(int8(x[192+i/16])) * code * a(first+i).q
			}
			sumf += float32(float32(refF16(x, 208)*a(first).d) * float32(isum))
		case experts.TypeIQ4_XS:
			isum := 0
			for i := 0; i < 256; i++ {
				ib, j := i/32, i%32
				ls := int(x[4+ib/2]>>(4*(ib%2))&15) + 16*int(binary.LittleEndian.Uint16(x[2:])>>(2*ib)&3)
				byt := x[8+16*ib+j%16]
				nib := byt & 15
				if j >= 16 {
					nib = byt >> 4
				}
				isum += (ls - 32) * int(kvaluesIQ4NL[nib]) * a(first+i).q
			}
			sumf += float32(float32(refF16(x, 0)*a(first).d) * float32(isum))
		default:
			t.Fatalf("refVecDot: no reference for %v", typ)
		}
	}
	return sumf
}
