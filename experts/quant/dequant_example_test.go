package quant_test

import (
	"encoding/binary"
	"fmt"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
)

func ExampleDequantize() {
	// One Q8_0 block: an f16 scale (0x3800 is 0.5) and 32 int8 quants.
	block := make([]byte, experts.TypeQ8_0.BlockBytes())
	binary.LittleEndian.PutUint16(block, 0x3800)
	block[2], block[3] = 4, 0xfd // quants 4 and -3

	values := make([]float32, experts.TypeQ8_0.BlockSize())
	if err := quant.Dequantize(experts.TypeQ8_0, block, values); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(values[:3])

	// A buffer that does not match the element count is an error, not a panic.
	fmt.Println(quant.Dequantize(experts.TypeQ8_0, block[:33], values))
	// Output:
	// [2 -1.5 0]
	// quant: dequantize: quant: quantized data size mismatch: 32 elements of Q8_0 take 34 bytes, got 33
}

func ExampleQuantize() {
	values := make([]float32, 32)
	for i := range values {
		values[i] = float32(i) - 16
	}
	block := make([]byte, experts.TypeQ4_0.BlockBytes())
	if err := quant.Quantize(experts.TypeQ4_0, values, block); err != nil {
		fmt.Println(err)
		return
	}
	back := make([]float32, len(values))
	if err := quant.Dequantize(experts.TypeQ4_0, block, back); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back[:4], back[28:])
	// Output: [-16 -14 -14 -12] [12 14 14 14]
}
