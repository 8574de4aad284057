package rotary_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/rotary"
)

// tinyModel opens a model of 2 MoE layers with 16 experts each, top-4,
// without weights.
func tinyModel() *experts.Model {
	shape := synth.Shape{Name: "tiny", Arch: "llama", Layers: 2, Experts: 16, TopK: 4,
		Embedding: 256, ExpertFFN: 256, NonExpertBytes: 1 << 20}
	w, err := synth.ShapeWriter(shape)
	if err != nil {
		log.Fatal(err)
	}
	m, err := synth.OpenShape(w, "")
	if err != nil {
		log.Fatal(err)
	}
	return m
}

func ExampleNewPlan() {
	m := tinyModel()
	defer m.Close()
	vram, _ := rotary.ParseSize("3MiB")
	p, err := rotary.NewPlan(m, rotary.WithVRAM(vram), rotary.WithHostBudget(1<<20))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(p)

	_, err = rotary.NewPlan(m, rotary.WithVRAM(1<<20))
	fmt.Println(err)
	// Output:
	// model tiny: 2 MoE layers, 3.89 MiB of routed experts
	// VRAM  3.00 MiB = 1.03 MiB non-expert + 0 B reserve + 0 B pinned experts + 1.95 MiB slots + 24.0 KiB unused
	// host  pinned-lru: 8 expert copies in 996 KiB of pinned memory in 1 allocation (pinning ~0.0 s on a GPU)
	//   experts  top-k  expert size  pinned  slots    plane layers
	//        16      4      124 KiB       0      8  996 KiB 0-1
	// rotary: VRAM budget too small: the working set (top-4 experts of each of 2 layers, one plane per layer) needs 996 KiB, 0 B left (1.00 MiB budget - 1.03 MiB non-expert weights); the least VRAM budget that works is 2.01 MiB
}

func ExampleRuntime_Acquire() {
	m := tinyModel()
	defer m.Close()
	dev, err := cuda.NewHost(cuda.WithCapacity(16 << 20))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	ctx := context.Background()
	rt, err := rotary.Open(ctx, m, dev, rotary.WithSlots(6))
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	compute, _ := dev.NewStream()
	done, _ := dev.NewEvent(0)

	for _, ids := range [][]int{{3, 1, 4, 5}, {9, 2, 6, 5}, {3, 5, 8, 9}} {
		set, err := rt.Acquire(ctx, 0, ids, compute)
		if err != nil {
			log.Fatal(err)
		}
		// Launch kernels on compute that read set.Experts[i].Parts (gate,
		// up, down: device buffers with their types and shapes) here.
		var placed []string
		for _, v := range set.Experts {
			placed = append(placed, fmt.Sprintf("expert %d in slot %d", v.Expert, v.Slot))
		}
		fmt.Println(strings.Join(placed, ", "))
		compute.Record(done)
		rt.Release(set, done)
	}
	s := rt.Stats()
	fmt.Printf("hits %d, misses %d, %d KiB copied\n", s.VRAM.Hits, s.VRAM.Misses, s.VRAM.Bytes>>10)
	// Output:
	// expert 3 in slot 0, expert 1 in slot 1, expert 4 in slot 2, expert 5 in slot 3
	// expert 9 in slot 4, expert 2 in slot 5, expert 6 in slot 1, expert 5 in slot 3
	// expert 3 in slot 0, expert 5 in slot 3, expert 8 in slot 2, expert 9 in slot 4
	// hits 4, misses 8, 996 KiB copied
}

func ExampleParseSize() {
	for _, s := range []string{"16GiB", "16G", "16GB", "1.5 GiB"} {
		n, _ := rotary.ParseSize(s)
		fmt.Println(s, n, rotary.FormatSize(n))
	}
	// Output:
	// 16GiB 17179869184 16.0 GiB
	// 16G 17179869184 16.0 GiB
	// 16GB 16000000000 14.9 GiB
	// 1.5 GiB 1610612736 1.50 GiB
}
