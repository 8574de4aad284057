package quant

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

// Hand-built blocks: each case sets a few fields of one block and states,
// worked out by hand from the format's definition in ggml-common.h, the value
// of selected elements. The fields are chosen so that mixing up nibble
// order, bit positions or scale packing changes at least one expected value.

const (
	f16Half     = 0x3800 // 0.5
	f16One      = 0x3c00 // 1.0
	f16Two      = 0x4000 // 2.0
	f16Quarter  = 0x3400 // 0.25
	f16MinusOne = 0xbc00 // -1.0
)

type dequantCase struct {
	name  string
	typ   experts.Type
	block func(b []byte)  // fills a zeroed block
	want  map[int]float32 // element index → value
}

func put16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }

func dequantCases() []dequantCase {
	return []dequantCase{
		{"Q4_0", experts.TypeQ4_0, func(b []byte) {
			put16(b, 0, f16Half)
			b[2] = 0xf0  // element 0 = (0-8)·0.5, element 16 = (15-8)·0.5
			b[17] = 0x3a // element 15 = (10-8)·0.5, element 31 = (3-8)·0.5
		}, map[int]float32{0: -4, 16: 3.5, 15: 1, 31: -2.5, 1: -4, 17: -4}},

		{"Q4_1", experts.TypeQ4_1, func(b []byte) {
			put16(b, 0, f16Half)     // d
			put16(b, 2, f16MinusOne) // m
			b[4] = 0x9f              // element 0 = 15·0.5-1, element 16 = 9·0.5-1
			b[19] = 0x01             // element 15 = 1·0.5-1, element 31 = -1
		}, map[int]float32{0: 6.5, 16: 3.5, 15: -0.5, 31: -1, 5: -1}},

		{"Q5_0", experts.TypeQ5_0, func(b []byte) {
			put16(b, 0, f16One)
			binary.LittleEndian.PutUint32(b[2:], 1<<0|1<<17|1<<31) // fifth bits of elements 0, 17, 31
			b[6] = 0x21                                            // element 0 = (1+16-16), element 16 = 2-16
			b[7] = 0x43                                            // element 1 = 3-16, element 17 = (4+16)-16
			b[21] = 0xf0                                           // element 15 = 0-16, element 31 = (15+16)-16
		}, map[int]float32{0: 1, 16: -14, 1: -13, 17: 4, 15: -16, 31: 15}},

		{"Q5_1", experts.TypeQ5_1, func(b []byte) {
			put16(b, 0, f16Half)
			put16(b, 2, f16Two)
			binary.LittleEndian.PutUint32(b[4:], 1<<3|1<<16)
			b[8+3] = 0x0f // element 3 = (15+16)·0.5+2, element 19 = 0·0.5+2
			b[8] = 0x10   // element 0 = 0+2, element 16 = (1+16)·0.5+2
		}, map[int]float32{3: 17.5, 19: 2, 0: 2, 16: 10.5}},

		{"Q8_0", experts.TypeQ8_0, func(b []byte) {
			put16(b, 0, f16Quarter)
			b[2] = 0x80  // -128
			b[3] = 0x7f  // 127
			b[33] = 0xfe // element 31 = -2
		}, map[int]float32{0: -32, 1: 31.75, 31: -0.5, 2: 0}},

		{"Q2_K", experts.TypeQ2_K, func(b []byte) {
			b[0] = 0x23           // group 0 (elements 0–15): scale 3, min 2
			b[5] = 0x17           // group 5 (elements 80–95): scale 7, min 1
			b[16] = 0x1b          // byte 0 of the first 32: bits 0–1 → element 0 = 3, bits 2–3 → element 32 = 2, bits 4–5 → element 64 = 1, bits 6–7 → element 96 = 0
			b[16+17] = 0x30       // byte 17: bits 4–5 → element 64+17 = 81 = 3
			put16(b, 80, f16Half) // d
			put16(b, 82, f16Two)  // dmin
		}, map[int]float32{
			0:  0.5*3*3 - 2*2, // 0.5
			1:  -4,            // q = 0
			32: 0,             // group 2 has scale 0, min 0
			81: 0.5*7*3 - 2*1, // 8.5
			80: -2,
		}},

		{"Q3_K", experts.TypeQ3_K, func(b []byte) {
			// Scales (6 bits, biased by 32): group 0 low nibble in byte 96,
			// group 9 in the high nibble of byte 97, high bits in bytes 104–107.
			b[96] = 0x05         // group 0: low 4 bits 5
			b[104] = 0x02        // group 0: high 2 bits 2 → 5+32 = 37 → scale 5
			b[97] = 0xa0         // group 9: low 4 bits 10
			b[104+1] |= 0x3 << 4 // group 9 (j%4 = 1, j/4 = 2): high bits 3 → 10+48 = 58 → scale 26
			b[32] = 0x03         // element 0: low bits 3
			b[0] = 0x01          // element 0: high bit (hmask bit 0) set → q = 3
			b[32+17] = 0x0c      // byte 17, bits 2–3: element 32+17 = 49 (group 3), low bits 3
			b[32+32+16] = 0x01   // second 128: byte 16 bits 0–1 → element 128+16 = 144 (group 9), low bits 1, hmask bit 4 clear → q = -3
			put16(b, 108, f16Half)
		}, map[int]float32{
			0:   0.5 * 5 * 3,
			1:   0.5 * 5 * -4, // low bits 0, high bit clear
			144: 0.5 * 26 * -3,
			145: 0.5 * 26 * -4,
			49:  0.5 * -32 * -1, // group 3 scale 0-32; low bits 3, high bit clear → -1
		}},

		{"Q4_K", experts.TypeQ4_K, func(b []byte) {
			put16(b, 0, f16One)  // d
			put16(b, 2, f16Half) // dmin
			sc := b[4:16]
			sc[0], sc[4] = 2, 3 // sub-block 0: scale 2, min 3
			// sub-block 5: scale 33 = 0b10_0001, min 18 = 0b01_0010
			sc[9] = 0x1 | 0x2<<4
			sc[1] |= 2 << 6
			sc[5] |= 1 << 6
			b[16] = 0x07    // element 0 (sub-block 0): q = 7; element 32 (sub-block 1): q = 0
			b[16+67] = 0xa0 // bytes 64–95 hold sub-blocks 4 (low) and 5 (high): element 5·32+3 = 163, q = 10
		}, map[int]float32{
			0:   1*2*7 - 0.5*3,
			1:   -1.5,
			32:  0, // sub-block 1: scale 0 (low 6 bits of 0x80), min 0 (low 6 bits of 0x40)
			163: 1*33*10 - 0.5*18,
			128: 0, // sub-block 4: scale and min 0
		}},

		{"Q5_K", experts.TypeQ5_K, func(b []byte) {
			put16(b, 0, f16One)
			put16(b, 2, f16One)
			sc := b[4:16]
			sc[0], sc[4] = 1, 1   // sub-block 0: scale 1, min 1
			sc[3], sc[7] = 2, 0   // sub-block 3: scale 2, min 0
			b[16+5] = 1<<0 | 1<<3 // qh[5]: fifth bit of element 5 (bit 0) and of element 96+5 = 101 (bit 3, sub-block 3)
			b[48+5] = 0x04        // element 5 low nibble 4
			b[48+32+5] = 0x60     // bytes 32–63 high nibbles → sub-block 3: element 101 nibble 6
		}, map[int]float32{
			5:   1*1*(4+16) - 1,
			6:   -1,
			101: 2 * (6 + 16),
			100: 0,
		}},

		{"Q6_K", experts.TypeQ6_K, func(b []byte) {
			// ql: bytes 0–63 first half, qh: bytes 128–159; scales 192–207; d 208.
			b[0] = 0x5a                     // element 0 low nibble 10, element 64 low nibble 5
			b[32] = 0x03                    // element 32 low nibble 3
			b[128] = 0x01 | 0x2<<2 | 0x3<<6 // element 0 high bits 1, element 32 high 2, element 96 high 3
			b[192+0] = 2                    // group 0 (elements 0–15)
			b[192+2] = 0xff                 // group 2 (elements 32–47): -1
			b[192+4] = 3                    // group 4 (elements 64–79)
			b[192+6] = 1                    // group 6 (elements 96–111)
			b[64+1] = 0x0f                  // second half: element 128+1 low nibble 15
			b[160+1] = 0x3                  // element 129 high bits 3 → 63
			b[192+8] = 0x80                 // group 8 (elements 128–143): -128
			put16(b, 208, f16Half)
		}, map[int]float32{
			0:   0.5 * 2 * (10 + 16 - 32),
			32:  0.5 * -1 * (3 + 32 - 32),
			64:  0.5 * 3 * (5 - 32),
			96:  0.5 * 1 * (48 - 32),
			129: 0.5 * -128 * 31,
			1:   0.5 * 2 * -32,
		}},

		{"IQ4_NL", experts.TypeIQ4_NL, func(b []byte) {
			put16(b, 0, f16Half)
			b[2] = 0xf0 // element 0 → level 0 (-127), element 16 → level 15 (113)
			b[3] = 0x87 // element 1 → level 7 (-10), element 17 → level 8 (1)
		}, map[int]float32{0: -63.5, 16: 56.5, 1: -5, 17: 0.5}},

		{"IQ4_XS", experts.TypeIQ4_XS, func(b []byte) {
			put16(b, 0, f16Half)
			put16(b, 2, 0x2<<(2*1)|0x3<<(2*7)) // high scale bits: sub-block 1 → 2, sub-block 7 → 3
			b[4] = 0x50 | 0x1                  // sub-block 0 low bits 1, sub-block 1 low bits 5
			b[7] = 0xf0                        // sub-block 7 low bits 15
			b[8] = 0x0e                        // sub-block 0 element 0 → level 14 (89), element 16 → level 0 (-127)
			b[8+16] = 0x09                     // sub-block 1 element 0 → level 9 (13)
			b[8+7*16+15] = 0xc0                // sub-block 7 element 31 → level 12 (53)
		}, map[int]float32{
			0:   0.5 * (1 - 32) * 89,
			16:  0.5 * (1 - 32) * -127,
			32:  0.5 * (5 + 32 - 32) * 13,
			255: 0.5 * (15 + 48 - 32) * 53,
		}},

		{"MXFP4", experts.TypeMXFP4, func(b []byte) {
			b[0] = 127  // scale 2⁰, applied halved (0.5) to the doubled codes
			b[1] = 0xf7 // element 0 → code 7 (6.0), element 16 → code 15 (-6.0)
			b[2] = 0x9a // element 1 → code 10 (-1.0), element 17 → code 9 (-0.5)
		}, map[int]float32{0: 6, 16: -6, 1: -1, 17: -0.5, 2: 0}},

		{"MXFP4 small scale", experts.TypeMXFP4, func(b []byte) {
			b[0] = 1    // 2⁻¹²⁶ (stored halved as the subnormal 2⁻¹²⁷)
			b[1] = 0x03 // element 0 → 1.5·2⁻¹²⁶
		}, map[int]float32{0: float32(math.Ldexp(1.5, -126))}},

		{"NVFP4", experts.TypeNVFP4, func(b []byte) {
			b[0] = 0x38      // sub-block 0 scale 1.0
			b[3] = 0x40      // sub-block 3 scale 2.0
			b[4] = 0x71      // element 0 → code 1 (0.5), element 8 → code 7 (6.0)
			b[4+24+7] = 0xd0 // sub-block 3 byte 7: element 48+7 → 0, element 48+15 → code 13 (-3.0)
		}, map[int]float32{0: 0.5, 8: 6, 1: 0, 55: 0, 63: -6}},

		{"TQ2_0", experts.TypeTQ2_0, func(b []byte) {
			b[0] = 0x24         // element 0 → code 0 (-1), element 32 → 1 (0), element 64 → 2 (1), element 96 → 0
			b[32+5] = 0x02 << 6 // element 128+96+5 = 229 → code 2
			put16(b, 64, f16Two)
		}, map[int]float32{0: -2, 32: 0, 64: 2, 96: -2, 229: 2, 128: -2}},

		{"TQ1_0", experts.TypeTQ1_0, func(b []byte) {
			// Byte 0 packs the trits of elements 0, 32, 64, 96, 128 (most
			// significant first) as ceil(v·256/243): 2,0,1,2,1 → v = 2·81+9+6+1 = 178.
			b[0] = byte((178*256 + 242) / 243)
			// Byte 48 (qh) packs elements 240, 244, 248, 252 as four trits
			// shifted up by one: 1,2,0,2 → (27+18+2)·3 = 141.
			b[48] = byte((141*256 + 242) / 243)
			put16(b, 52, f16Half)
		}, map[int]float32{0: 0.5, 32: -0.5, 64: 0, 96: 0.5, 128: 0, 240: 0, 244: 0.5, 248: -0.5, 252: 0.5, 1: -0.5}},

		{"Q1_0", experts.TypeQ1_0, func(b []byte) {
			put16(b, 0, f16Half)
			b[2] = 0x01  // element 0 positive
			b[17] = 0x80 // element 127 positive
		}, map[int]float32{0: 0.5, 1: -0.5, 127: 0.5, 126: -0.5}},

		{"Q2_0", experts.TypeQ2_0, func(b []byte) {
			put16(b, 0, f16Two)
			b[2] = 0xe4  // elements 0–3: codes 0,1,2,3 → -1,0,1,2
			b[17] = 0x40 // element 63: code 1 → 0; elements 60–62 code 0 → -1
		}, map[int]float32{0: -2, 1: 0, 2: 2, 3: 4, 63: 0, 62: -2}},

		{"F16", experts.TypeF16, func(b []byte) { put16(b, 0, 0xc500) }, map[int]float32{0: -5}},
		{"BF16", experts.TypeBF16, func(b []byte) { put16(b, 0, 0x3fc0) }, map[int]float32{0: 1.5}},
		{"F32", experts.TypeF32, func(b []byte) { binary.LittleEndian.PutUint32(b, math.Float32bits(-0.75)) }, map[int]float32{0: -0.75}},
	}
}

