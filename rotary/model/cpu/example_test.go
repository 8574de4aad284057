package cpu_test

import (
	"fmt"
	"log"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

// A product with weights in their stored format: two rows of 32 weights in
// one Q8_0 block each (32 8-bit values and a scale), applied to two tokens'
// activations, which MatMul rounds to Q8_0 blocks as ggml does.
func ExampleBackend_MatMul() {
	const rows, cols = 2, 32
	w := weight(experts.TypeQ8_0, rows, cols, func(r, c int) float32 {
		if r == 0 {
			return 1 // row 0 sums the activations
		}
		return float32(c%4) - 1.5 // row 1 weighs them -1.5, -0.5, 0.5, 1.5, ...
	})
	// The backend's tensors are filled by its operations: here an F32
	// embedding table holds the two tokens' activations.
	table := weight(experts.TypeF32, 2, cols, func(r, c int) float32 {
		if r == 0 {
			return 1
		}
		return float32(c%4) / 4
	})

	b := cpu.New(1)
	defer b.Close()
	x, y := b.NewTensor(2, cols), b.NewTensor(2, rows)
	if err := b.Embed(x, table, []int32{0, 1}); err != nil {
		log.Fatal(err)
	}
	if err := b.MatMul(y, x, w); err != nil {
		log.Fatal(err)
	}
	out := make([]float32, 2*rows)
	b.Read(out, y)
	// In exact arithmetic: 32 and 0, then 12 and 10. The 8-bit blocks move
	// the third decimal.
	fmt.Printf("token 0: %.3f\ntoken 1: %.3f\n", out[:rows], out[rows:])
	// Output:
	// token 0: [31.996 0.000]
	// token 1: [11.999 10.007]
}

// weight quantizes f(row, col) into a rows×cols weight of type t.
func weight(t experts.Type, rows, cols int, f func(r, c int) float32) model.Weight {
	vals := make([]float32, rows*cols)
	for r := range rows {
		for c := range cols {
			vals[r*cols+c] = f(r, c)
		}
	}
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		log.Fatal(err)
	}
	data := make([]byte, rows*int(rb))
	if err := quant.Quantize(t, vals, data); err != nil {
		log.Fatal(err)
	}
	return model.Weight{Data: data, Type: t, Rows: rows, Cols: cols}
}
