package synthetic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rotary-moe/rotary/examples/internal/progress"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/rotary"
)

// CachePath is where the synthetic model of a preset lives: the user cache
// folder, e.g. ~/.cache/rotary/synthetic/PRESET.gguf on Linux.
func CachePath(preset string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("synthetic: finding the user cache folder: %w", err)
	}
	return filepath.Join(dir, "rotary", "synthetic", preset+".gguf"), nil
}

// Cached returns the cached model of a preset, writing it the first time.
func Cached(ctx context.Context, preset string, log io.Writer) (string, error) {
	path, err := CachePath(preset)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return path, fmt.Errorf("synthetic: %w", err)
	}
	return path, Write(ctx, path, preset, log)
}

// Write writes the synthetic model of a preset to path, showing a progress
// bar on log when it is a terminal and a summary line after.
func Write(ctx context.Context, path, preset string, log io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("synthetic: %w", err)
	}
	bar := progress.New(log, "writing "+filepath.Base(path))
	var size int64
	start := time.Now()
	err := synth.Write(ctx, path, preset, synth.WithWriteOptions(experts.WithProgress(func(written, total int64) {
		size = total
		bar.Update(written, total)
	})))
	bar.Finish()
	if err != nil {
		return fmt.Errorf("synthetic: writing %s: %w", preset, err)
	}
	elapsed := time.Since(start)
	fmt.Fprintf(log, "wrote synthetic %s to %s: %s in %.1f s (%.0f MB/s)\n",
		preset, path, rotary.FormatSize(size), elapsed.Seconds(), float64(size)/1e6/elapsed.Seconds())
	return nil
}