func TestDequantizeHandBuiltBlocks(t *testing.T) {
	covered := map[experts.Type]bool{}
	for _, tc := range dequantCases() {
		t.Run(tc.name, func(t *testing.T) {
			block := make([]byte, tc.typ.BlockBytes())
			tc.block(block)
			// Two blocks: the first all zero bytes, so a wrong block stride shows.
			src := append(make([]byte, len(block)), block...)
			dst := make([]float32, 2*tc.typ.BlockSize())
			require.NoError(t, Dequantize(tc.typ, src, dst))
			got := dst[tc.typ.BlockSize():]
			for i, want := range tc.want {
				require.Equal(t, want, got[i], "element %d", i)
			}
		})
		covered[tc.typ] = true
	}
	for _, typ := range typesWhere(CanDequantize) {
		if typ != experts.TypeQ8_1 && typ != experts.TypeQ8_K { // activation formats, covered by quantize tests
			require.True(t, covered[typ], "no hand-built block for %v", typ)
		}
	}
}

func TestDequantizeErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    experts.Type
		src    int
		dst    int
		target error
	}{
		{"unknown type", experts.Type(77), 18, 32, experts.ErrUnknownType},
		{"retired id", experts.Type(4), 18, 32, experts.ErrUnknownType},
		{"no dequantizer", experts.TypeIQ2_XXS, 66, 256, experts.ErrUnsupportedType},
		{"integer type", experts.TypeI32, 4, 1, experts.ErrUnsupportedType},
		{"partial block", experts.TypeQ4_0, 18, 31, ErrQuantSize},
		{"short source", experts.TypeQ4_0, 17, 32, ErrQuantSize},
		{"long source", experts.TypeQ4_0, 19, 32, ErrQuantSize},
		{"two blocks expected", experts.TypeQ4_K, 144, 512, ErrQuantSize},
		{"empty is fine", experts.TypeQ4_K, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Dequantize(tc.typ, make([]byte, tc.src), make([]float32, tc.dst))
			if tc.target == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, errors.Is(err, tc.target), "%v", err)
			require.Contains(t, err.Error(), tc.typ.String(), "the error names the type")
		})
	}
}

