package synth

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// synthFullSize reports whether a preset is one of the multi-GB models that
// tests only plan, never write.
func synthFullSize(name string) bool { return strings.HasSuffix(name, "-a3b") }

func synthSmallPresets() []string {
	var names []string
	for _, name := range Presets() {
		if !synthFullSize(name) {
			names = append(names, name)
		}
	}
	return names
}

func writeSynthTest(t testing.TB, preset string, opts ...Option) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), preset+".gguf")
	require.NoError(t, Write(context.Background(), path, preset, opts...))
	return path
}

func synthOpenModel(t testing.TB, path string) *experts.Model {
	t.Helper()
	m, err := experts.OpenModel(path)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// TestSyntheticPresets writes every small preset once and checks the file
// (synthCheckModel, synthCheckOracle, synthCheckValues).
func TestSyntheticPresets(t *testing.T) {
	for _, name := range synthSmallPresets() {
		t.Run(name, func(t *testing.T) {
			p, err := synthLookup(name)
			require.NoError(t, err)
			w, err := NewWriter(name)
			require.NoError(t, err)
			path := writeSynthTest(t, name)
			st, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, w.Size(), st.Size())
			m := synthOpenModel(t, path)
			t.Run("model", func(t *testing.T) { synthCheckModel(t, p, m) })
			t.Run("values", func(t *testing.T) { synthCheckValues(t, p, m) })
			if oracle, ok := synthOracleTwins[name]; ok {
				t.Run("oracle", func(t *testing.T) { synthCheckOracle(t, m.File, oracle) })
			}
		})
	}
}

// synthCheckModel: the model view accepts the file, its hyper-parameters
// are the preset's, and its tensors are the planned ones.
func synthCheckModel(t *testing.T, p *synthPreset, m *experts.Model) {
	h := m.Params
	assert.Equal(t, p.arch, string(h.Arch))
	assert.Equal(t, p.layers, h.NumLayers)
	assert.Equal(t, p.embd, h.EmbeddingDim)
	assert.Equal(t, p.heads, h.NumHeads)
	assert.Equal(t, p.kvHeads, h.NumKVHeads)
	assert.Equal(t, p.headDim, h.KeyDim)
	assert.Equal(t, p.headDim, h.ValueDim)
	assert.Equal(t, p.experts, h.NumExperts)
	assert.Equal(t, p.expertsUsed, h.NumExpertsUsed)
	assert.Equal(t, p.expertFFN, h.ExpertFFNDim)
	assert.Equal(t, p.sharedFFN, h.SharedExpertFFNDim)
	assert.Equal(t, p.vocab, h.VocabSize)
	assert.Equal(t, p.ctxLen, h.ContextLength)
	assert.InDelta(t, p.ropeBase, h.RopeFreqBase, 1)
	if p.arch == "qwen35moe" {
		assert.Equal(t, p.ropeDims, h.RopeDims)
		assert.Equal(t, [4]int{int(p.ropeSections[0]), int(p.ropeSections[1]), int(p.ropeSections[2]), int(p.ropeSections[3])}, h.RopeSections)
		assert.Equal(t, p.fullAttnInterval, h.FullAttentionInterval)
		assert.Equal(t, p.ssmConv, h.SSMConvKernel)
		assert.Equal(t, p.ssmState, h.SSMStateSize)
		assert.Equal(t, p.ssmGroups, h.SSMGroupCount)
		assert.Equal(t, p.ssmTimeStepRank, h.SSMTimeStepRank)
		assert.Equal(t, p.ssmInner, h.SSMInnerSize)
	}
	assert.Len(t, m.MoELayers(), p.layers)

	plan := synthPlan(p)
	got := m.File.Tensors()
	require.Len(t, got, len(plan))
	for i, want := range plan {
		assert.Equal(t, want.name, got[i].Name)
		assert.Equal(t, want.typ, got[i].Type, want.name)
		assert.Equal(t, want.dims, got[i].Dims, want.name)
	}

	// The expert tensors are the stacked ones, in the file's order, and the
	// rest is what is not.
	var expertBytes, otherBytes int64
	var want []*experts.TensorInfo
	for _, ti := range got {
		if strings.HasSuffix(ti.Name, "_exps.weight") {
			want = append(want, ti)
			expertBytes += ti.Size
		} else {
			otherBytes += ti.Size
		}
	}
	assert.Equal(t, want, m.ExpertTensors())
	assert.Len(t, want, 3*p.layers)
	assert.Equal(t, m.TotalExpertBytes(), expertBytes)
	assert.Equal(t, m.NonExpertBytes(), otherBytes)
}

