package engine_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/sample"
)

// TestGenerateMatchesForward checks Generate against the greedy loop over
// the forward pass that the model tests check against llama.cpp.
func TestGenerateMatchesForward(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen3moe-tiny-f32")
	e, err := engine.New(ctx, m, engine.WithVRAM(halfBudget(m, 64)), engine.WithPositions(64))
	require.NoError(t, err)
	defer e.Close()

	const prompt = "<|im_start|>user\nHello"
	tokens := e.Tokenizer().Encode(prompt)
	_, want := run(t, e.Net(), tokens, 5)

	var streamed []byte
	g, err := e.Generate(ctx, prompt, 5, engine.WithStream(func(text []byte) error {
		streamed = append(streamed, text...)
		return nil
	}))
	require.NoError(t, err)
	assert.Equal(t, tokens, g.Prompt)
	assert.Equal(t, want[:5], g.Tokens)
	assert.Equal(t, "length", g.Stop)
	text, err := e.Tokenizer().Decode(g.Tokens)
	require.NoError(t, err)
	assert.Equal(t, string(text), g.Text)
	assert.Equal(t, g.Text, string(streamed), "the stream is the text")

	g, err = e.Generate(ctx, prompt, 0)
	require.NoError(t, err)
	assert.Empty(t, g.Tokens)
}

func TestGenerateStops(t *testing.T) {
	ctx := context.Background()
	e, err := engine.Open(ctx, filepath.Join(testdata, "qwen3moe-tiny-f32.gguf"), engine.WithPositions(12))
	require.NoError(t, err)
	defer e.Close()
	prompt := "<|im_start|>user\nHello" // 8 tokens of the 12 positions
	require.Len(t, e.Tokenizer().Encode(prompt), 8)

	g, err := e.Generate(ctx, prompt, 100)
	require.NoError(t, err)
	assert.Equal(t, "context", g.Stop)
	assert.Len(t, g.Tokens, 5, "the last position's logits give one more token")

	smp, err := sample.New(sample.Seed(3), sample.Temperature(1))
	require.NoError(t, err)
	_, err = e.Generate(ctx, prompt, 2, engine.WithSampler(smp))
	require.NoError(t, err)

	boom := errors.New("reader went away")
	_, err = e.Generate(ctx, prompt, 3, engine.WithStream(func([]byte) error { return boom }))
	assert.ErrorIs(t, err, boom)

	_, err = e.Generate(ctx, "", 3)
	assert.ErrorIs(t, err, engine.ErrEmptyPrompt)
	_, err = e.Generate(ctx, "a longer prompt than twelve positions can hold, by far, surely", 3)
	assert.ErrorIs(t, err, model.ErrContextFull)
	_, err = e.Generate(ctx, prompt, -1)
	assert.Error(t, err)
}

func TestOptionValues(t *testing.T) {
	m := openModel(t, "qwen3moe-tiny-f32")
	for _, o := range []engine.Option{engine.WithVRAM(0), engine.WithPositions(0), engine.WithThreads(-1), engine.WithHostBudget(-1),
		engine.WithHotProfile(nil, 0.5)} {
		_, err := engine.New(context.Background(), m, o)
		assert.ErrorContains(t, err, "engine: With")
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := engine.Open(context.Background(), filepath.Join(t.TempDir(), "missing.gguf"))
	assert.Error(t, err)
	_, err = engine.Open(context.Background(), filepath.Join(testdata, "qwen3moe-tiny-f32.gguf"), engine.WithVRAM(1))
	assert.Error(t, err, "the model is closed again (goleak and the mapping's finalizer would tell)")
}

// TestGenerateInterrupted cancels ctx in the stream, after the third token,
// and before the prompt: Generate returns what it has, Stop "interrupted",
// and the trace of WithRoutes holds the whole tokens that ran.
func TestGenerateInterrupted(t *testing.T) {
	m := openModel(t, "qwen35moe-tiny-f32")
	id := engine.ModelID(m)
	var buf bytes.Buffer
	tw, err := profile.NewTraceWriter(&buf, profile.JSONL, id)
	require.NoError(t, err)
	routes := engine.NewRoutes(id, nil, tw)
	e, err := engine.New(context.Background(), m, engine.WithVRAM(halfBudget(m, 64)), engine.WithPositions(64),
		engine.WithModelOptions(model.WithRoutingHook(routes.Hook)))
	require.NoError(t, err)
	defer e.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefilled, pieces := 0, 0
	g, err := e.Generate(ctx, "<|im_start|>user\nHello", 20, engine.WithRoutes(routes),
		engine.WithPrefilled(func() { prefilled++ }),
		engine.WithStream(func([]byte) error {
			if pieces++; pieces == 3 {
				cancel()
			}
			return nil
		}))
	require.NoError(t, err)
	assert.Equal(t, "interrupted", g.Stop)
	assert.Equal(t, 1, prefilled)
	require.Len(t, g.Tokens, 3, "stopped after the token in hand")
	assert.Equal(t, len(g.Prompt), g.Prefill.Tokens)
	assert.Equal(t, 2, g.Decode.Tokens, "the last token is sampled, not run")
	assert.Positive(t, g.Prefill.Stats.Acquires)
	assert.Equal(t, 2*len(m.MoELayers()), g.Decode.Stats.Acquires, "one acquire per MoE layer and step")
	tr, err := profile.ReadTrace(&buf)
	require.NoError(t, err)
	assert.Equal(t, len(g.Prompt)+2, tr.Tokens())
	require.Len(t, tr.Segments(), 2)
	assert.Equal(t, "prefill", tr.Segments()[0].Phase)
	assert.Equal(t, "decode", tr.Segments()[1].Phase)

	other := engine.NewRoutes(id, nil, nil) // not the model's hook
	_, err = e.Generate(context.Background(), "<|im_start|>user\nHello", 2, engine.WithRoutes(other))
	assert.ErrorIs(t, err, engine.ErrRoutesNotHooked)

	g, err = e.Generate(ctx, "<|im_start|>user\nHello", 20, engine.WithPrefilled(func() { prefilled++ }))
	require.NoError(t, err, "a prefill cut short is a stop, not a failure")
	assert.Equal(t, "interrupted", g.Stop)
	assert.Empty(t, g.Tokens)
	assert.Zero(t, g.Prefill.Tokens)
	assert.Equal(t, 2, prefilled)
}

// TestGenerateConcurrent runs two generations at once (under -race, the
// counters each reads between its steps while the other computes): each
// gets the tokens it gets alone.
func TestGenerateConcurrent(t *testing.T) {
	ctx := context.Background()
	e, err := engine.Open(ctx, filepath.Join(testdata, "qwen35moe-tiny-f32.gguf"), engine.WithPositions(64))
	require.NoError(t, err)
	defer e.Close()
	const prompt = "<|im_start|>user\nHello"
	alone, err := e.Generate(ctx, prompt, 6)
	require.NoError(t, err)

	var g errgroup.Group
	var got [2]*engine.Generation
	for i := range got {
		g.Go(func() (err error) {
			got[i], err = e.Generate(ctx, prompt, 6)
			return err
		})
	}
	require.NoError(t, g.Wait())
	for _, r := range got {
		assert.Equal(t, alone.Tokens, r.Tokens)
		assert.Positive(t, r.Decode.Stats.Acquires)
	}
}
