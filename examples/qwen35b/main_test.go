package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/examples/internal/interrupt"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
)

// TestMain points the user cache folder, where the default model is written
// once, at a temporary folder, and checks that runs leave no goroutine
// behind.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qwen35b-test-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	os.Setenv("HOME", dir) // where os.UserCacheDir looks on other systems
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutines left behind: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// oracleModel is a llama.cpp-checked model of experts/testdata: qwen3moe,
// 16 experts, top-4, Q8_0.
const oracleModel = "../../experts/testdata/qwen3moe-tiny-q8_0.gguf"

// oracleF32 is an oracle model in F32, on which the GPU backend's float
// arithmetic and the CPU's give the same greedy tokens.
const oracleF32 = "../../experts/testdata/qwen3moe-tiny-f32.gguf"

// runCLI runs the program as main does and returns its exit status and
// output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = command(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// result is -json's object as a script reads it.
type result struct {
	jsonResult
	Plan struct {
		TotalExpert int64 `json:"total_expert_bytes"`
		Slots       int64 `json:"slot_bytes"`
		Pinned      int64 `json:"pinned_bytes"`
		Host        struct {
			Mode string `json:"mode"`
		} `json:"host"`
	} `json:"plan"`
}

// runJSON runs the program with -json and decodes its result.
func runJSON(t *testing.T, args ...string) (result, string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, append([]string{"-json"}, args...)...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	var r result
	dec := json.NewDecoder(strings.NewReader(stdout))
	require.NoError(t, dec.Decode(&r), "stdout: %s", stdout)
	_, err := dec.Token()
	require.ErrorIs(t, err, io.EOF, "stdout holds the JSON object alone")
	return r, stderr
}

// TestDefaultModel runs the embedded default: budgets smaller than all the
// experts, so both tiers miss and hit; text and stats go to stderr with
// -json.
func TestDefaultModel(t *testing.T) {
	r, stderr := runJSON(t, "-n", "24")
	assert.Contains(t, stderr, "prefill")
	assert.Contains(t, stderr, "VRAM hit rate")
	assert.NotEmpty(t, r.PromptTokens)
	assert.Len(t, r.GeneratedTokens, 24)
	assert.Equal(t, "length", r.Stop)
	assert.NotEmpty(t, r.Text)
	assert.Contains(t, stderr, defaultPrompt, "the human output goes to stderr")
	assert.Equal(t, "qwen35moe", r.ModelID.Arch)
	assert.Equal(t, len(r.PromptTokens), r.Stats.Prefill.Tokens)
	assert.Equal(t, 23, r.Stats.Decode.Tokens, "the last token is sampled, not run")
	assert.Positive(t, r.Stats.Prefill.TokensPerSecond)
	assert.Positive(t, r.Stats.Decode.TokensPerSecond)

	x := r.Stats.Experts
	assert.NotZero(t, x.VRAM.Hits)
	assert.NotZero(t, x.VRAM.Misses)
	assert.NotZero(t, x.Host.Hits, "misses served from pinned copies")
	assert.NotZero(t, x.Host.Misses, "misses read from the file")
	assert.Equal(t, x.VRAM.Misses, x.Host.Hits+x.Host.Misses, "every VRAM miss came through the host tier")
	assert.Equal(t, r.Stats.Prefill.Experts.VRAM.Hits+r.Stats.Decode.Experts.VRAM.Hits, x.VRAM.Hits)
	assert.Positive(t, x.BytesToDevice)
	assert.Less(t, r.Plan.Slots, r.Plan.TotalExpert, "VRAM does not hold every expert")
	assert.Equal(t, "pinned-lru", r.Plan.Host.Mode)

	// The human output without -json: text and stats on stdout.
	code, stdout, _ := runCLI(t, "-n", "4")
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, defaultPrompt)
	assert.Contains(t, stdout, "decode")
	assert.Contains(t, stdout, "host hit rate")
}