// synthOracleTwins maps presets to the llama.cpp oracle files whose shapes
// they copy.
var synthOracleTwins = map[string]string{
	"qwen35moe-small":    "qwen35moe-small-q4_k_m",
	"qwen3moe-small":     "qwen3moe-small-q4_k_m",
	"qwen35moe-tiny-f32": "qwen35moe-tiny-f32",
	"qwen3moe-tiny-f32":  "qwen3moe-tiny-f32",
}

// synthCheckOracle compares a preset with the file that llama.cpp's own
// tools wrote for the same shapes (gguf-py for F32, llama-quantize for
// Q4_K_M): the same metadata keys in the same order with the same types and
// values (the name and the tokenizer's strings aside), and the same tensors
// in the same order with the same types, shapes, sizes and data offsets.
func synthCheckOracle(t *testing.T, f *experts.File, oracle string) {
	want, err := experts.Open(filepath.Join("..", "testdata", oracle+".gguf"))
	require.NoError(t, err)
	t.Cleanup(func() { want.Close() })
	gotKVs, wantKVs := f.KVs(), want.KVs()
	keys := func(kvs []experts.KV) (ks []string) {
		for _, kv := range kvs {
			ks = append(ks, kv.Key)
		}
		return ks
	}
	require.Equal(t, keys(wantKVs), keys(gotKVs))
	for i, w := range wantKVs {
		g := gotKVs[i]
		assert.Equal(t, w.Value.Type(), g.Value.Type(), w.Key)
		assert.Equal(t, w.Value.ElemType(), g.Value.ElemType(), w.Key)
		assert.Equal(t, w.Value.Len(), g.Value.Len(), w.Key)
		switch w.Key {
		case "general.name", "tokenizer.ggml.tokens", "tokenizer.ggml.merges":
		default:
			assert.Equal(t, w.Value.String(), g.Value.String(), w.Key)
			assert.Equal(t, w.Value, g.Value, w.Key) // type and value, exactly
		}
	}

	gotTs, wantTs := f.Tensors(), want.Tensors()
	require.Len(t, gotTs, len(wantTs))
	for i, w := range wantTs {
		g := gotTs[i]
		assert.Equal(t, w.Name, g.Name)
		assert.Equal(t, w.Type, g.Type, w.Name)
		assert.Equal(t, w.Dims, g.Dims, w.Name)
		assert.Equal(t, w.Size, g.Size, w.Name)
		assert.Equal(t, w.Offset-want.DataOffset(), g.Offset-f.DataOffset(), w.Name)
	}
	assert.Equal(t, want.Size()-want.DataOffset(), f.Size()-f.DataOffset(), "data section size")
}

// synthCheckValues dequantizes every tensor and checks the values are
// finite and of the planned scale: weights with mean about 0 and the planned
// standard deviation, norms about 1, A negative, dt bias a softplus-inverted
// step in [1e-3, 1e-1].
func synthCheckValues(t *testing.T, p *synthPreset, m *experts.Model) {
	for _, want := range synthPlan(p) {
		ti, ok := m.File.Tensor(want.name)
		require.True(t, ok, want.name)
		data, err := m.File.TensorData(ti)
		require.NoError(t, err)
		values := make([]float32, ti.Elements())
		require.NoError(t, quant.Dequantize(ti.Type, data, values), want.name)
		var sum, sumSq float64
		nonFinite := 0
		for _, v := range values {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				nonFinite++
			}
			sum += float64(v)
			sumSq += float64(v) * float64(v)
		}
		require.Zero(t, nonFinite, "%s has values that are not finite", want.name)
		n := float64(len(values))
		mean := sum / n
		std := math.Sqrt(max(sumSq/n-mean*mean, 0))
		switch want.kind {
		case synthWeights:
			if n < 256 {
				continue // too few values for statistics (e.g. a 64-element gate)
			}
			assert.InDelta(t, 0, mean, 0.1*want.sigma, "%s mean", want.name)
			assert.InEpsilon(t, want.sigma, std, 0.15, "%s standard deviation", want.name)
		case synthNorm:
			assert.InDelta(t, 1, mean, 0.5/math.Sqrt(n), "%s mean", want.name)
			assert.Less(t, std, 0.2, "%s standard deviation", want.name)
		case synthSSMA:
			assert.True(t, slices.Max(values) <= -1 && slices.Min(values) >= -16, "%s: %v", want.name, values)
		case synthSSMDtBias:
			softplus := func(x float32) float64 { return math.Log1p(math.Exp(float64(x))) }
			assert.True(t, softplus(slices.Min(values)) >= 0.999e-3 && softplus(slices.Max(values)) <= 1.001e-1, "%s: %v", want.name, values)
		}
	}
}

