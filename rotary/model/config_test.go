package model

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/experts"
)

func TestConfigRejectsWhatItCannotRun(t *testing.T) {
	em, err := experts.OpenModel(filepath.Join("../../experts/testdata", "qwen35moe-tiny-f32.gguf"))
	require.NoError(t, err)
	defer em.Close()
	c, err := newConfig(em)
	require.NoError(t, err)
	assert.Equal(t, 4, c.layers)
	assert.Equal(t, Rope{Dims: 16, Base: 1e7}, c.rope)
	for il, attn := range []bool{false, true, false, true} {
		assert.Equal(t, attn, c.isAttention(il), "layer %d", il)
	}

	for name, edit := range map[string]func(*experts.HParams){
		"arch":             func(h *experts.HParams) { h.Arch = "llama" },
		"gating":           func(h *experts.HParams) { h.ExpertGatingFunc = experts.GatingSigmoid },
		"heads":            func(h *experts.HParams) { h.NumKVHeads = 3 },
		"value length":     func(h *experts.HParams) { h.ValueDim = 32 },
		"rope dims":        func(h *experts.HParams) { h.RopeDims = 65 },
		"ssm heads":        func(h *experts.HParams) { h.SSMTimeStepRank = 3 },
		"ssm inner":        func(h *experts.HParams) { h.SSMInnerSize = 100 },
		"no conv":          func(h *experts.HParams) { h.SSMConvKernel = 0 },
		"interval":         func(h *experts.HParams) { h.FullAttentionInterval = 0 },
		"context":          func(h *experts.HParams) { h.ContextLength = 0 },
		"nextn all layers": func(h *experts.HParams) { h.NumNextNLayers = h.NumLayers },
		"rope sections":    func(h *experts.HParams) { h.RopeSections = [4]int{2, 2, 2, 2} },
		"no rope sections": func(h *experts.HParams) { h.RopeSections = [4]int{} },
	} {
		bad := *em
		edit(&bad.Params)
		_, err := newConfig(&bad)
		assert.ErrorIs(t, err, ErrUnsupportedArch, name)
	}
}

func TestNewRejectsBadWeights(t *testing.T) {
	em, err := experts.OpenModel(filepath.Join("../../experts/testdata", "qwen3moe-tiny-f32.gguf"))
	require.NoError(t, err)
	defer em.Close()
	// A model whose hyper-parameters disagree with its tensors.
	_, err = New(em, nil)
	require.Error(t, err, "no backend")
	bad := *em
	bad.Params.EmbeddingDim = 32
	_, err = New(&bad, noBackend{})
	require.ErrorIs(t, err, ErrBadWeights)
	assert.Contains(t, err.Error(), "token_embd.weight")

	bad = *em
	bad.Params.KeyDim, bad.Params.ValueDim, bad.Params.RopeDims = 16, 16, 16
	_, err = New(&bad, noBackend{})
	require.ErrorIs(t, err, ErrBadWeights)
	assert.Contains(t, err.Error(), "blk.0.attn_q.weight")
}

// noBackend stands in where New must fail before computing.
type noBackend struct{ Backend }

func TestTextRopeIsNeox(t *testing.T) {
	assert.True(t, textRopeIsNeox([4]int{11, 11, 10, 0}, 64), "Qwen3.5")
	assert.True(t, textRopeIsNeox([4]int{3, 3, 2, 0}, 16), "oracle tiny")
	assert.True(t, textRopeIsNeox([4]int{11, 11, 10, 0}, 128), "sectors wrap around")
	assert.False(t, textRopeIsNeox([4]int{3, 3, 1, 0}, 16), "a short width section")
	assert.False(t, textRopeIsNeox([4]int{8, 8, 8, 8}, 64), "a fourth section")
}
