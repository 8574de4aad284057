package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rotary-moe/rotary/examples/internal/bytesize"
	"github.com/rotary-moe/rotary/examples/internal/progress"
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

// defaultModel returns the path of the default model, writing it to the
// user cache folder the first time.
func defaultModel(ctx context.Context, stderr io.Writer) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache folder for the default model: %w", err)
	}
	dir = filepath.Join(dir, "rotary", "synthetic")
	path := filepath.Join(dir, defaultPreset+".gguf")
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return path, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bar := progress.New(stderr, "writing "+filepath.Base(path))
	start := time.Now()
	var total int64
	err = experts.WriteSynthetic(ctx, path, defaultPreset, experts.WithProgress(func(done, n int64) {
		total = n
		bar.Update(done, n)
	}))
	bar.Finish()
	if err != nil {
		return "", fmt.Errorf("writing the default model: %w", err)
	}
	fmt.Fprintf(stderr, "wrote the default model, synthetic %s (%s), to %s in %.1f s\n",
		defaultPreset, bytesize.Format(total), path, time.Since(start).Seconds())
	return path, nil
}

// defaultBudgets are the default model's budgets: VRAM for its non-expert
// weights, the sequence state and half of its experts; pinned host memory
// for three quarters of its experts. Both tiers then miss and hit.
func defaultBudgets(m *experts.Model, state int64) (vram, host int64) {
	all := m.TotalExpertBytes()
	return m.NonExpertBytes() + state + all/2, all * 3 / 4
}
