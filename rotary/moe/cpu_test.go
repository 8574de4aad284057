package moe_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
	"github.com/rotary-moe/rotary/rotary/moe"
	"github.com/stretchr/testify/require"
)

// cpuTensor makes a CPU backend tensor holding x (rows of cols), through
// Embed of an F32 table, the backend's one way in for values.
func cpuTensor(t *testing.T, b *cpu.Backend, x []float32, rows, cols int) model.Tensor {
	table := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(table[4*i:], math.Float32bits(v))
	}
	ids := make([]int32, rows)
	for i := range ids {
		ids[i] = int32(i)
	}
	dst := b.NewTensor(rows, cols)
	require.NoError(t, b.Embed(dst, model.Weight{Data: table, Type: experts.TypeF32, Rows: rows, Cols: cols}, ids))
	return dst
}

// TestAgainstCPUBackend compares MatMul and MoE with the CPU backend's
// (rotary/model/cpu), which quantizes activations its own way (ggml's Q8_0,
// Q8_1 and Q8_K; F16 and BF16 for those weights): they agree within the sum
// of this package's tolerance and the rounding of the CPU's activations.
// The kernels' schedules are covered by the other tests: this one runs on
// the first device only (the emulator in forward order, or a GPU).
func TestAgainstCPUBackend(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	func(fn func(t *testing.T, c cudatest.Case)) {
		c := cudatest.Devices(t)[0]
		t.Run(c.Name, func(t *testing.T) { fn(t, c) })
	}(func(t *testing.T, c cudatest.Case) {
		for _, typ := range allTypes {
			t.Run(typ.String(), func(t *testing.T) {
				k := kernelsFor(t, c, typ)
				r := rand.New(rand.NewPCG(uint64(typ), 11))
				cols := max(64, minCols(typ))
				for _, tokens := range []int{1, moe.DecodeTokens + 4} {
					t.Run(fmt.Sprintf("MatMul/T%d", tokens), func(t *testing.T) {
						rows := 19
						w := randomWeights(t, r, typ, rows, cols)
						x := randomFloats(r, tokens*cols)
						got := runMatMul(t, c, k, w, typ, rows, cols, tokens, x, 0)
						dst := b.NewTensor(tokens, rows)
						require.NoError(t, b.MatMul(dst, cpuTensor(t, b, x, tokens, cols), model.Weight{Data: w, Type: typ, Rows: rows, Cols: cols}))
						want := make([]float32, tokens*rows)
						b.Read(want, dst)
						_, mag := matmulReference(dequantize(t, typ, w, rows, cols), x, rows, cols, tokens)
						check(t, got, widen(want), mag, tolerance(typ, tokens)+cpuTolerance(typ))
					})
					t.Run(fmt.Sprintf("MoE/T%d", tokens), func(t *testing.T) {
						const nslots, topK = 9, 8
						p := newTestPlane(t, r, typ, typ, nslots, cols, cols)
						slots, weights := routing(r, nslots, tokens, topK)
						x := randomFloats(r, tokens*cols)
						got := runMoE(t, c, k, p, x, slots, weights, tokens, topK)
						ids := make([]int, nslots)
						ews := make([]model.ExpertWeights, nslots)
						for s := range nslots {
							ids[s] = s
							slot := p.bytes[int64(s)*p.plane.SlotBytes:]
							part := func(off int64, rows, cols int) model.Weight {
								rb, err := typ.RowBytes(uint64(cols))
								require.NoError(t, err)
								return model.Weight{Data: slot[off : off+int64(rows)*int64(rb)], Type: typ, Rows: rows, Cols: cols}
							}
							ews[s] = model.ExpertWeights{Gate: part(p.plane.Gate.Off, cols, cols), Up: part(p.plane.Up.Off, cols, cols), Down: part(p.plane.Down.Off, cols, cols)}
						}
						dst := b.NewTensor(tokens, cols)
						require.NoError(t, b.Experts(dst, cpuTensor(t, b, x, tokens, cols), model.Routing{K: topK, IDs: slots, Weights: weights}, ids, ews))
						want := make([]float32, tokens*cols)
						b.Read(want, dst)
						_, mag := p.moeReference(x, slots, weights, tokens, topK)
						check(t, got, widen(want), mag, tolerance(typ, tokens)+cpuTolerance(typ))
					})
				}
			})
		}
	})
}

// cpuTolerance bounds the CPU backend's error relative to the magnitude:
// its activations are rounded to 8-bit blocks for quantized weights, to F16
// (11 significant bits) or BF16 (8) for those weights, not at all for F32.
func cpuTolerance(typ experts.Type) float64 {
	switch typ {
	case experts.TypeF32:
		return tolFloat
	case experts.TypeF16:
		return 1e-3
	case experts.TypeBF16:
		return 8e-3
	}
	return tolQuantized
}

func widen(v []float32) []float64 {
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return w
}
