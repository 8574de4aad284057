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

// Running a Qwen MoE model through rotary: open the GGUF file with a VRAM
// budget (here on the host backend, which emulates a card of that size) and
// generate. Half of the tiny test model's experts fit; every expert a token
// routes to comes through rotary's slots.
func Example() {
	ctx := context.Background()
	e, err := engine.Open(ctx, "../../experts/testdata/qwen35moe-tiny-f32.gguf",
		engine.WithVRAM(3<<20), engine.WithPositions(64))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	g, err := e.Generate(ctx, "<|im_start|>user\nWhat is", 6)
	if err != nil {
		log.Fatal(err)
	}
	// The model's weights are random: its text is not meant to make sense.
	fmt.Printf("%d prompt tokens, then %v (%s): %q\n", len(g.Prompt), g.Tokens, g.Stop, g.Text)
	st := e.Stats()
	fmt.Printf("experts: %d VRAM hits, %d misses copied in\n", st.VRAM.Hits, st.VRAM.Misses)
	// Output:
	// 8 prompt tokens, then [216 483 483 483 483 483] (length): "\x1cversionversionversionversionversion"
	// experts: 76 VRAM hits, 60 misses copied in
}

// The forward pass step by step, greedy, with half of the model's experts in
// (emulated) VRAM: the text is the same as with all of them resident (see
// the model package's example).
func ExampleEngine_Net() {
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
	md := e.Net()
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

// A generation that a program stops, as a Ctrl-C handler would by
// cancelling ctx: the token in hand completes, and what was generated comes
// back with Stop "interrupted", with the prefill's and the decode's counts.
func ExampleEngine_GenerateTokens() {
	e, err := engine.Open(context.Background(), "../../experts/testdata/qwen35moe-tiny-f32.gguf",
		engine.WithVRAM(3<<20), engine.WithPositions(64))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prompt := e.Tokenizer().Encode("<|im_start|>user\nWhat is")
	pieces := 0
	g, err := e.GenerateTokens(ctx, prompt, 100, engine.WithStream(func(text []byte) error {
		if pieces++; pieces == 4 {
			cancel()
		}
		return nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s after %d tokens: %v\n", g.Stop, len(g.Tokens), g.Tokens)
	fmt.Printf("prefill %d tokens, decode %d tokens, %d acquires\n",
		g.Prefill.Tokens, g.Decode.Tokens, g.Prefill.Stats.Acquires+g.Decode.Stats.Acquires)
	// Output:
	// interrupted after 4 tokens: [216 483 483 483]
	// prefill 8 tokens, decode 3 tokens, 16 acquires
}
