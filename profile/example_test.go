package profile_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/rotary-moe/rotary/profile"
)

func ExampleRecorder() {
	model := profile.ModelID{Name: "toy", Arch: "qwen3moe", Layers: 2, Experts: 4, ExpertsUsed: 2}
	rec, err := profile.NewRecorder(model, profile.WithWorkload("example"))
	if err != nil {
		panic(err)
	}
	// An inference loop calls Record once per layer per token.
	for _, ids := range [][]int32{{0, 1}, {0, 2}, {0, 1}} {
		for layer := range model.Layers {
			if err := rec.Record(layer, ids, []float32{0.7, 0.3}); err != nil {
				panic(err)
			}
		}
	}
	p := rec.Profile()
	l0 := p.Layers[0]
	fmt.Println("tokens:", p.Tokens)
	fmt.Println("counts:", l0.Counts)
	fmt.Println("ranked:", l0.Ranked())
	fmt.Printf("top-1 covers %.0f%%\n", 100*l0.Coverage()[0])
	fmt.Println("reused at distance 1:", l0.Reuse[0], "first uses:", l0.FirstUse)
	// Output:
	// tokens: 3
	// counts: [3 2 1 0]
	// ranked: [0 1 2 3]
	// top-1 covers 50%
	// reused at distance 1: 2 first uses: 3
}

func ExampleSelectHotSet() {
	model := profile.ModelID{Arch: "toy", Layers: 2, Experts: 4, ExpertsUsed: 1}
	rec, _ := profile.NewRecorder(model)
	for _, e := range []int32{0, 0, 0, 1, 2, 0} {
		_ = rec.Record(0, []int32{e}, nil)
		_ = rec.Record(1, []int32{3 - e}, nil)
	}
	// Layer 1's experts are twice as large (say Q6_K instead of Q4_K).
	sizes := []int64{100, 200}
	for _, mode := range []profile.Mode{profile.PerLayer, profile.Global} {
		h, err := profile.SelectHotSet(rec.Profile(), sizes, 300, mode)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: layer 0 %v, layer 1 %v, %d bytes, hit rate %.0f%%, optimal %v\n",
			mode, h.Layers[0].Experts, h.Layers[1].Experts, h.Bytes, 100*h.HitRate, h.Optimal)
	}
	// Output:
	// per-layer: layer 0 [0 1 2], layer 1 [3], 500 bytes, hit rate 83%, optimal true
	// global: layer 0 [0], layer 1 [3], 300 bytes, hit rate 67%, optimal true
}

func ExampleTrace() {
	model := profile.ModelID{Name: "toy", Arch: "toy", Layers: 2, Experts: 8, ExpertsUsed: 2}
	tr, _ := profile.NewTrace(model, profile.WithWeights())
	tr.StartSegment("prompt-1", "decode")
	tok := tr.AddToken()
	_ = tr.Set(tok, 0, []int32{3, 5}, []float32{0.75, 0.25})
	_ = tr.Set(tok, 1, []int32{1, 0}, []float32{0.5, 0.5})
	if err := tr.Encode(os.Stdout, profile.JSONL); err != nil {
		panic(err)
	}
	// Output:
	// {"format":"rotary-trace","version":1,"model":{"name":"toy","arch":"toy","layers":2,"experts":8,"experts_used":2},"weights":true}
	// {"segment":"prompt-1","phase":"decode"}
	// {"experts":[[3,5],[1,0]],"weights":[[0.75,0.25],[0.5,0.5]]}
}

func ExampleLoadFor() {
	model := profile.ModelID{Arch: "qwen35moe", Layers: 40, Experts: 256, ExpertsUsed: 8, TensorHash: "a1"}
	rec, _ := profile.NewRecorder(model)
	path := os.TempDir() + "/rotary-example-profile.json"
	defer os.Remove(path)
	if err := rec.Profile().Save(path); err != nil {
		panic(err)
	}
	other := model
	other.TensorHash = "b2" // the same architecture, another quantisation
	_, err := profile.LoadFor(path, other)
	fmt.Println(errors.Is(err, profile.ErrModelMismatch))
	var mm *profile.MismatchError
	if errors.As(err, &mm) {
		fmt.Println("differs in", mm.Field)
	}
	// Output:
	// true
	// differs in tensor_hash
}

func ExampleWriteCSV() {
	model := profile.ModelID{Arch: "toy", Layers: 1, Experts: 3, ExpertsUsed: 1}
	rec, _ := profile.NewRecorder(model)
	for _, e := range []int32{2, 2, 0, 2} {
		_ = rec.Record(0, []int32{e}, []float32{1})
	}
	if err := profile.WriteCSV(os.Stdout, rec.Profile()); err != nil {
		panic(err)
	}
	// Output:
	// layer,expert,rank,count,share,coverage,weight_mass
	// 0,0,2,1,0.25,1,1
	// 0,1,3,0,0,1,0
	// 0,2,1,3,0.75,0.75,3
}