// TestSyntheticRouting checks that the routers pick different experts for
// different inputs and that routing is peaked.
func TestSyntheticRouting(t *testing.T) {
	m := synthOpenModel(t, writeSynthTest(t, "qwen35moe-tiny"))
	h := m.Params
	r := synthRand{s: 42}
	for _, layer := range m.MoELayers() {
		ti, ok := m.File.Tensor(fmt.Sprintf("blk.%d.ffn_gate_inp.weight", layer))
		require.True(t, ok)
		data, err := m.File.TensorData(ti)
		require.NoError(t, err)
		router := make([]float32, ti.Elements())
		require.NoError(t, quant.Dequantize(ti.Type, data, router))
		topSets := map[string]bool{}
		var topProb float64
		const inputs = 64
		for range inputs {
			x := make([]float64, h.EmbeddingDim) // an RMS-normed hidden state
			for i := range x {
				x[i] = r.normal()
			}
			logits := make([]float64, h.NumExperts)
			for e := range logits {
				for i, xi := range x {
					logits[e] += float64(router[e*h.EmbeddingDim+i]) * xi
				}
			}
			maxLogit := slices.Max(logits)
			var z float64
			for _, l := range logits {
				z += math.Exp(l - maxLogit)
			}
			topProb += 1 / z
			order := make([]int, h.NumExperts)
			for i := range order {
				order[i] = i
			}
			slices.SortFunc(order, func(a, b int) int { return -cmpFloat(logits[a], logits[b]) })
			top := order[:h.NumExpertsUsed]
			slices.Sort(top)
			topSets[fmt.Sprint(top)] = true
		}
		assert.Greater(t, len(topSets), inputs/2, "layer %d: routing hardly depends on the input", layer)
		assert.Greater(t, topProb/inputs, 3.0/float64(h.NumExperts), "layer %d: routing is flat", layer)
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func synthHash(t testing.TB, preset string, opts ...Option) [32]byte {
	t.Helper()
	w, err := NewWriter(preset, opts...)
	require.NoError(t, err)
	h := sha256.New()
	n, err := w.WriteTo(context.Background(), h)
	require.NoError(t, err)
	require.Equal(t, w.Size(), n)
	return [32]byte(h.Sum(nil))
}

// TestSyntheticDeterministic: the bytes depend on the preset and the seed,
// not on the number of workers.
func TestSyntheticDeterministic(t *testing.T) {
	base := synthHash(t, "qwen35moe-tiny", WithWorkers(1))
	assert.Equal(t, base, synthHash(t, "qwen35moe-tiny", WithWorkers(3)))
	assert.Equal(t, base, synthHash(t, "qwen35moe-tiny", WithSeed(defaultSeed), WithWorkers(8)))
	assert.NotEqual(t, base, synthHash(t, "qwen35moe-tiny", WithSeed(2)))
	_, err := NewWriter("qwen35moe-tiny", WithWorkers(-1))
	assert.ErrorContains(t, err, "synth: WithWorkers(-1)")
}

func TestSyntheticCancelLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen int64
	err := Write(ctx, filepath.Join(dir, "m.gguf"), "qwen3moe-tiny", WithWriteOptions(experts.WithProgress(func(written, total int64) {
		seen = written
		if written > total/3 {
			cancel()
		}
	})))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Positive(t, seen)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestSyntheticUnknownPreset(t *testing.T) {
	err := Write(context.Background(), filepath.Join(t.TempDir(), "m.gguf"), "qwen9-huge")
	assert.ErrorIs(t, err, ErrUnknownPreset)
	assert.Contains(t, err.Error(), "qwen35moe-tiny")
}

// synthEncode is a plain BPE encoder (lowest merge rank first) over the
// pre-tokenized words, enough to see how well the vocabulary compresses text.
func synthEncode(v *synthVocab, text string) []string {
	enc, _ := synthByteTokens()
	rank := map[string]int{}
	for i, m := range v.merges {
		rank[m] = i
	}
	var out []string
	for _, word := range synthPreTokenize(text) {
		var syms []string
		for i := range len(word) {
			syms = append(syms, enc[word[i]])
		}
		for {
			best, at := math.MaxInt, -1
			for i := 0; i+1 < len(syms); i++ {
				if r, ok := rank[syms[i]+" "+syms[i+1]]; ok && r < best {
					best, at = r, i
				}
			}
			if at < 0 {
				break
			}
			syms = slices.Replace(syms, at, at+2, syms[at]+syms[at+1])
		}
		out = append(out, syms...)
	}
	return out
}

// TestSyntheticTokenizer checks the tokenizer arrays are consistent for
// every preset (the full-size vocabularies included): one token per
// embedding row, unique strings, merges of existing tokens into existing
// tokens, the special tokens where the metadata points, and English text
// tokenized into multi-byte tokens.
func TestSyntheticTokenizer(t *testing.T) {
	for _, name := range Presets() {
		if testing.Short() && synthFullSize(name) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			p, err := synthLookup(name)
			require.NoError(t, err)
			v := synthBuildVocab(p, defaultSeed)
			require.Len(t, v.tokens, p.vocab)
			require.Len(t, v.types, p.vocab)
			ids := make(map[string]int, len(v.tokens))
			for id, s := range v.tokens {
				_, dup := ids[s]
				require.False(t, dup, "token %q appears twice", s)
				ids[s] = id
			}
			enc, order := synthByteTokens()
			for id, b := range order {
				assert.Equal(t, enc[b], v.tokens[id])
			}
			for i, m := range v.merges {
				a, b, ok := strings.Cut(m, " ")
				_, okA := ids[a]
				_, okB := ids[b]
				_, okAB := ids[a+b]
				if !ok || strings.Contains(b, " ") || !okA || !okB || !okAB {
					t.Fatalf("merge %d %q does not join two tokens into a token", i, m)
				}
			}
			assert.Equal(t, p.regularTokens, v.endOfText)
			for id, s := range map[int]string{v.endOfText: "<|endoftext|>", v.imStart: "<|im_start|>", v.imEnd: "<|im_end|>"} {
				assert.Equal(t, s, v.tokens[id])
				assert.Equal(t, synthTokenControl, v.types[id])
			}
			for id, typ := range v.types {
				want := synthTokenControl
				switch {
				case id < p.regularTokens:
					want = synthTokenNormal
				case id >= p.regularTokens+3:
					want = synthTokenUnused
				}
				if typ != want {
					t.Fatalf("token %d %q has type %d, want %d", id, v.tokens[id], typ, want)
				}
			}
			text := "The library by the river is open in the morning, and people come to read."
			tokens := synthEncode(v, text)
			assert.Equal(t, text, synthDecode(tokens))
			assert.Greater(t, float64(len(text))/float64(len(tokens)), 2.5, "%q", tokens)
		})
	}
}

