package quant

import (
	"testing"

	"github.com/rotary-moe/rotary/experts"
)

// FuzzDequantize feeds arbitrary type ids, element counts and bytes to
// Dequantize and VecDotChecked: they must return an error or a result, never
// panic, and accept only sizes that match the type. Seeds are blocks of every
// format taken from the oracle files and from the hand-built test blocks.
func FuzzDequantize(f *testing.F) {
	for _, file := range quantOracleFiles {
		o := loadQuantOracle(f, file)
		seeded := map[string]bool{}
		for _, tt := range o.Tensors {
			if seeded[tt.Type] {
				continue
			}
			seeded[tt.Type] = true
			typ, _ := experts.TypeByName(tt.Type)
			data := o.read(f, tt)
			n := 2 * typ.BlockSize()
			size := min(len(data), 2*typ.BlockBytes())
			f.Add(uint32(typ), n, data[:size])
		}
	}
	for _, tc := range dequantCases() {
		block := make([]byte, tc.typ.BlockBytes())
		tc.block(block)
		f.Add(uint32(tc.typ), tc.typ.BlockSize(), block)
	}
	f.Add(uint32(experts.TypeQ4_K), 255, make([]byte, 144))
	f.Add(uint32(1<<31), 32, make([]byte, 18))

	f.Fuzz(func(t *testing.T, id uint32, n int, data []byte) {
		typ := experts.Type(id)
		if n < 0 || n > 1<<16 {
			n &= 0xffff
		}
		dst := make([]float32, n)
		if err := Dequantize(typ, data, dst); err == nil {
			want, rerr := typ.RowBytes(uint64(n))
			if rerr != nil || want != uint64(len(data)) {
				t.Fatalf("%v: accepted %d bytes for %d elements", typ, len(data), n)
			}
		}
		// The same bytes as weights, and their mirror image as activations.
		act := make([]byte, len(data))
		for i, b := range data {
			act[len(data)-1-i] = b
		}
		if _, err := VecDotChecked(typ, n, data, act); err == nil && !CanVecDot(typ) {
			t.Fatalf("%v: VecDotChecked accepted a type without a kernel", typ)
		}
	})
}