// TestRotationKeepsTokens samples the same tokens with half the experts in
// VRAM as with all of them, on the default model and an oracle model.
func TestRotationKeepsTokens(t *testing.T) {
	m, err := experts.OpenModel(oracleModel)
	require.NoError(t, err)
	half := m.NonExpertBytes() + engine.StateBytes(m.Params, 64) + m.TotalExpertBytes()/2
	host := m.TotalExpertBytes() * 3 / 4
	m.Close()
	for _, tc := range []struct {
		name string
		few  []string // budgets that rotate experts
	}{
		{"default", nil},
		{"oracle", []string{"-model", oracleModel, "-ctx", "64", "-vram", strconv.FormatInt(half, 10), "-host-mem", strconv.FormatInt(host, 10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			common := []string{"-n", "20", "-seed", "7", "-temp", "1.2", "-top-k", "0", "-top-p", "1", "-min-p", "0"}
			rotated, _ := runJSON(t, append(common, tc.few...)...)
			all := append(withModel(common, tc.few), "-vram", "1GiB", "-host-mem", "1GiB")
			resident, _ := runJSON(t, all...)

			assert.Equal(t, resident.GeneratedTokens, rotated.GeneratedTokens)
			assert.Equal(t, resident.Text, rotated.Text)
			assert.Equal(t, resident.Plan.TotalExpert, resident.Plan.Slots, "all experts have slots")
			assert.Equal(t, "mapped", resident.Plan.Host.Mode)
			x := rotated.Stats.Experts
			assert.Less(t, rotated.Plan.Slots, rotated.Plan.TotalExpert)
			assert.NotZero(t, x.VRAM.Hits)
			assert.Greater(t, x.VRAM.Misses, resident.Stats.Experts.VRAM.Misses, "experts were evicted and copied again")
			assert.NotZero(t, x.Host.Misses)
		})
	}
}

// -backend cuda without a GPU says so, and how to run elsewhere.
func TestNoGPU(t *testing.T) {
	if dev, err := cuda.Open(context.Background(), 0); err == nil {
		dev.Close()
		t.Skip("a GPU opens here")
	}
	code, stdout, stderr := runCLI(t, "-backend", "cuda")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "-backend cuda: no GPU 0")
	assert.Contains(t, stderr, "-backend host runs the forward pass on the CPU")
}

// The GPU backend on the emulated device generates what the CPU backend
// does (greedy, F32 models: the same tokens), its experts rotating through
// slots as on the CPU path, with residency decided on the device (the
// default) or on the host.
func TestEmulatedGPU(t *testing.T) {
	m, err := experts.OpenModel(oracleF32)
	require.NoError(t, err)
	half := m.NonExpertBytes() + engine.ReserveBytes(m.Params, 64, true) + m.TotalExpertBytes()/2
	m.Close()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"oracle", []string{"-model", oracleF32, "-ctx", "64", "-vram", strconv.FormatInt(half, 10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			common := append([]string{"-n", "16", "-temp", "0"}, tc.args...)
			cpu, _ := runJSON(t, append(common, "-backend", "host")...)
			for _, residency := range []string{"", "host"} {
				args := append(common, "-json", "-backend", "cuda", "-device", "emulated")
				if residency != "" {
					args = append(args, "-residency", residency)
				}
				code, stdout, stderr := runCLI(t, args...)
				if code != 0 && strings.Contains(stderr, cuda.ErrNoEmulator.Error()) && os.Getenv(cudatest.RequireEnv) != "1" {
					t.Skip(stderr)
				}
				require.Equal(t, 0, code, "stderr: %s", stderr)
				var gpu result
				require.NoError(t, json.NewDecoder(strings.NewReader(stdout)).Decode(&gpu))
				want := "residency decided on the device"
				if residency == "host" {
					want = "residency decided on the host"
				}
				assert.Contains(t, stderr, "backend: cuda on host")
				assert.Contains(t, stderr, want)

				assert.Equal(t, cpu.GeneratedTokens, gpu.GeneratedTokens)
				assert.Equal(t, cpu.Text, gpu.Text)
				x := gpu.Stats.Experts
				assert.Less(t, gpu.Plan.Slots, gpu.Plan.TotalExpert, "experts rotate")
				assert.NotZero(t, x.VRAM.Hits)
				assert.NotZero(t, x.VRAM.Misses)
			}
		})
	}
}

