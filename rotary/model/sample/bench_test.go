package sample

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkSample measures one draw over a Qwen3.5-sized vocabulary.
func BenchmarkSample(b *testing.B) {
	const vocab = 248320
	logits := make([]float32, vocab)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	history := make([]int32, 256)
	for i := range history {
		history[i] = int32(rng.IntN(vocab))
	}
	for _, bc := range []struct {
		name string
		opts []Option
	}{
		{"greedy", []Option{Greedy()}},
		{"defaults", nil},
		{"defaults+penalties", []Option{RepeatPenalty(1.1), PresencePenalty(1.5)}},
		{"top-p-only", []Option{TopK(0), TopP(0.95), MinP(0)}},
		{"min-p-only", []Option{TopK(0), TopP(1), MinP(0.05)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := New(bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sample(logits, history); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
