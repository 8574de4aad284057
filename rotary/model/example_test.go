package model_test

import (
	"context"
	"fmt"
	"log"
	"slices"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

// Greedy generation with the CPU backend, the experts served in place from
// the mapped file.
func Example() {
	em, err := experts.OpenModel("../../experts/testdata/qwen35moe-tiny-f32.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer em.Close()
	backend := cpu.New(0, cpu.WithExperts(model.NewFileSource(em)))
	defer backend.Close()
	m, err := model.New(em, backend)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	s := m.NewState(64)
	prompt := []int32{757, 84, 494, 198, 54, 71, 267, 334} // "<|im_start|>user\nWhat is"
	logits, err := m.Forward(ctx, s, prompt, model.LastLogits)
	if err != nil {
		log.Fatal(err)
	}
	var generated []int32
	for range 6 {
		next := int32(argmax(logits))
		generated = append(generated, next)
		if logits, err = m.Forward(ctx, s, []int32{next}, model.LastLogits); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("generated:", generated, "position:", s.Pos())
	// Output:
	// generated: [216 483 483 483 483 483] position: 14
}

func argmax(x []float32) int {
	return slices.Index(x, slices.Max(x))
}