// -residency device needs the forward pass on a GPU, and no prefetcher.
func TestResidencyFlag(t *testing.T) {
	code, _, stderr := runCLI(t, "-backend", "host", "-residency", "device")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-residency device needs the forward pass on a GPU")
	code, _, stderr = runCLI(t, "-residency", "gpu")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `-residency "gpu": want host or device`)
}

// withModel returns common's flags with few's -model and -ctx, without its
// budgets.
func withModel(common, few []string) []string {
	out := append([]string{}, common...)
	for i := 0; i+1 < len(few); i += 2 {
		if few[i] == "-model" || few[i] == "-ctx" {
			out = append(out, few[i], few[i+1])
		}
	}
	return out
}

// TestTrace checks that -trace records every forward step's routing, as the
// model computes it, in both encodings.
func TestTrace(t *testing.T) {
	for _, name := range []string{"run.jsonl", "run.bin"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			r, stderr := runJSON(t, "-n", "12", "-trace", path)
			assert.Contains(t, stderr, "wrote "+path)

			tr, err := profile.OpenTrace(context.Background(), path)
			require.NoError(t, err)
			assert.Equal(t, r.ModelID, tr.Model())
			assert.True(t, tr.HasWeights())
			ran := append(append([]int32{}, r.PromptTokens...), r.GeneratedTokens[:len(r.GeneratedTokens)-1]...)
			require.Equal(t, len(ran), tr.Tokens())
			segs := tr.Segments()
			require.Len(t, segs, 2)
			assert.Equal(t, "prefill", segs[0].Phase)
			assert.Equal(t, len(r.PromptTokens), tr.SegmentEnd(0))
			assert.Equal(t, "decode", segs[1].Phase)

			// The same tokens through the model, one at a time, route the same.
			m, err := experts.OpenModel(r.Model)
			require.NoError(t, err)
			defer m.Close()
			var ids [][][]int32 // [token][layer]
			var weights [][][]float32
			hook := model.WithRoutingHook(func(layer, pos int, rt model.Routing) {
				for len(ids) <= pos {
					ids = append(ids, make([][]int32, m.Params.NumLayers))
					weights = append(weights, make([][]float32, m.Params.NumLayers))
				}
				ids[pos][layer] = append([]int32{}, rt.IDs...)
				weights[pos][layer] = append([]float32{}, rt.Weights...)
			})
			e, err := engine.New(context.Background(), m, engine.WithPositions(64), engine.WithModelOptions(hook))
			require.NoError(t, err)
			defer e.Close()
			s := e.Net().NewState(64)
			for _, tok := range ran {
				_, err := e.Net().Forward(context.Background(), s, []int32{tok}, model.LastLogits)
				require.NoError(t, err)
			}
			for tok := range ran {
				for l := range m.Params.NumLayers {
					assert.Equal(t, ids[tok][l], tr.AppendExperts(nil, tok, l), "token %d layer %d", tok, l)
					assert.InDeltaSlice(t, weights[tok][l], tr.AppendWeights(nil, tok, l), 1e-6, "token %d layer %d", tok, l)
				}
			}
		})
	}
}