func TestCanDequantize(t *testing.T) {
	for _, typ := range []experts.Type{experts.TypeF32, experts.TypeF16, experts.TypeBF16, experts.TypeQ4_0, experts.TypeQ4_1, experts.TypeQ5_0, experts.TypeQ5_1, experts.TypeQ8_0,
		experts.TypeQ2_K, experts.TypeQ3_K, experts.TypeQ4_K, experts.TypeQ5_K, experts.TypeQ6_K, experts.TypeIQ4_NL, experts.TypeIQ4_XS, experts.TypeMXFP4} {
		require.True(t, CanDequantize(typ), "%v", typ)
	}
	require.False(t, CanDequantize(experts.TypeIQ2_XXS))
	require.False(t, CanDequantize(experts.Type(1000)))
}

// TestTypeTableMatchesBlockLayouts checks experts' type table against the
// block structs of ggml-common.h, summed field by field, for every type this
// package decodes.
func TestTypeTableMatchesBlockLayouts(t *testing.T) {
	const half = 2                      // ggml_half
	layouts := map[experts.Type][2]int{ // elements, bytes
		experts.TypeF32:    {1, 4},
		experts.TypeF16:    {1, half},
		experts.TypeBF16:   {1, 2},
		experts.TypeQ4_0:   {32, half + 32/2},
		experts.TypeQ4_1:   {32, 2*half + 32/2},
		experts.TypeQ5_0:   {32, half + 4 + 32/2},
		experts.TypeQ5_1:   {32, 2*half + 4 + 32/2},
		experts.TypeQ8_0:   {32, half + 32},
		experts.TypeQ8_1:   {32, 2*half + 32},
		experts.TypeQ2_K:   {256, 256/16 + 256/4 + 2*half},
		experts.TypeQ3_K:   {256, 256/8 + 256/4 + 12 + half},
		experts.TypeQ4_K:   {256, 2*half + 12 + 256/2},
		experts.TypeQ5_K:   {256, 2*half + 12 + 256/8 + 256/2},
		experts.TypeQ6_K:   {256, 256/2 + 256/4 + 256/16 + half},
		experts.TypeQ8_K:   {256, 4 + 256 + 2*256/16},
		experts.TypeIQ4_NL: {32, half + 32/2},
		experts.TypeIQ4_XS: {256, half + 2 + 256/64 + 256/2},
		experts.TypeTQ1_0:  {256, (256-4*256/64)/5 + 256/64 + half},
		experts.TypeTQ2_0:  {256, 256/4 + half},
		experts.TypeMXFP4:  {32, 1 + 32/2},
		experts.TypeNVFP4:  {64, 64/16 + 64/2},
		experts.TypeQ1_0:   {128, half + 128/8},
		experts.TypeQ2_0:   {64, half + 64/4},
	}
	for _, typ := range typesWhere(CanDequantize) {
		l, ok := layouts[typ]
		require.True(t, ok, "no layout for %v", typ)
		require.Equal(t, l[0], typ.BlockSize(), "%v block size", typ)
		require.Equal(t, l[1], typ.BlockBytes(), "%v block bytes", typ)
	}
}
