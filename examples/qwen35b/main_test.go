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
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

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

// runCLI runs the program as main does and returns its exit status and
// output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli(context.Background(), args, &out, &errOut)
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
		{"cuda backend", []string{"-backend", "cuda"}, 1, "CUDA forward pass is not implemented yet"},
		{"unknown backend", []string{"-backend", "tpu"}, 2, "-backend"},
		{"bad flag", []string{"-nope"}, 2, "flag provided but not defined: -nope"},
		{"bad size", []string{"-vram", "lots"}, 2, "-vram"},
		{"bad sampler", []string{"-top-p", "2"}, 2, "top-p"},
		{"argument", []string{"model.gguf"}, 2, "unexpected argument"},
		{"both prompts", []string{"-prompt", "a", "-prompt-file", "b"}, 2, "exclusive"},
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
