package quant_test

import (
	"fmt"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
)

func ExampleVecDot() {
	const n = 256 // one row of a weight matrix
	weights := make([]float32, n)
	x := make([]float32, n)
	var exact float64
	for i := range weights {
		weights[i] = float32(i%16)/8 - 1
		x[i] = float32(i%7) / 7
		exact += float64(weights[i]) * float64(x[i])
	}

	// Weights as stored in a model file, activations as ggml's CPU backend
	// quantizes them for this weight type.
	wt := experts.TypeQ4_K
	at := quant.VecDotType(wt)
	wSize, _ := wt.RowBytes(n)
	aSize, _ := at.RowBytes(n)
	w, act := make([]byte, wSize), make([]byte, aSize)
	if err := quant.Quantize(wt, weights, w); err != nil {
		fmt.Println(err)
		return
	}
	if err := quant.QuantizeActivations(at, x, act); err != nil {
		fmt.Println(err)
		return
	}

	// VecDotChecked validates the buffers; a matrix-vector loop calls it (or
	// compares the sizes itself) once, then VecDot for every row.
	dot, err := quant.VecDotChecked(wt, n, w, act)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%v·%v: %.4f (float: %.4f)\n", wt, at, dot, exact)
	fmt.Printf("%.4f\n", quant.VecDot(wt, n, w, act))
	// Output:
	// Q4_K·Q8_K: -6.7922 (float: -6.7857)
	// -6.7922
}

func ExampleMatVec() {
	const n = 32 // Q8_0 rows of one block
	rows := [][]float32{make([]float32, n), make([]float32, n)}
	x := make([]float32, n)
	for i := range n {
		rows[0][i], rows[1][i], x[i] = 1, float32(i%2), 0.5
	}
	row, _ := experts.TypeQ8_0.RowBytes(n)
	w := make([]byte, 2*row)
	for r, vals := range rows {
		if err := quant.Quantize(experts.TypeQ8_0, vals, w[uint64(r)*row:uint64(r+1)*row]); err != nil {
			fmt.Println(err)
			return
		}
	}
	at := quant.VecDotType(experts.TypeQ8_0)
	aSize, _ := at.RowBytes(n)
	act := make([]byte, aSize)
	if err := quant.QuantizeActivations(at, x, act); err != nil {
		fmt.Println(err)
		return
	}
	out := make([]float32, 2)
	if err := quant.MatVec(experts.TypeQ8_0, n, w, act, out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.3f\n", out) // 16 and 8 but for the fp16 scales' rounding
	// Output: [15.998 7.999]
}

func ExampleFloat32ToFloat16() {
	for _, f := range []float32{1, 0.1, 65504, 1e6} {
		h := quant.Float32ToFloat16(f)
		fmt.Printf("%v -> %#04x -> %v\n", f, h, quant.Float16ToFloat32(h))
	}
	// Output:
	// 1 -> 0x3c00 -> 1
	// 0.1 -> 0x2e66 -> 0.099975586
	// 65504 -> 0x7bff -> 65504
	// 1e+06 -> 0x7c00 -> +Inf
}