// TestProfileAndHotSet records a profile and its charts, then pins the
// profile's hot set in a second run.
func TestProfileAndHotSet(t *testing.T) {
	dir := t.TempDir()
	prompt := filepath.Join(dir, "prompt.txt")
	require.NoError(t, os.WriteFile(prompt, []byte("The river is 40 metres wide at the bridge."), 0o644))
	prof, heat, curves := filepath.Join(dir, "p.json"), filepath.Join(dir, "h.png"), filepath.Join(dir, "c.png")
	r, _ := runJSON(t, "-prompt-file", prompt, "-n", "40", "-profile", prof, "-heatmap", heat, "-curves", curves)

	p, err := profile.LoadFor(prof, r.ModelID)
	require.NoError(t, err)
	assert.Equal(t, "prompt.txt", p.Workload)
	tokens := uint64(len(r.PromptTokens) + len(r.GeneratedTokens) - 1)
	for l := range p.Layers {
		assert.Equal(t, tokens*uint64(r.ModelID.ExpertsUsed), p.Layers[l].Selections(), "layer %d", l)
	}
	for _, path := range []string{heat, curves} {
		f, err := os.Open(path)
		require.NoError(t, err)
		_, err = png.Decode(f)
		f.Close()
		require.NoError(t, err, path)
	}

	pinned, stderr := runJSON(t, "-prompt-file", prompt, "-n", "40", "-hot", prof, "-v")
	assert.Contains(t, stderr, "hot set from "+prof)
	assert.Positive(t, pinned.Plan.Pinned)
	assert.Positive(t, pinned.Stats.Experts.PinnedHits)
	assert.Equal(t, r.GeneratedTokens, pinned.GeneratedTokens, "pinning does not change the text")
	// The profile carries the cross-layer counts: auto prefetches with them.
	assert.Contains(t, stderr, "prefetch: transition statistics of "+prof)
	assert.Positive(t, pinned.Stats.Experts.Prefetch.Recall)

	off, stderr := runJSON(t, "-prompt-file", prompt, "-n", "40", "-hot", prof, "-prefetch", "off", "-v")
	assert.Contains(t, stderr, "prefetch: off")
	assert.Zero(t, off.Stats.Experts.Prefetched)
	assert.Equal(t, r.GeneratedTokens, off.GeneratedTokens, "prefetching does not change the text")

	code, _, stderr := runCLI(t, "-prompt-file", prompt, "-n", "4", "-prefetch", "transition")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-prefetch transition learns from the -hot profile")
}

