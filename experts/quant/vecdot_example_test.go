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
