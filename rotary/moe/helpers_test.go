package moe_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/moe"
	"github.com/stretchr/testify/require"
)

// allTypes are the weight types the package supports.
var allTypes = []experts.Type{
	experts.TypeF32, experts.TypeF16, experts.TypeBF16,
	experts.TypeQ8_0, experts.TypeQ4_0, experts.TypeQ4_1, experts.TypeQ5_0, experts.TypeQ5_1,
	experts.TypeIQ4_NL, experts.TypeMXFP4,
	experts.TypeQ2_K, experts.TypeQ3_K, experts.TypeQ4_K, experts.TypeQ5_K, experts.TypeQ6_K, experts.TypeIQ4_XS,
}

// Tolerances, relative to the magnitude of the exact sum (Σ|w·x| for a
// matrix product; for MoE, the same propagated through gate, up and down,
// see moeReference):
//   - decode on quantized weights rounds the activations (x, and the hidden
//     vector of MoE) to 8 bits per block of 32: 1/254 of the block's largest
//     value per element at worst, far less summed over random signs;
//   - float weights, and every prefill GEMM (dequantized weights times float
//     activations), differ from the float64 reference only by float32
//     rounding and summation order.
const (
	tolQuantized = 1e-2
	tolFloat     = 1e-5
)

func tolerance(t experts.Type, tokens int) float64 {
	if tokens > moe.DecodeTokens || !t.Quantized() {
		return tolFloat
	}
	return tolQuantized
}

// minCols is the smallest column count every kernel takes for t.
func minCols(t experts.Type) int { return max(32, t.BlockSize()) }

// randomFloats returns n values in [-1, 1).
func randomFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(2*r.Float64() - 1)
	}
	return v
}

// randomWeights returns rows×cols weights of type t, quantized from random
// floats, or random codes under a sane scale where the experts package has
// no quantizer (IQ4_NL, IQ4_XS).
func randomWeights(t *testing.T, r *rand.Rand, typ experts.Type, rows, cols int) []byte {
	rb, err := typ.RowBytes(uint64(cols))
	require.NoError(t, err)
	w := make([]byte, int(rb)*rows)
	if quant.CanQuantize(typ) {
		require.NoError(t, quant.Quantize(typ, randomFloats(r, rows*cols), w))
		return w
	}
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	bs := typ.BlockBytes()
	for b := 0; b < len(w); b += bs {
		binary.LittleEndian.PutUint16(w[b:], quant.Float32ToFloat16(float32(0.01+0.02*r.Float64())))
	}
	return w
}

// dequantize expands rows×cols weights to float64.
func dequantize(t *testing.T, typ experts.Type, w []byte, rows, cols int) []float64 {
	f := make([]float32, rows*cols)
	require.NoError(t, quant.Dequantize(typ, w, f))
	d := make([]float64, len(f))
	for i, v := range f {
		d[i] = float64(v)
	}
	return d
}

// loaded caches Kernels per device and type, so programs are loaded once a
// device (the emulator compiles each program once per process anyway).
var loaded sync.Map // key{cuda.Device, experts.Type} -> *moe.Kernels

type loadKey struct {
	dev cuda.Device
	typ string
}

// kernelsFor loads the kernels of types on c's device, skipping the test
// when there is no emulator.
func kernelsFor(t *testing.T, c cudatest.Case, types ...experts.Type) *moe.Kernels {
	t.Helper()
	key := loadKey{c.Device, ""}
	for _, ty := range types {
		key.typ += ty.String() + ","
	}
	if k, ok := loaded.Load(key); ok {
		return k.(*moe.Kernels)
	}
	k, err := moe.Load(context.Background(), c.Device, moe.WithTypes(types...))
	cudatest.Skip(t, err)
	loaded.Store(key, k)
	return k
}

// upload copies raw bytes to a new device buffer.
func upload(t *testing.T, c cudatest.Case, b []byte) cuda.Buffer {
	return cudatest.Upload(t, c, b)
}

// bytesOf is v's little-endian bytes.
func bytesOf[T int32 | float32](v []T) []byte {
	raw, err := binary.Append(nil, binary.LittleEndian, v)
	if err != nil {
		panic(err)
	}
	return raw
}

// check compares got with want within tol·mag per element.
func check(t *testing.T, got []float32, want, mag []float64, tol float64) {
	t.Helper()
	worst := 0.0
	for i := range want {
		err := math.Abs(float64(got[i]) - want[i])
		bound := tol*mag[i] + 1e-30
		require.LessOrEqualf(t, err, bound, "element %d: got %g, want %g (magnitude %g)", i, got[i], want[i], mag[i])
		worst = max(worst, err/bound*tol)
	}
	t.Logf("worst error %.2g of the magnitude (tolerance %.0g)", worst, tol)
}
