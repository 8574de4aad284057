//go:build cgo

package device_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/device"
)

// Three decode steps of one layer with its residency on the device: each
// step's four routed experts resolve to slots of the layer's six, the misses
// copied in from the model file by the fill kernel, the victims chosen by
// LRU. On the host backend, which runs the same CUDA C as a GPU
// (cuda.Open(ctx, 0) instead of cuda.NewHost() runs it on one).
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "device-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiny.gguf")
	if err := synth.Write(ctx, path, "qwen3moe-tiny"); err != nil {
		log.Fatal(err)
	}
	m, err := experts.OpenModel(path)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	dev, err := cuda.NewHost()
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	rt, err := rotary.Open(ctx, m, dev, rotary.WithSlots(6), rotary.WithDeviceResidency())
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	r, err := device.New(ctx, dev, rt)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	s, err := dev.NewStream()
	if err != nil {
		log.Fatal(err)
	}
	ids, err := dev.Alloc(4 * 4)
	if err != nil {
		log.Fatal(err)
	}
	slots, err := dev.Alloc(4 * 4)
	if err != nil {
		log.Fatal(err)
	}
	layer := m.MoELayers()[0]
	for _, step := range [][]int32{{1, 2, 3, 4}, {2, 3, 5, 6}, {7, 1, 2, 3}} {
		raw := make([]byte, 4*len(step))
		copy(cuda.View[int32](raw), step)
		if err := s.CopyHtoD(ids, 0, raw); err != nil {
			log.Fatal(err)
		}
		if err := r.Resolve(s, layer, ids, len(step), slots); err != nil {
			log.Fatal(err)
		}
		got := make([]byte, 4*len(step))
		if err := s.CopyDtoH(got, slots, 0); err != nil {
			log.Fatal(err)
		}
		misses, err := r.Misses(ctx, s, layer)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("experts", step, "in slots", cuda.View[int32](got), "misses", misses)
	}
	st := rt.Stats()
	fmt.Println("hits", st.VRAM.Hits, "misses", st.VRAM.Misses)
	// Output:
	// experts [1 2 3 4] in slots [0 1 2 3] misses [{1 0 -1} {2 1 -1} {3 2 -1} {4 3 -1}]
	// experts [2 3 5 6] in slots [1 2 4 5] misses [{5 4 -1} {6 5 -1}]
	// experts [7 1 2 3] in slots [3 0 1 2] misses [{7 3 4}]
	// hits 5 misses 7
}
