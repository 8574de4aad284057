package engine_test

import (
	"context"
	"fmt"
	"log"
	"slices"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Greedy generation with half of the model's experts in (emulated) VRAM:
// every expert a token routes to comes through rotary, and the text is the
// same as with all of them resident (see the model package's example).
func Example() {
	m, err := experts.OpenModel("../../experts/testdata/qwen35moe-tiny-f32.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	vram := m.NonExpertBytes() + engine.StateBytes(m.Params, 64) + m.TotalExpertBytes()/2
	e, err := engine.New(context.Background(), m, engine.WithVRAM(vram), engine.WithPositions(64))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	ctx := context.Background()
	md := e.Model()
	s := md.NewState(64)
	prompt := []int32{757, 84, 494, 198, 54, 71, 267, 334} // "<|im_start|>user\nWhat is"
	logits, err := md.Forward(ctx, s, prompt, model.LastLogits)
	if err != nil {
		log.Fatal(err)
	}
	var generated []int32
	for range 6 {
		next := int32(slices.Index(logits, slices.Max(logits)))
		generated = append(generated, next)
		if logits, err = md.Forward(ctx, s, []int32{next}, model.LastLogits); err != nil {
			log.Fatal(err)
		}
	}
	p, st := e.Runtime().Plan(), e.Stats()
	fmt.Println("generated:", generated)
	fmt.Printf("%d of %d experts per layer in VRAM slots, micro-batch %d\n", p.Layers[0].Slots, p.Layers[0].Experts, e.MaxBatch())
	fmt.Printf("VRAM: %d hits, %d misses\n", st.VRAM.Hits, st.VRAM.Misses)
	// Output:
	// generated: [216 483 483 483 483 483]
	// 8 of 16 experts per layer in VRAM slots, micro-batch 2
	// VRAM: 119 hits, 86 misses
}
