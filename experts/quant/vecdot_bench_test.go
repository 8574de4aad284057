package quant

import (
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/experts"
)

// benchRowLength is the row length of the benchmarks: Qwen3-30B-A3B's
// hidden size, the input dimension of its expert gate and up matrices.
const benchRowLength = 2048

// benchRows is how many rows each benchmark iteration multiplies, so that the
// weights (a few MiB) exceed the caches the way a real matrix does.
const benchRows = 512

// BenchmarkVecDot measures one matrix-vector product (MatVec) of benchRows rows per
// iteration and reports throughput in weight bytes (b.SetBytes).
func BenchmarkVecDot(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, typ := range dotTypes() {
		b.Run(typ.String(), func(b *testing.B) {
			n := benchRowLength
			w := randomWeights(typ, benchRows*n/typ.BlockSize(), rng)
			act := make([]byte, rowBytes(b, VecDotType(typ), n))
			if err := QuantizeActivations(VecDotType(typ), randomActivations(n, rng), act); err != nil {
				b.Fatal(err)
			}
			out := make([]float32, benchRows)
			b.SetBytes(int64(len(w)))
			b.ResetTimer()
			for b.Loop() {
				if err := MatVec(typ, n, w, act, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQuantizeActivations measures converting one activation row to
// each VecDotType, reported in float32 input bytes.
func BenchmarkQuantizeActivations(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	x := randomActivations(benchRowLength, rng)
	for _, typ := range []experts.Type{experts.TypeQ8_0, experts.TypeQ8_1, experts.TypeQ8_K, experts.TypeF16, experts.TypeBF16} {
		b.Run(typ.String(), func(b *testing.B) {
			dst := make([]byte, rowBytes(b, typ, len(x)))
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				if err := QuantizeActivations(typ, x, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
