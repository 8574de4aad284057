package main

import (
	"github.com/rotary-moe/rotary/experts"
)

// defaultPreset is the model the program runs without -model: the smallest
// synthetic qwen35moe with several layers (4: Gated DeltaNet and gated
// attention) and 16 experts per layer, top-4, 24 KiB each, so a budget of
// half of them makes experts rotate within a few tokens.
const defaultPreset = "qwen35moe-tiny-f32"

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