// TestErrors checks that failures are one line on stderr with a non-zero
// exit status and nothing on stdout.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	otherArch := writeOtherArch(t, dir)
	// A profile of another model for -hot.
	foreign := filepath.Join(dir, "foreign.json")
	rec, err := profile.NewRecorder(profile.ModelID{Arch: "qwen3moe", Layers: 2, Experts: 16, ExpertsUsed: 4})
	require.NoError(t, err)
	require.NoError(t, rec.Profile().Save(foreign))

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing file", []string{"-model", filepath.Join(dir, "missing.gguf")}, 1, "no such file"},
		{"wrong architecture", []string{"-model", otherArch}, 1, "unsupported architecture"},
		{"budget too small", []string{"-vram", "2MiB"}, 1, "VRAM budget too small"},
		{"host budget too small", []string{"-host-mem", "1KiB"}, 1, "host budget too small"},
		{"least VRAM", []string{"-vram", "1KiB"}, 1, "the least VRAM budget that works is 5.51 MiB: -vram sets it; the sequence state of -ctx 4096 takes 4.04 MiB"},
		{"least host memory", []string{"-host-mem", "1KiB"}, 1, "the least host budget that works is 96.0 KiB: -host-mem sets it; from 1.50 MiB (every expert) the file's mapping"},
		{"unknown backend", []string{"-backend", "tpu"}, 2, "-backend"},
		{"bad device", []string{"-backend", "cuda", "-device", "first"}, 2, "-device"},
		{"bad flag", []string{"-nope"}, 2, "flag provided but not defined: -nope"},
		{"bad size", []string{"-vram", "lots"}, 2, "-vram"},
		{"bad sampler", []string{"-top-p", "2"}, 2, "top-p"},
		{"argument", []string{"model.gguf"}, 2, "unexpected argument"},
		{"both prompts", []string{"-prompt", "a", "-prompt-file", "b"}, 2, "exclusive"},
		{"empty prompt", []string{"-prompt", ""}, 2, "-prompt is empty"},
		{"missing prompt file", []string{"-prompt-file", filepath.Join(dir, "none.txt")}, 1, "-prompt-file"},
		{"profile of another model", []string{"-hot", foreign}, 1, "-hot"},
		{"prompt longer than the context", []string{"-ctx", "4"}, 1, "context"},
		{"chart format", []string{"-heatmap", filepath.Join(dir, "h.gif")}, 2, "-heatmap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Empty(t, stdout)
			assert.True(t, strings.HasPrefix(stderr, "qwen35b: "), "stderr: %q", stderr)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

func TestHelp(t *testing.T) {
	code, stdout, stderr := runCLI(t, "-h")
	assert.Equal(t, 0, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "usage: qwen35b")
	assert.Contains(t, stderr, "-host-mem")
}

// writeOtherArch writes a small MoE model of an architecture the forward
// pass does not run (mixtral), which the experts package reads.
func writeOtherArch(t *testing.T, dir string) string {
	t.Helper()
	w, err := experts.NewWriter()
	require.NoError(t, err)
	for _, kv := range []struct {
		key   string
		value any
	}{
		{"general.architecture", "mixtral"},
		{"mixtral.block_count", uint32(1)},
		{"mixtral.context_length", uint32(64)},
		{"mixtral.embedding_length", uint32(32)},
		{"mixtral.attention.head_count", uint32(2)},
		{"mixtral.expert_count", uint32(4)},
		{"mixtral.expert_used_count", uint32(2)},
	} {
		require.NoError(t, w.SetKV(kv.key, kv.value))
	}
	zeros := func(n int) experts.TensorFiller {
		return func(w io.Writer) error {
			_, err := w.Write(make([]byte, n))
			return err
		}
	}
	for _, tt := range []struct {
		name string
		dims []uint64
	}{
		{"token_embd.weight", []uint64{32, 8}},
		{"blk.0.ffn_gate_inp.weight", []uint64{32, 4}},
		{"blk.0.ffn_gate_exps.weight", []uint64{32, 16, 4}},
		{"blk.0.ffn_up_exps.weight", []uint64{32, 16, 4}},
		{"blk.0.ffn_down_exps.weight", []uint64{16, 32, 4}},
	} {
		n := 4
		for _, d := range tt.dims {
			n *= int(d)
		}
		require.NoError(t, w.AddTensor(tt.name, experts.TypeF32, tt.dims, zeros(n)))
	}
	path := filepath.Join(dir, "mixtral.gguf")
	require.NoError(t, w.WriteFile(context.Background(), path))
	return path
}

// TestLeastBudgetsWork runs with the least budgets the errors name.
func TestLeastBudgetsWork(t *testing.T) {
	code, _, stderr := runCLI(t, "-vram", "5.51MiB", "-host-mem", "96KiB", "-n", "4")
	assert.Equal(t, 0, code, stderr)
}

// TestOutputsNeverDestroyInputs names the model, through a link too, as
// every output: each run fails before any work, naming the flag, and the
// model is intact.
func TestOutputsNeverDestroyInputs(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	orig, err := os.ReadFile(oracleModel)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(model, orig, 0o644))
	link := filepath.Join(dir, "link.gguf")
	require.NoError(t, os.Symlink(model, link))
	// The charts' flags refuse a name without an image extension first; a
	// link with one still leads to the model.
	pngLink := filepath.Join(dir, "link.png")
	require.NoError(t, os.Symlink(model, pngLink))
	for _, flag := range []string{"-trace", "-heatmap", "-profile", "-curves"} {
		for _, out := range []string{model, link, pngLink} {
			code, stdout, stderr := runCLI(t, "-model", model, "-n", "2", flag, out)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, flag)
			if (flag == "-heatmap" || flag == "-curves") && out != pngLink {
				assert.Equal(t, 2, code, stderr)
				assert.Contains(t, stderr, "unsupported image format")
				continue
			}
			assert.Equal(t, 1, code, stderr)
			assert.Contains(t, stderr, flag+" "+out)
			assert.Contains(t, stderr, "would overwrite an input, "+model)
		}
	}
	got, err := os.ReadFile(model)
	require.NoError(t, err)
	assert.Equal(t, orig, got, "the model is untouched")
}

