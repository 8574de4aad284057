package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runInspect(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestInspectSynthetic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	out, errOut, err := runInspect(t, "-synth", "qwen3moe-tiny", "-o", path, "-vram", "3MiB")
	require.NoError(t, err)
	assert.Contains(t, errOut, "wrote synthetic qwen3moe-tiny to "+path)
	for _, want := range []string{
		`architecture\s+qwen3moe`,
		`experts\s+16 per layer, 4 used per token \(softmax\), FFN 256`,
		`\s+Q6_K\s+\d+\s+`,
		`routed experts by layer`,
		`gate Q4_K, up Q4_K, down Q6_K`,
		`routed experts\s+3.63 MiB in 32 experts`,
		`3.00 MiB of VRAM, after the non-expert weights`,
		`per layer in every layer`,
	} {
		assert.Regexp(t, want, out)
	}

	// An existing file is inspected as it is.
	again, _, err := runInspect(t, path)
	require.NoError(t, err)
	assert.Regexp(t, `routed experts\s+3.63 MiB in 32 experts`, again)
}

func TestInspectDefaultModelIsWrittenOnce(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	out, errOut, err := runInspect(t)
	require.NoError(t, err)
	assert.Contains(t, errOut, "wrote synthetic "+defaultPreset)
	assert.Regexp(t, `architecture\s+qwen35moe`, out)
	path, err := synthetic.CachePath(defaultPreset)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)

	_, errOut, err = runInspect(t)
	require.NoError(t, err)
	assert.Empty(t, errOut, "written again")
	st2, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, st.ModTime(), st2.ModTime())
}

func TestInspectErrors(t *testing.T) {
	_, _, err := runInspect(t, filepath.Join(t.TempDir(), "missing.gguf"))
	assert.ErrorContains(t, err, "missing.gguf")
	_, _, err = runInspect(t, "-vram", "lots", "x.gguf")
	assert.ErrorContains(t, err, `"lots"`)
	_, _, err = runInspect(t, "-synth", "nope", "-o", filepath.Join(t.TempDir(), "m.gguf"))
	assert.ErrorContains(t, err, "nope")
	for _, args := range [][]string{{"a.gguf", "b.gguf"}, {"-o", "x.gguf"}, {"-synth", "qwen3moe-tiny", "a.gguf"}, {"-bogus"}} {
		_, _, err = runInspect(t, args...)
		assert.True(t, errors.Is(err, errUsage), "%v: %v", args, err)
	}
	_, _, err = runInspect(t, "-h")
	assert.ErrorIs(t, err, flag.ErrHelp)
}

func TestFit(t *testing.T) {
	layers := []expertSize{{bytes: 100, count: 4}, {bytes: 300, count: 4}}
	// 1000 left for experts: smallest first takes 4×100 + 2×300; evenly 2 per layer (800).
	got := fit(1100, 100, 1600, 8, layers)
	assert.Contains(t, got, "holds 6 of 8 experts (75.0%)")
	assert.Contains(t, got, "or 2 per layer in every layer (50.0%)")
	assert.Contains(t, fit(2000, 100, 1600, 8, layers), "all 8 experts")
	assert.Contains(t, fit(50, 100, 1600, 8, layers), "too little")
}
