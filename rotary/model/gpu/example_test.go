//go:build cgo

package gpu_test

import (
	"context"
	"fmt"
	"log"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/model/gpu"
)

// Route one token's router logits over eight experts to its top three, on
// the host backend, which runs the same CUDA C as a GPU (cuda.Open(ctx, 0)
// instead of cuda.NewHost() runs it on one).
func Example() {
	ctx := context.Background()
	dev, err := cuda.NewHost()
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	ks, err := gpu.Load(ctx, dev)
	if err != nil {
		log.Fatal(err)
	}
	defer ks.Close()
	s, err := dev.NewStream()
	if err != nil {
		log.Fatal(err)
	}

	logits := []float32{0.1, 2, -1, 2, 0.5, 3, 0, 1}
	const k = 3
	alloc := func(n int) cuda.Buffer {
		b, err := dev.Alloc(4 * int64(n))
		if err != nil {
			log.Fatal(err)
		}
		return b
	}
	lb, ib, wb := alloc(len(logits)), alloc(k), alloc(k)
	raw := make([]byte, 4*len(logits))
	copy(cuda.View[float32](raw), logits)
	ids, weights := make([]byte, 4*k), make([]byte, 4*k)
	r := gpu.Routing{IDs: ib, Weights: wb, K: k, Normalize: true}
	for _, step := range []func() error{
		func() error { return s.CopyHtoD(lb, 0, raw) },
		func() error { return ks.Route(s, r, gpu.Matrix{Buf: lb, Rows: 1, Cols: len(logits)}) },
		func() error { return s.CopyDtoH(ids, ib, 0) },
		func() error { return s.CopyDtoH(weights, wb, 0) },
		func() error { return s.Synchronize(ctx) },
	} {
		if err := step(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(cuda.View[int32](ids))
	fmt.Printf("%.3f\n", cuda.View[float32](weights))
	// Output:
	// [5 1 3]
	// [0.576 0.212 0.212]
}
