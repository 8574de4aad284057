package synth_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
)

func ExampleWrite() {
	dir, err := os.MkdirTemp("", "synth-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "qwen35moe-tiny.gguf")

	if err := synth.Write(context.Background(), path, "qwen35moe-tiny", synth.WithSeed(7)); err != nil {
		log.Fatal(err)
	}
	m, err := experts.OpenModel(path)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	h := m.Params
	fmt.Println(h.Arch, h.NumLayers, "layers,", h.NumExperts, "experts, top", h.NumExpertsUsed)
	for _, l := range m.MoELayers() {
		fmt.Println("layer", l, "full attention:", h.IsFullAttention(l), "expert bytes:", m.ExpertBytes(l))
	}
	// Output:
	// qwen35moe 2 layers, 16 experts, top 4
	// layer 0 full attention: false expert bytes: 110592
	// layer 1 full attention: true expert bytes: 127488
}

func ExamplePresets() {
	for _, name := range synth.Presets() {
		fmt.Println(name)
	}
	// Output:
	// qwen35moe-35b-a3b
	// qwen35moe-small
	// qwen35moe-tiny
	// qwen35moe-tiny-f32
	// qwen3moe-30b-a3b
	// qwen3moe-small
	// qwen3moe-tiny
	// qwen3moe-tiny-f32
}

func ExampleOpenShape() {
	// A weightless model of 2 MoE layers of 16 experts, as a routing trace
	// recorded on it would describe it: enough to plan and simulate.
	w, err := synth.ShapeWriter(synth.Shape{Name: "tiny", Arch: "llama", Layers: 2, Experts: 16, TopK: 4,
		Embedding: 256, ExpertFFN: 256, NonExpertBytes: 1 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := synth.OpenShape(w, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println("MoE layers", m.MoELayers(), "expert bytes", m.ExpertBytes(0), "non-expert bytes", m.NonExpertBytes())
	// Output:
	// MoE layers [0 1] expert bytes 127488 non-expert bytes 1081344
}