// TestOutputsCheckedFirst gives one output in a missing folder: the run
// stops at once, naming the flag, and writes none of the others.
func TestOutputsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	heat, prof := filepath.Join(dir, "h.png"), filepath.Join(dir, "p.json")
	bad := filepath.Join(dir, "missing", "c.png")
	code, stdout, stderr := runCLI(t, "-n", "2", "-heatmap", heat, "-profile", prof, "-curves", bad)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "-curves "+bad)
	assert.Contains(t, stderr, "no such file")
	assert.NotContains(t, stderr, "prefill", "no work was done")
	assert.NoFileExists(t, heat)
	assert.NoFileExists(t, prof)
}

// TestFailedRunKeepsTheOldTrace fails at setup: an existing trace is left
// as it was, and no temporary file stays.
func TestFailedRunKeepsTheOldTrace(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "run.jsonl")
	require.NoError(t, os.WriteFile(trace, []byte("an older trace\n"), 0o644))
	code, _, stderr := runCLI(t, "-vram", "1KiB", "-trace", trace)
	assert.Equal(t, 1, code, stderr)
	got, err := os.ReadFile(trace)
	require.NoError(t, err)
	assert.Equal(t, "an older trace\n", string(got))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left")
}

// cancelAfter cancels a run, as a signal would, once the program has
// written n times to it (the plan, the prompt, then a token a write).
type cancelAfter struct {
	bytes.Buffer
	n      int
	cancel context.CancelCauseFunc
	sig    os.Signal
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	if w.n--; w.n == 0 {
		w.cancel(&interrupt.Error{Signal: w.sig})
	}
	return w.Buffer.Write(p)
}

// TestInterruptedPrefill stops a run in its prefill: no token, and the
// outputs hold what there is.
func TestInterruptedPrefill(t *testing.T) {
	dir := t.TempDir()
	trace, prof := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "p.json")
	ctx, cancel := context.WithCancelCause(context.Background())
	human := &cancelAfter{n: 4, cancel: cancel, sig: syscall.SIGINT} // at the prompt's echo
	var out bytes.Buffer
	code := command(ctx, []string{"-json", "-trace", trace, "-profile", prof}, &out, human)
	assert.Equal(t, 130, code, human.String())
	var r result
	require.NoError(t, json.Unmarshal(out.Bytes(), &r), out.String())
	assert.True(t, r.Interrupted)
	assert.Empty(t, r.GeneratedTokens)
	tr, err := profile.OpenTrace(context.Background(), trace)
	require.NoError(t, err)
	assert.Zero(t, tr.Tokens(), "a prefill cut short leaves no partial token")
	assert.FileExists(t, prof)
}

