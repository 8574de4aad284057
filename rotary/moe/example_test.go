//go:build cgo && linux

// The example runs the kernels on the host backend's emulator, which needs
// cgo and a C++ compiler.

package moe_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"math"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/moe"
)

// Two experts of a plane with FF = Embd = 32 in F32, one token routed to
// both: expert 1 with weight 0.75, then expert 0 with 0.25. The first value
// is 0.75·SiLU(2)·2 + 0.25·SiLU(1)·1.
func Example() {
	ctx := context.Background()
	dev, err := cuda.NewHost() // the emulated device; cuda.Open(ctx, 0) on a GPU
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	k, err := moe.Load(ctx, dev, moe.WithTypes(experts.TypeF32))
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()

	const ff, embd = 32, 32
	part := int64(4 * ff * embd)
	plane := moe.Plane{
		SlotBytes: 3 * part,
		Gate:      moe.Part{Off: 0, Type: experts.TypeF32},
		Up:        moe.Part{Off: part, Type: experts.TypeF32},
		Down:      moe.Part{Off: 2 * part, Type: experts.TypeF32},
		FF:        ff, Embd: embd,
	}
	// Expert s: gate and up are (s+1)·identity, down is identity, so
	// h = SiLU((s+1)·x)·(s+1)·x.
	weights := make([]float32, 2*3*ff*embd)
	for s := range 2 {
		for i := range ff {
			for _, p := range []int{0, 1} {
				weights[(s*3+p)*ff*embd+i*embd+i] = float32(s + 1)
			}
			weights[(s*3+2)*ff*embd+i*embd+i] = 1
		}
	}
	x := make([]float32, embd)
	x[0], x[1] = 1, -2

	s, err := dev.NewStream()
	if err != nil {
		log.Fatal(err)
	}
	buf := func(v any) cuda.Buffer {
		b, err := dev.Alloc(int64(binary.Size(v)))
		if err != nil {
			log.Fatal(err)
		}
		raw, err := binary.Append(nil, binary.LittleEndian, v)
		if err != nil {
			log.Fatal(err)
		}
		if err := s.CopyHtoD(b, 0, raw); err != nil {
			log.Fatal(err)
		}
		return b
	}
	plane.Buf = buf(weights)
	xb, dst := buf(x), buf(make([]float32, embd))
	slots, routeWeights := buf([]int32{1, 0}), buf([]float32{0.75, 0.25})
	scratch, err := dev.Alloc(moe.MoEScratch(1, 2, plane))
	if err != nil {
		log.Fatal(err)
	}
	if err := k.MoE(s, dst, xb, 1, 2, slots, routeWeights, plane, scratch); err != nil {
		log.Fatal(err)
	}
	out := make([]byte, 4*embd)
	if err := s.CopyDtoH(out, dst, 0); err != nil {
		log.Fatal(err)
	}
	if err := s.Synchronize(ctx); err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		fmt.Printf("%.4f\n", math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:])))
	}
	// Output:
	// 2.8252
	// 0.3350
	// 0.0000
}
