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

// DefaultPreset is the model the programs run or inspect without one: the
// smallest synthetic qwen35moe with several layers (4: Gated DeltaNet and
// gated attention) and 16 experts per layer, top-4, 24 KiB each, in f32 so
// the forward pass is exact.
const DefaultPreset = "qwen35moe-tiny-f32"

// CachePath is where the synthetic model of a preset lives: the user cache
// folder, e.g. ~/.cache/rotary/synthetic/PRESET.gguf on Linux.
func CachePath(preset string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("synthetic: finding the user cache folder: %w", err)
	}
	return filepath.Join(dir, "rotary", "synthetic", preset+".gguf"), nil
}

// Cached returns the cached model of a preset, writing it the first time,
// and again, saying why on log, when the cached file is damaged: not the
// size the preset writes, or not a model experts.OpenModel reads.
func Cached(ctx context.Context, preset string, log io.Writer) (string, error) {
	path, err := CachePath(preset)
	if err != nil {
		return "", err
	}
	switch err := check(path, preset); {
	case err == nil:
		return path, nil
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, errDamaged):
		fmt.Fprintf(log, "synthetic: %v: writing it again\n", err)
	default:
		return path, fmt.Errorf("synthetic: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return path, fmt.Errorf("synthetic: %w", err)
	}
	return path, Write(ctx, path, preset, log)
}

// errDamaged is a cached model that is not what its preset writes.
var errDamaged = errors.New("damaged")

// check reports whether path holds the preset's model: an error matching
// fs.ErrNotExist if there is none, errDamaged if the file is not it.
func check(path, preset string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	w, err := synth.NewWriter(preset)
	if err != nil {
		return err
	}
	if want := w.Size(); st.Size() != want {
		return fmt.Errorf("the cached model %s is %w: %d bytes, the preset writes %d", path, errDamaged, st.Size(), want)
	}
	m, err := experts.OpenModel(path)
	if err != nil {
		return fmt.Errorf("the cached model %s is %w: %w", path, errDamaged, err)
	}
	return m.Close()
}

// Write writes the synthetic model of a preset to path, whose folder must
// exist, showing progress on log and a summary line after. The file is
// renamed into place once complete.
func Write(ctx context.Context, path, preset string, log io.Writer) error {
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