func synthDecode(tokens []string) string {
	enc, _ := synthByteTokens()
	dec := map[rune]byte{}
	for b, s := range enc {
		dec[[]rune(s)[0]] = byte(b)
	}
	var out []byte
	for _, tok := range tokens {
		for _, r := range tok {
			out = append(out, dec[r])
		}
	}
	return string(out)
}

// TestSyntheticFullSizePlans checks the full-size presets without writing
// them: the tensor count, llama-quantize's Q4_K_M choices layer by layer,
// and the file sizes of the published Q4_K_M conversions.
func TestSyntheticFullSizePlans(t *testing.T) {
	cases := []struct {
		preset             string
		tensors            int
		typeCounts         map[experts.Type]int
		minBytes, maxBytes int64
	}{
		// 3 global tensors; 30 Gated DeltaNet layers of 19 tensors, 10
		// attention layers of 16.
		{"qwen35moe-35b-a3b", 733, map[experts.Type]int{experts.TypeF32: 301, experts.TypeQ4_K: 371, experts.TypeQ6_K: 61}, 20e9, 22e9},
		// 3 global tensors; 48 layers of 12.
		{"qwen3moe-30b-a3b", 579, map[experts.Type]int{experts.TypeF32: 241, experts.TypeQ4_K: 289, experts.TypeQ6_K: 49}, 18e9, 19e9},
	}
	for _, c := range cases {
		t.Run(c.preset, func(t *testing.T) {
			p, err := synthLookup(c.preset)
			require.NoError(t, err)
			plan := synthPlan(p)
			assert.Len(t, plan, c.tensors)
			counts := map[experts.Type]int{}
			var size int64
			for _, ts := range plan {
				counts[ts.typ]++
				size += tensorBytes(ts)
				layer := synthLayerOf(ts.name)
				wantMore := layer >= 0 && synthUseMoreBits(layer, p.layers)
				switch {
				case ts.name == "output.weight":
					assert.Equal(t, experts.TypeQ6_K, ts.typ)
				case ts.name == "token_embd.weight":
					assert.Equal(t, experts.TypeQ4_K, ts.typ)
				case strings.Contains(ts.name, "ffn_down"), strings.Contains(ts.name, "attn_v."), strings.Contains(ts.name, "attn_qkv"):
					// One attn_v-like tensor per layer, so llama.cpp's running
					// count equals the layer number.
					assert.Equal(t, map[bool]experts.Type{true: experts.TypeQ6_K, false: experts.TypeQ4_K}[wantMore], ts.typ, ts.name)
				case len(ts.dims) == 1 || strings.HasSuffix(ts.name, "ffn_gate_inp.weight") || strings.Contains(ts.name, "ssm_conv1d"):
					assert.Equal(t, experts.TypeF32, ts.typ, ts.name)
				default:
					assert.Equal(t, experts.TypeQ4_K, ts.typ, ts.name)
				}
			}
			assert.Equal(t, c.typeCounts, counts)
			assert.True(t, size > c.minBytes && size < c.maxBytes, "data size %d", size)
		})
	}
}

