package engine_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The oracle models of experts/testdata (llama.cpp checked the forward pass
// on them) and a synthetic Q4_K_M model with the full-size type mix.
const testdata = "../../experts/testdata"

func openModel(t testing.TB, name string) *experts.Model {
	t.Helper()
	m, err := experts.OpenModel(filepath.Join(testdata, name+".gguf"))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func syntheticModel(t testing.TB, preset string) *experts.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), preset+".gguf")
	require.NoError(t, synth.Write(context.Background(), path, preset))
	m, err := experts.OpenModel(path)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// halfBudget is a VRAM budget that holds half of m's experts beside the
// non-expert weights and the state of positions tokens.
func halfBudget(m *experts.Model, positions int) int64 {
	return m.NonExpertBytes() + engine.StateBytes(m.Params, positions) + m.TotalExpertBytes()/2
}

// run feeds prompt to md, then greedily decodes steps tokens, and returns
// every logit it computed and the tokens it chose.
func run(t *testing.T, md *model.Net, prompt []int32, steps int) (logits []float32, tokens []int32) {
	t.Helper()
	ctx := context.Background()
	s := md.NewState(64)
	l, err := md.Forward(ctx, s, prompt, model.AllLogits)
	require.NoError(t, err)
	logits = append(logits, l...)
	last := l[len(l)-md.VocabSize():]
	for range steps {
		next := int32(slices.Index(last, slices.Max(last)))
		tokens = append(tokens, next)
		last, err = md.Forward(ctx, s, []int32{next}, model.LastLogits)
		require.NoError(t, err)
		logits = append(logits, last...)
	}
	return logits, tokens
}

// TestRotationKeepsLogits runs models three ways — experts read straight
// from the mapped file; through rotary with VRAM for all experts; through
// rotary with VRAM for half of them and a host LRU for three quarters — and
// requires bit-identical logits: rotation moves bytes, never changes them.
func TestRotationKeepsLogits(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) *experts.Model
	}{
		{"qwen35moe-tiny-f32", func(t testing.TB) *experts.Model { return openModel(t, "qwen35moe-tiny-f32") }},
		{"qwen3moe-tiny-q8_0", func(t testing.TB) *experts.Model { return openModel(t, "qwen3moe-tiny-q8_0") }},
		{"synthetic qwen35moe-tiny", func(t testing.TB) *experts.Model { return syntheticModel(t, "qwen35moe-tiny") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.open(t)
			prompt := []int32{1, 2, 3, 40, 41, 42, 100, 7, 9, 11, 250, 300}

			backend := cpu.New(0, cpu.WithExperts(model.NewFileSource(m)))
			defer backend.Close()
			direct, err := model.New(m, backend)
			require.NoError(t, err)
			want, wantTokens := run(t, direct, prompt, 12)

			// used counts the distinct experts the run routes to.
			used := map[[2]int]bool{}
			hook := model.WithRoutingHook(func(layer, _ int, r model.Routing) {
				for _, id := range r.IDs {
					used[[2]int{layer, int(id)}] = true
				}
			})
			all, err := engine.New(context.Background(), m, engine.WithVRAM(1<<30), engine.WithPositions(64), engine.WithModelOptions(hook))
			require.NoError(t, err)
			defer all.Close()
			got, tokens := run(t, all.Net(), prompt, 12)
			require.Equal(t, want, got, "all experts resident")
			require.Equal(t, wantTokens, tokens)
			s := all.Stats()
			assert.Equal(t, uint64(len(used)), s.VRAM.Misses, "every expert used is copied in once and stays")
			assert.Zero(t, all.MaxBatch())

			half, err := engine.New(context.Background(), m, engine.WithVRAM(halfBudget(m, 64)), engine.WithHostBudget(m.TotalExpertBytes()*3/4),
				engine.WithPositions(64))
			require.NoError(t, err)
			defer half.Close()
			require.Less(t, half.Runtime().Plan().Slots, m.TotalExpertBytes(), "the slots do not hold every expert")
			got, tokens = run(t, half.Net(), prompt, 12)
			require.Equal(t, want, got, "half the experts in VRAM")
			require.Equal(t, wantTokens, tokens)
			s = half.Stats()
			assert.Greater(t, s.VRAM.Misses, uint64(len(used)), "experts were evicted and copied in again")
			assert.NotZero(t, s.VRAM.Hits)
			assert.NotZero(t, s.Host.Misses, "the host LRU read experts from the file")
			b := half.MaxBatch()
			require.NotZero(t, b)
			assert.Equal(t, m.Params.NumLayers*((len(prompt)+b-1)/b+12), s.Acquires, "one Acquire per layer and micro-batch")

			// Prefetching moves bytes ahead of time and never changes them.
			var prefetcher *nextLayer
			ahead, err := engine.New(context.Background(), m, engine.WithVRAM(halfBudget(m, 64)), engine.WithHostBudget(m.TotalExpertBytes()*3/4),
				engine.WithPositions(64), engine.WithPrefetch(func(rt *rotary.Runtime) (engine.Prefetcher, error) {
					prefetcher = &nextLayer{rt: rt, layers: m.Params.NumLayers}
					return prefetcher, nil
				}))
			require.NoError(t, err)
			defer ahead.Close()
			got, tokens = run(t, ahead.Net(), prompt, 12)
			require.Equal(t, want, got, "half the experts in VRAM, with prefetch")
			require.Equal(t, wantTokens, tokens)
			require.NoError(t, prefetcher.err)
			assert.Equal(t, s.Acquires, prefetcher.calls, "told of every layer's experts")
			assert.NotZero(t, ahead.Stats().Prefetched)
		})
	}
}

