package sample_test

import (
	"fmt"

	"github.com/rotary-moe/rotary/rotary/model/sample"
)

func Example() {
	// Logits over a five-token vocabulary; token 2 was generated before.
	logits := []float32{1.0, 2.5, 3.0, 0.5, -1.0}
	history := []int32{2}

	greedy, err := sample.New(sample.Greedy())
	if err != nil {
		panic(err)
	}
	id, _ := greedy.Sample(logits, history)
	fmt.Println("greedy:", id)

	// A repetition penalty of 1.5 turns token 2's logit into 2.0.
	penalized, err := sample.New(sample.Greedy(), sample.RepeatPenalty(1.5))
	if err != nil {
		panic(err)
	}
	id, _ = penalized.Sample(logits, history)
	fmt.Println("with repeat penalty:", id)

	// Top-k 1 leaves a single candidate, whatever the temperature and seed.
	topK, err := sample.New(sample.TopK(1), sample.Temperature(1.5), sample.Seed(1))
	if err != nil {
		panic(err)
	}
	id, _ = topK.Sample(logits, nil)
	fmt.Println("top-k 1:", id)
	// Output:
	// greedy: 2
	// with repeat penalty: 1
	// top-k 1: 2
}
