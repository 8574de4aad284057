package quant

import (
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/experts"
)

// BenchmarkDequantize expands 1 Mi elements per iteration and reports
// throughput in source (stored) bytes.
func BenchmarkDequantize(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n = 1 << 20
	for _, typ := range dequantTypes() {
		b.Run(typ.String(), func(b *testing.B) {
			src := randomWeights(typ, n/typ.BlockSize(), rng)
			dst := make([]float32, n)
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if err := Dequantize(typ, src, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// dequantTypes lists the types Dequantize supports, excluding the
// activation-only formats (Q8_1, Q8_K) that randomWeights does not build.
func dequantTypes() []experts.Type {
	return typesWhere(func(t experts.Type) bool { return CanDequantize(t) && t != experts.TypeQ8_1 && t != experts.TypeQ8_K })
}
