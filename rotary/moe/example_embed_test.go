//go:build cgo && linux

package moe_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"math"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/moe"
)

// A Q8_0 embedding table of 3 tokens × 32 values (row r holds
// (r+1)·j/31 for j = 0..31) gathered for the ids 2, 0 and 7: the third id
// is not in the table, so its row is NaN. Each line is a row's last value.
func ExampleKernels_Embed() {
	ctx := context.Background()
	dev, err := cuda.NewHost() // the emulated device; cuda.Open(ctx, 0) on a GPU
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	k, err := moe.Load(ctx, dev, moe.WithTypes(experts.TypeQ8_0))
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	s, err := dev.NewStream()
	if err != nil {
		log.Fatal(err)
	}

	const vocab, width = 3, 32
	values := make([]float32, vocab*width)
	for r := range vocab {
		for j := range width {
			values[r*width+j] = float32(r+1) * float32(j) / 31
		}
	}
	rb, err := experts.TypeQ8_0.RowBytes(width)
	if err != nil {
		log.Fatal(err)
	}
	rows := make([]byte, vocab*int(rb))
	if err := quant.Quantize(experts.TypeQ8_0, values, rows); err != nil {
		log.Fatal(err)
	}
	buf := func(raw []byte) cuda.Buffer {
		b, err := dev.Alloc(int64(len(raw)))
		if err != nil {
			log.Fatal(err)
		}
		if err := s.CopyHtoD(b, 0, raw); err != nil {
			log.Fatal(err)
		}
		return b
	}
	ids, err := binary.Append(nil, binary.LittleEndian, []int32{2, 0, 7})
	if err != nil {
		log.Fatal(err)
	}
	table := moe.Matrix{Buf: buf(rows), Type: experts.TypeQ8_0, Rows: vocab, Cols: width}
	dst := buf(make([]byte, 3*width*4))
	if err := k.Embed(s, dst, table, buf(ids), 3); err != nil {
		log.Fatal(err)
	}
	out := make([]byte, 3*width*4)
	if err := s.CopyDtoH(out, dst, 0); err != nil {
		log.Fatal(err)
	}
	if err := s.Synchronize(ctx); err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		fmt.Printf("%.3f\n", math.Float32frombits(binary.LittleEndian.Uint32(out[4*(i*width+width-1):])))
	}
	// Output:
	// 3.000
	// 1.000
	// NaN
}