// TestInterrupted stops a run after a few tokens, as SIGINT or SIGTERM
// does: it writes every output, the JSON says so, the text ends in a
// newline and the exit status is the shell's.
func TestInterrupted(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		dir := t.TempDir()
		trace, prof := filepath.Join(dir, "run.bin"), filepath.Join(dir, "p.json")
		ctx, cancel := context.WithCancelCause(context.Background())
		human := &cancelAfter{n: 4 + 5, cancel: cancel, sig: tc.sig} // 3 writes of the plan, the prompt, then 5 tokens
		var out bytes.Buffer
		code := command(ctx, []string{"-json", "-n", "40", "-trace", trace, "-profile", prof}, &out, human)
		assert.Equal(t, tc.code, code, human.String())
		assert.Contains(t, human.String(), "qwen35b: interrupted by SIG")
		assert.Contains(t, human.String(), "wrote "+trace)

		var r result
		require.NoError(t, json.Unmarshal(out.Bytes(), &r), out.String())
		assert.True(t, r.Interrupted)
		assert.Equal(t, "interrupted", r.Stop)
		require.Len(t, r.GeneratedTokens, 5, "stopped after the token in hand")
		tr, err := profile.OpenTrace(context.Background(), trace)
		require.NoError(t, err)
		assert.Equal(t, len(r.PromptTokens)+len(r.GeneratedTokens)-1, tr.Tokens(), "whole tokens: all but the last sampled have run")
		assert.Zero(t, tr.Dropped())
		_, err = profile.LoadFor(prof, r.ModelID)
		require.NoError(t, err)
	}
}

// TestSameRunSameCounts runs twice with the same seed: the text and every
// count are the same (the host tier's warm-up ends before the prompt), and
// the bytes read from the file are the misses' and the warm-up's.
func TestSameRunSameCounts(t *testing.T) {
	a, _ := runJSON(t, "-n", "30", "-seed", "3")
	b, _ := runJSON(t, "-n", "30", "-seed", "3")
	assert.Equal(t, a.GeneratedTokens, b.GeneratedTokens)
	ax, bx := a.Stats.Experts, b.Stats.Experts
	ax.WaitSeconds, ax.TransferSeconds, ax.StallSeconds, ax.HostWaitSeconds = 0, 0, 0, 0
	bx.WaitSeconds, bx.TransferSeconds, bx.StallSeconds, bx.HostWaitSeconds = 0, 0, 0, 0
	assert.Equal(t, ax, bx, "the counts do not depend on timing")
	assert.Positive(t, ax.HostAhead)
	const expert = 24 << 10 // the default model's experts
	assert.Equal(t, int64(ax.Host.Misses+ax.HostAhead)*expert, ax.BytesFromFile)
	assert.Equal(t, int64(ax.VRAM.Misses)*expert, ax.BytesToDevice)
}

// With residency on the emulated device, -trace records the routing the CPU
// backend records: the same experts for every token and layer.
func TestEmulatedGPUTrace(t *testing.T) {
	dir := t.TempDir()
	cpuPath, gpuPath := filepath.Join(dir, "cpu.jsonl"), filepath.Join(dir, "gpu.jsonl")
	common := []string{"-n", "8", "-temp", "0"}
	code, _, stderr := runCLI(t, append(common, "-backend", "cuda", "-device", "emulated", "-trace", gpuPath)...)
	if code != 0 && strings.Contains(stderr, cuda.ErrNoEmulator.Error()) && os.Getenv(cudatest.RequireEnv) != "1" {
		t.Skip(stderr)
	}
	require.Equal(t, 0, code, "stderr: %s", stderr)
	assert.Contains(t, stderr, "residency decided on the device")
	runJSON(t, append(common, "-backend", "host", "-trace", cpuPath)...)

	cpu, err := profile.OpenTrace(context.Background(), cpuPath)
	require.NoError(t, err)
	gpu, err := profile.OpenTrace(context.Background(), gpuPath)
	require.NoError(t, err)
	require.Equal(t, cpu.Tokens(), gpu.Tokens())
	var a, b []int32
	for tok := range cpu.Tokens() {
		for l := range cpu.Model().Layers {
			a, b = cpu.AppendExperts(a[:0], tok, l), gpu.AppendExperts(b[:0], tok, l)
			require.Equal(t, a, b, "token %d layer %d", tok, l)
		}
	}
}