// nextLayer is a Prefetcher that guesses a layer uses its predecessor's
// experts.
type nextLayer struct {
	rt     *rotary.Runtime
	layers int
	calls  int
	err    error
}

func (p *nextLayer) Routed(layer int, ids []int, _ []float32) {
	p.calls++
	if layer+1 < p.layers && p.err == nil {
		p.err = p.rt.Prefetch(layer+1, ids)
	}
}

func TestMaxBatch(t *testing.T) {
	m := openModel(t, "qwen35moe-tiny-f32") // 16 experts, top-4
	for _, tc := range []struct {
		slots int
		hot   int // experts pinned per layer
		host  int // host LRU entries (0: the mapping)
		want  int
	}{
		{slots: 4, want: 1},
		{slots: 16, host: 4, want: 1}, // the host LRU takes one token's misses at once
		{slots: 15, host: 8, want: 2},
		{slots: 8, want: 2},
		{slots: 15, want: 3},
		{slots: 16, want: 0}, // every expert has a slot
		{slots: 12, hot: 4, want: 0},
		{slots: 8, hot: 4, want: 2},
	} {
		opts := []rotary.Option{rotary.WithSlots(tc.slots)}
		if tc.hot > 0 {
			h := &profile.HotSet{Layers: make([]profile.LayerHotSet, m.Params.NumLayers)}
			for l := range h.Layers {
				for e := range tc.hot {
					h.Layers[l].Experts = append(h.Layers[l].Experts, e)
				}
			}
			opts = append(opts, rotary.WithHotSet(h))
		}
		if tc.host > 0 {
			opts = append(opts, rotary.WithHostBudget(int64(tc.host)*m.ExpertBytes(0)))
		}
		p, err := rotary.NewPlan(m, opts...)
		require.NoError(t, err)
		assert.Equal(t, tc.want, engine.MaxBatch(p), "%d slots, %d pinned, %d host", tc.slots, tc.hot, tc.host)
	}
}

func TestModelID(t *testing.T) {
	f32, q8 := openModel(t, "qwen3moe-tiny-f32"), openModel(t, "qwen3moe-tiny-q8_0")
	id := engine.ModelID(f32)
	assert.Equal(t, "qwen3moe", id.Arch)
	assert.Equal(t, f32.Params.NumLayers, id.Layers)
	assert.Equal(t, 16, id.Experts)
	assert.Equal(t, f32.Params.NumExpertsUsed, id.ExpertsUsed)
	assert.NoError(t, id.Validate())
	assert.Equal(t, id, engine.ModelID(openModel(t, "qwen3moe-tiny-f32")), "the same file, opened again")
	assert.NoError(t, id.Check(id))

	other := engine.ModelID(q8)
	assert.Equal(t, id.Layers, other.Layers, "same shape")
	assert.NotEqual(t, id.TensorHash, other.TensorHash, "other tensor types")
	var mismatch *profile.MismatchError
	require.ErrorAs(t, id.Check(other), &mismatch)
	assert.Equal(t, "tensor_hash", mismatch.Field)
}

