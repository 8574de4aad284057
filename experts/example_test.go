package experts_test

import (
	"fmt"
	"log"

	"github.com/rotary-moe/rotary/experts"
)

func ExampleOpen() {
	f, err := experts.Open("testdata/qwen3moe-tiny-q8_0.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	arch, err := f.String("general.architecture")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("GGUF version", f.Version(), "architecture", arch, "tensors", len(f.Tensors()))
	t, _ := f.Tensor("blk.0.ffn_up_exps.weight")
	fmt.Println(t.Name, t.Type, t.Dims, t.Size, "bytes at", t.Offset)
	data, err := f.TensorData(t)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(data), "bytes, no copy")
	// Output:
	// GGUF version 3 architecture qwen3moe tensors 27
	// blk.0.ffn_up_exps.weight Q8_0 [64 64 16] 69632 bytes at 295936
	// 69632 bytes, no copy
}

func ExampleOpenModel() {
	m, err := experts.OpenModel("testdata/qwen35moe-small-q4_k_m.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	h := m.Params
	fmt.Println(h.Arch, h.NumLayers, "layers,", h.NumExperts, "experts, top", h.NumExpertsUsed)
	for l := range h.NumLayers {
		kind := "Gated DeltaNet"
		if h.IsFullAttention(l) {
			kind = "full attention"
		}
		fmt.Printf("layer %d: %s, %d bytes per expert\n", l, kind, m.ExpertBytes(l))
	}
	fmt.Println("experts:", m.TotalExpertBytes(), "bytes; everything else:", m.NonExpertBytes(), "bytes")
	// Output:
	// qwen35moe 4 layers, 8 experts, top 2
	// layer 0: Gated DeltaNet, 110592 bytes per expert
	// layer 1: Gated DeltaNet, 110592 bytes per expert
	// layer 2: Gated DeltaNet, 127488 bytes per expert
	// layer 3: full attention, 127488 bytes per expert
	// experts: 3809280 bytes; everything else: 1836670 bytes
}

func ExampleModel_Expert() {
	m, err := experts.OpenModel("testdata/qwen3moe-tiny-mxfp4_moe.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	x, err := m.Expert(1, 5)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range x.Parts {
		fmt.Printf("%-4s %v %dx%d: %d bytes at %d\n", p.Role, p.Type, p.Rows, p.Cols, p.Size, p.Offset)
	}
	// Copy the expert out of the mapping, safe even if the file shrinks.
	buf := make([]byte, x.Parts[0].Size)
	if _, err := m.File.ReadAt(buf, x.Parts[0].Offset); err != nil {
		log.Fatal(err)
	}
	fmt.Println("expert", x.ID, "of layer", x.Layer, "takes", x.Size(), "bytes")
	// Output:
	// gate MXFP4 64x64: 2176 bytes at 333440
	// up   MXFP4 64x64: 2176 bytes at 372608
	// down MXFP4 64x64: 2176 bytes at 298624
	// expert 5 of layer 1 takes 6528 bytes
}
