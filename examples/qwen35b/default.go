package main

import (
	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/rotary-moe/rotary/experts"
)

// defaultPreset is the model the program runs without -model (the one
// inspect shows without a model): 4 layers, 16 experts per layer, top-4,
// 24 KiB each, so a budget of half of them makes experts rotate within a few
// tokens.
const defaultPreset = synthetic.DefaultPreset

// defaultPrompt is the prompt without -prompt: English that the synthetic
// tokenizer, trained on a short English text, cuts into whole words.
const defaultPrompt = "What makes a small town work? It is not only the shops and the school."

// defaultBudgets are the default model's budgets: VRAM for its non-expert
// weights, the sequence state and half of its experts; pinned host memory
// for three quarters of its experts. Both tiers then miss and hit.
func defaultBudgets(m *experts.Model, state int64) (vram, host int64) {
	all := m.TotalExpertBytes()
	return m.NonExpertBytes() + state + all/2, all * 3 / 4
}
