package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/rotary"
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
		`plan for 3.00 MiB of VRAM`,
		`VRAM\s+3.00 MiB = 842 KiB non-expert \+ 0 B reserve`,
		`no reserve`,
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
	assert.Equal(t, synthetic.DefaultPreset, defaultPreset, "the model qwen35b runs")
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

	_, errOut, err := runInspect(t, "a.gguf", "b.gguf")
	assert.ErrorIs(t, err, errUsage)
	assert.Contains(t, errOut, "inspect: one model at a time, got 2: a.gguf b.gguf")
	_, errOut, _ = runInspect(t, "-o", "x.gguf")
	assert.Contains(t, errOut, "-o names where -synth writes")
}

// TestInspectSynthCreatesOnlyTheFile gives -o in a folder that does not
// exist: an error naming -o, and no folder made.
func TestInspectSynthCreatesOnlyTheFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	_, _, err := runInspect(t, "-synth", "qwen3moe-tiny", "-o", filepath.Join(dir, "m.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "-o "+filepath.Join(dir, "m.gguf"))
	assert.NoDirExists(t, filepath.Dir(dir))
}

// TestInspectPrintsTheRuntimesPlan checks that inspect shows exactly the plan
// rotary makes for the budget, and the runtime's reason when it is too small.
func TestInspectPrintsTheRuntimesPlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, synth.Write(t.Context(), path, "qwen3moe-tiny"))
	m, err := experts.OpenModel(path)
	require.NoError(t, err)
	defer m.Close()

	for _, budget := range []struct{ vram, reserve string }{{"3MiB", "0"}, {"3MiB", "512KiB"}, {"16GiB", "1GiB"}} {
		out, _, err := runInspect(t, "-vram", budget.vram, "-reserve", budget.reserve, path)
		require.NoError(t, err)
		vram, err := rotary.ParseSize(budget.vram)
		require.NoError(t, err)
		reserve, err := rotary.ParseSize(budget.reserve)
		require.NoError(t, err)
		plan, err := rotary.NewPlan(m, rotary.WithVRAM(vram), rotary.WithReserve(reserve))
		require.NoError(t, err)
		assert.Contains(t, out, plan.String(), "%+v", budget)
		assert.Equal(t, budget.reserve == "0", strings.Contains(out, "no reserve"), "%+v", budget)
	}

	out, _, err := runInspect(t, "-vram", "1MiB", path)
	require.NoError(t, err, "a budget too small is an answer, not a failure")
	assert.Contains(t, out, "1.00 MiB of VRAM does not hold the working set: rotary: VRAM budget too small")
	_, _, err = runInspect(t, "-reserve", "much", path)
	assert.ErrorContains(t, err, `"much"`)
}
