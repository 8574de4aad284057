//go:build cgo

package gpu_test

import (
	"context"
	"fmt"
	"unsafe"

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
		fmt.Println(err)
		return
	}
	defer dev.Close()
	ks, err := gpu.Load(ctx, dev)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ks.Close()
	s, err := dev.NewStream()
	if err != nil {
		fmt.Println(err)
		return
	}

	logits := []float32{0.1, 2, -1, 2, 0.5, 3, 0, 1}
	lb, _ := dev.Alloc(4 * int64(len(logits)))
	ib, _ := dev.Alloc(4 * 3)
	wb, _ := dev.Alloc(4 * 3)
	_ = s.CopyHtoD(lb, 0, unsafe.Slice((*byte)(unsafe.Pointer(&logits[0])), 4*len(logits)))
	r := gpu.Routing{IDs: ib, Weights: wb, K: 3, Normalize: true}
	if err := ks.Route(s, r, gpu.Matrix{Buf: lb, Rows: 1, Cols: len(logits)}); err != nil {
		fmt.Println(err)
		return
	}
	ids, weights := make([]byte, 12), make([]byte, 12)
	_ = s.CopyDtoH(ids, ib, 0)
	_ = s.CopyDtoH(weights, wb, 0)
	if err := s.Synchronize(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cuda.View[int32](ids))
	fmt.Printf("%.3f\n", cuda.View[float32](weights))
	// Output:
	// [5 1 3]
	// [0.576 0.212 0.212]
}