var (
	synthBenchDir  = flag.String("synth.dir", "", "folder for BenchmarkSyntheticFullSize to write the full-size presets to (deleted afterwards)")
	synthBenchOpen = flag.String("synth.open", "", "GGUF file for BenchmarkOpenModel to open, e.g. a full-size synthetic model")
)

// BenchmarkSyntheticGenerate measures generation alone (to io.Discard).
func BenchmarkSyntheticGenerate(b *testing.B) {
	w, err := NewWriter("qwen35moe-tiny")
	require.NoError(b, err)
	b.SetBytes(w.Size())
	for b.Loop() {
		_, err := w.WriteTo(context.Background(), io.Discard)
		require.NoError(b, err)
	}
}

// BenchmarkSyntheticFullSize writes the full-size presets to -synth.dir
// and reports the write speed:
//
//	go test ./experts -run '^$' -bench SyntheticFullSize -benchtime 1x -synth.dir /some/folder
//
// Compare with dd if=/dev/zero of=/some/folder/x bs=1M count=20000 conv=fdatasync.
func BenchmarkSyntheticFullSize(b *testing.B) {
	if *synthBenchDir == "" {
		b.Skip("needs -synth.dir")
	}
	for _, preset := range Presets() {
		if !synthFullSize(preset) {
			continue
		}
		b.Run(preset, func(b *testing.B) {
			path := filepath.Join(*synthBenchDir, preset+".gguf")
			defer os.Remove(path)
			var size int64
			for b.Loop() {
				start := time.Now()
				require.NoError(b, Write(context.Background(), path, preset, WithWriteOptions(experts.WithProgress(func(_, total int64) { size = total }))))
				b.ReportMetric(float64(size)/1e6/time.Since(start).Seconds(), "MB/s")
			}
			b.SetBytes(size)
		})
	}
}

// BenchmarkOpenModel measures opening a model (header parse, mapping,
// hyper-parameters and expert index) and closing it again:
//
//	go test ./experts/synth -run '^$' -bench OpenModel -synth.open /some/folder/qwen35moe-35b-a3b.gguf
func BenchmarkOpenModel(b *testing.B) {
	if *synthBenchOpen == "" {
		b.Skip("needs -synth.open")
	}
	for b.Loop() {
		m, err := experts.OpenModel(*synthBenchOpen)
		require.NoError(b, err)
		require.NoError(b, m.Close())
	}
}
