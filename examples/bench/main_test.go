package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/examples/internal/cli"
	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/sim"
)

func TestMain(m *testing.M) {
	// The default model lives in a cache folder of the test's own.
	dir, err := os.MkdirTemp("", "bench-cache")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = command(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// small keeps runs short.
var small = []string{"-prompt", "12", "-gen", "12", "-runs", "3", "-backend", "host"}

func runJSON(t *testing.T, args ...string) report {
	t.Helper()
	code, stdout, stderr := runCLI(t, append([]string{"-json"}, args...)...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	var r report
	require.NoError(t, json.Unmarshal([]byte(stdout), &r))
	return r
}

// The default model's table: a row per budget, the experts rotating in the
// first and all resident in the second.
func TestDefaultTable(t *testing.T) {
	code, stdout, stderr := runCLI(t, small...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	assert.Contains(t, stdout, "routing  the model's own")
	assert.Contains(t, stdout, "decode tok/s")
	assert.Equal(t, 2+5, strings.Count(stdout, "\n")-1, "four header lines, a blank one, the columns and two rows:\n%s", stdout)

	r := runJSON(t, small...)
	require.Len(t, r.Rows, 2)
	half, all := r.Rows[0], r.Rows[1]
	assert.Less(t, half.Slots, half.Experts)
	assert.Equal(t, all.Experts, all.Slots, "all: every expert has a slot")
	for _, x := range r.Rows {
		assert.Positive(t, x.PrefillTokS)
		assert.Positive(t, x.DecodeTokS)
		assert.LessOrEqual(t, x.VRAM, x.Budget)
	}
	assert.Less(t, half.VRAMHitRate, 0.9, "half the experts: misses")
	assert.Greater(t, half.PCIeBytesPerToken, all.PCIeBytesPerToken)
	assert.Greater(t, all.VRAMHitRate, 0.95, "all resident: a miss only for an expert's first use")
}

// writeTrace writes a routing trace of tokens tokens for m's shape, skewed
// (a few experts take most selections) or spread.
func writeTrace(t *testing.T, m *experts.Model, tokens int, r sim.Routing) string {
	t.Helper()
	tr, err := sim.SyntheticTrace(engine.ModelID(m), tokens, r, 3)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	require.NoError(t, tr.Save(path, profile.JSONL))
	return path
}

func defaultModel(t *testing.T) *experts.Model {
	t.Helper()
	path, err := synthetic.Cached(context.Background(), synthetic.DefaultPreset, nil)
	require.NoError(t, err)
	m, err := experts.OpenModel(path)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// Replayed skewed routing hits more in the half budget than the model's
// own near-uniform routing, and the header says which ran.
func TestRoutingTrace(t *testing.T) {
	m := defaultModel(t)
	skewed := writeTrace(t, m, 64, sim.Routing{RepeatNext: 0.6, RepeatWithin8: 0.9, Coverage90: 0.4, TopShare: 0.2})
	own := runJSON(t, small...)
	replayed := runJSON(t, append(small, "-routing-trace", skewed)...)
	assert.Equal(t, "replayed from "+skewed, replayed.Routing)
	assert.Greater(t, replayed.Rows[0].VRAMHitRate, own.Rows[0].VRAMHitRate)

	other, err := sim.SyntheticTrace(profile.ModelID{Arch: "qwen3moe", Layers: 2, Experts: 8, ExpertsUsed: 2}, 8, sim.Routing{RepeatNext: 0.45, RepeatWithin8: 0.8, Coverage90: 0.5, TopShare: 0.25}, 1)
	require.NoError(t, err)
	wrong := filepath.Join(t.TempDir(), "wrong.jsonl")
	require.NoError(t, other.Save(wrong, profile.JSONL))
	code, _, stderr := runCLI(t, append(small, "-routing-trace", wrong)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "the trace is of 2 layers")
}

func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"-runs", "0"}, {"-gen", "0"}, {"-prompt", "-1"}, {"-budgets", "lots"},
		{"-backend", "tpu"}, {"-device", "first"}, {"-nope"}, {"extra"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
		assert.Empty(t, stdout)
		assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
	}
	code, _, stderr := runCLI(t, "-prompt", "5000", "-backend", "host")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "context")
	code, _, stderr = runCLI(t, "-model", filepath.Join(t.TempDir(), "none.gguf"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "none.gguf")
}

// The GPU backend on the emulator gives the same table's shape, a row for
// each residency, and the CPU's expert counts with either: the same
// routing, the same slots. Residency on the device waits for the device
// less often.
func TestEmulatedGPU(t *testing.T) {
	args := []string{"-prompt", "8", "-gen", "8", "-runs", "1"}
	code, stdout, stderr := runCLI(t, append(args, "-json", "-backend", "cuda", "-device", "emulated")...)
	if code != 0 && strings.Contains(stderr, cuda.ErrNoEmulator.Error()) && os.Getenv(cudatest.RequireEnv) != "1" {
		t.Skip(stderr)
	}
	require.Equal(t, 0, code, "stderr: %s", stderr)
	var gpu report
	require.NoError(t, json.Unmarshal([]byte(stdout), &gpu))
	cpu := runJSON(t, append(args, "-backend", "host")...)
	assert.Contains(t, gpu.Backend, "emulator")
	require.Len(t, cpu.Rows, 2)
	require.Len(t, gpu.Rows, 4)
	for i, r := range gpu.Rows {
		want := cpu.Rows[i/2]
		assert.Equal(t, []string{"host", "device"}[i%2], r.Residency)
		assert.Equal(t, want.VRAMHitRate, r.VRAMHitRate, "row %d", i)
		assert.Equal(t, want.HostHitRate, r.HostHitRate, "row %d", i)
		assert.Equal(t, want.PCIeBytesPerToken, r.PCIeBytesPerToken, "row %d", i)
		if i%2 == 1 {
			assert.Less(t, r.SyncsPerToken, gpu.Rows[i-1].SyncsPerToken, "row %d", i)
		}
	}
	code, _, stderr = runCLI(t, append(args, "-backend", "host", "-residency", "device")...)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-residency device needs the forward pass on a GPU")
}

// The default -prompt shrinks to a small context; a -prompt given does not.
func TestFitContext(t *testing.T) {
	c := &config{prompt: 512, gen: 128}
	positions, err := c.fitContext(300)
	require.NoError(t, err)
	assert.Equal(t, 300, positions)
	assert.Equal(t, 172, c.prompt)

	c = &config{prompt: 512, gen: 128, promptGiven: true}
	_, err = c.fitContext(300)
	var u *cli.UsageError
	assert.ErrorAs(t, err, &u)
	assert.ErrorContains(t, err, "context of 300")
}

// A benchmark stopped before its last budget says so above its rows.
func TestStoppedTable(t *testing.T) {
	r := &report{Model: "m.gguf", Runs: 1, Budgets: 4, Rows: []row{{Budget: 6 << 30}}}
	var out bytes.Buffer
	require.NoError(t, r.print(&out))
	assert.Contains(t, out.String(), "stopped  after 1 of 4 rows")
	assert.Contains(t, out.String(), "one run, each on a fresh engine")
}

// A budget too small for the working set fails, after the rows before it.
func TestFailedBudgetKeepsRows(t *testing.T) {
	code, stdout, stderr := runCLI(t, "-prompt", "4", "-gen", "2", "-runs", "1", "-backend", "host", "-budgets", "all,1KiB")
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout, "stopped  after 1 of 2 rows")
	assert.Regexp(t, `(?m)^bench: budget 1.00 KiB, host residency: [^\n]*VRAM budget too small[^\n]*\n$`, stderr, "the error, one line, last")
}