func TestBudgetTooSmall(t *testing.T) {
	m := openModel(t, "qwen35moe-tiny-f32")
	_, err := engine.New(context.Background(), m, engine.WithVRAM(m.NonExpertBytes()), engine.WithPositions(64))
	assert.ErrorIs(t, err, rotary.ErrBudget)
	_, err = engine.New(context.Background(), m, engine.WithVRAM(1<<30), engine.WithHostBudget(1), engine.WithPositions(64))
	assert.ErrorIs(t, err, rotary.ErrBudget)
}

// TestRoutes records a generation's routing into a trace and a profile and
// checks both against the routing the model reported.
func TestRoutes(t *testing.T) {
	for _, enc := range []profile.Encoding{profile.JSONL, profile.Binary} {
		t.Run(enc.String(), func(t *testing.T) {
			m := openModel(t, "qwen35moe-tiny-f32")
			id := engine.ModelID(m)
			var buf bytes.Buffer
			tw, err := profile.NewTraceWriter(&buf, enc, id, profile.WithWeights())
			require.NoError(t, err)
			rec, err := profile.NewRecorder(id)
			require.NoError(t, err)
			routes := engine.NewRoutes(id, rec, tw)

			type route struct {
				ids     []int32
				weights []float32
			}
			seen := map[[2]int]route{} // [position, layer]
			hook := func(layer, pos int, r model.Routing) {
				routes.Hook(layer, pos, r)
				for tok := range len(r.IDs) / r.K {
					seen[[2]int{pos + tok, layer}] = route{slices.Clone(r.IDs[tok*r.K : (tok+1)*r.K]), slices.Clone(r.Weights[tok*r.K : (tok+1)*r.K])}
				}
			}
			e, err := engine.New(context.Background(), m, engine.WithVRAM(halfBudget(m, 64)), engine.WithPositions(64),
				engine.WithModelOptions(model.WithRoutingHook(hook)))
			require.NoError(t, err)
			defer e.Close()

			ctx := context.Background()
			s := e.Net().NewState(64)
			prompt := []int32{5, 6, 7, 8, 9}
			require.NoError(t, routes.StartSegment("prompt", "prefill"))
			_, err = e.Net().Forward(ctx, s, prompt, model.LastLogits)
			require.NoError(t, err)
			require.NoError(t, routes.StartSegment("generation", "decode"))
			for _, tok := range []int32{10, 11, 12} {
				_, err = e.Net().Forward(ctx, s, []int32{tok}, model.LastLogits)
				require.NoError(t, err)
				require.NoError(t, routes.Flush())
			}

			tr, err := profile.ReadTrace(&buf)
			require.NoError(t, err)
			assert.Equal(t, id, tr.Model())
			require.Equal(t, 8, tr.Tokens())
			segs := tr.Segments()
			require.Len(t, segs, 2)
			assert.Equal(t, "prefill", segs[0].Phase)
			assert.Equal(t, 5, tr.SegmentEnd(0))
			assert.Equal(t, "decode", segs[1].Phase)
			for tok := range tr.Tokens() {
				for l := range id.Layers {
					want := seen[[2]int{tok, l}]
					assert.Equal(t, want.ids, tr.AppendExperts(nil, tok, l), "token %d layer %d", tok, l)
					assert.Equal(t, want.weights, tr.AppendWeights(nil, tok, l), "token %d layer %d", tok, l)
				}
			}
			p := rec.Profile()
			for l := range id.Layers {
				assert.Equal(t, uint64(8*id.ExpertsUsed), p.Layers[l].Selections(), "layer %d", l)
			}
		})
	}
}

// TestRoutesDiscard drops a token that only some layers routed (its
// forward step was cancelled): the trace keeps whole tokens only.
func TestRoutesDiscard(t *testing.T) {
	id := profile.ModelID{Arch: "test", Layers: 3, Experts: 4, ExpertsUsed: 2}
	var buf bytes.Buffer
	tw, err := profile.NewTraceWriter(&buf, profile.JSONL, id)
	require.NoError(t, err)
	routes := engine.NewRoutes(id, nil, tw)
	one := model.Routing{IDs: []int32{0, 1}, Weights: []float32{0.5, 0.5}, K: 2}
	for l := range 3 {
		routes.Hook(l, 0, one)
	}
	require.NoError(t, routes.Flush())
	routes.Hook(0, 1, one) // the cancelled step's first layer
	routes.Discard()
	require.NoError(t, routes.Flush())
	tr, err := profile.ReadTrace(&buf)
	require.NoError(t, err)
	assert.Equal(t, 1, tr.Tokens())
}
