package model

import (
	"fmt"

	"github.com/rotary-moe/rotary/experts"
)

// config is what the forward pass needs of the hyper-parameters, checked
// for consistency once.
type config struct {
	arch                    string
	layers                  int // decoder layers run by the main pass
	embed, vocab            int
	heads, kvHeads, headDim int
	rope                    Rope
	eps                     float32
	experts, expertsUsed    int
	normalizeWeights        bool
	sharedFFN               int
	contextLength           int

	// qwen35moe: attention every fullAttentionInterval-th layer, with the
	// query projection carrying an output gate per head.
	hybrid                bool
	gatedAttention        bool
	fullAttentionInterval int
	convKernel            int
	ssmHeadDim            int
	ssmKHeads, ssmVHeads  int
}

func (c *config) isAttention(layer int) bool {
	return !c.hybrid || (layer+1)%c.fullAttentionInterval == 0
}

func newConfig(m *experts.Model) (config, error) {
	h := m.Params
	bad := func(format string, args ...any) (config, error) {
		return config{}, fmt.Errorf("%w: %s: "+format, append([]any{ErrUnsupportedArch, h.Arch}, args...)...)
	}
	c := config{
		arch:             h.Arch,
		layers:           h.NumLayers - h.NumNextNLayers,
		embed:            h.EmbeddingDim,
		heads:            h.NumHeads,
		kvHeads:          h.NumKVHeads,
		headDim:          h.KeyDim,
		rope:             Rope{Dims: h.RopeDims, Base: h.RopeFreqBase},
		eps:              h.RMSEps,
		experts:          h.NumExperts,
		expertsUsed:      h.NumExpertsUsed,
		normalizeWeights: h.ExpertWeightsNorm,
		sharedFFN:        h.SharedExpertFFNDim,
		contextLength:    h.ContextLength,
	}
	switch h.Arch {
	case experts.ArchQwen3MoE:
		// llama.cpp rotates the whole head for qwen3moe.
		c.rope.Dims = h.KeyDim
	case experts.ArchQwen35MoE:
		// Interleaved M-RoPE: with all position components equal, as for
		// text, it is NEOX rotation of the first RopeDims values, provided
		// every rotated pair falls in a time, height or width section (a
		// pair of the fourth section would not rotate for text).
		if !textRopeIsNeox(h.RopeSections, h.RopeDims) {
			return bad("rope sections %v leave pairs of the %d rotated values unrotated for text", h.RopeSections, h.RopeDims)
		}
		c.hybrid, c.gatedAttention = true, true
		c.fullAttentionInterval = h.FullAttentionInterval
		c.convKernel = h.SSMConvKernel
		c.ssmHeadDim = h.SSMStateSize
		c.ssmKHeads, c.ssmVHeads = h.SSMGroupCount, h.SSMTimeStepRank
		switch {
		case c.fullAttentionInterval < 1:
			return bad("full_attention_interval %d", c.fullAttentionInterval)
		case c.convKernel < 1 || c.ssmHeadDim < 1 || c.ssmKHeads < 1 || c.ssmVHeads < 1:
			return bad("ssm sizes conv %d, state %d, groups %d, v heads %d", c.convKernel, c.ssmHeadDim, c.ssmKHeads, c.ssmVHeads)
		case c.ssmVHeads%c.ssmKHeads != 0:
			return bad("%d value heads are not a multiple of %d key heads", c.ssmVHeads, c.ssmKHeads)
		case h.SSMInnerSize != c.ssmVHeads*c.ssmHeadDim:
			return bad("ssm.inner_size %d is not %d value heads of %d", h.SSMInnerSize, c.ssmVHeads, c.ssmHeadDim)
		}
	default:
		return bad("only %s and %s are supported", experts.ArchQwen3MoE, experts.ArchQwen35MoE)
	}
	if emb, ok := m.File.Tensor("token_embd.weight"); ok && len(emb.Dims) == 2 {
		c.vocab = int(emb.Dims[1])
	}
	switch {
	case c.layers < 1 || c.embed < 1 || c.vocab < 1:
		return bad("%d layers, embedding %d, vocabulary %d", c.layers, c.embed, c.vocab)
	case c.heads < 1 || c.kvHeads < 1 || c.heads%c.kvHeads != 0:
		return bad("%d heads over %d KV heads", c.heads, c.kvHeads)
	case c.headDim < 1 || h.ValueDim != c.headDim:
		return bad("key length %d and value length %d differ", c.headDim, h.ValueDim)
	case c.rope.Dims < 2 || c.rope.Dims > c.headDim || c.rope.Dims%2 != 0:
		return bad("rope over %d of %d head values", c.rope.Dims, c.headDim)
	case h.ExpertGatingFunc != experts.GatingSoftmax:
		return bad("expert gating %v (only softmax)", h.ExpertGatingFunc)
	case c.contextLength < 1:
		return bad("context length %d", c.contextLength)
	}
	return c, nil
}

// textRopeIsNeox reports whether interleaved M-RoPE with these sections
// assigns every pair of the first dims values to the time, height or width
// component, following ggml's sector rule (pair i is sector i mod Σsections;
// sectors cycle t, h, w while each section lasts).
func textRopeIsNeox(sections [4]int, dims int) bool {
	total := sections[0] + sections[1] + sections[2] + sections[3]
	if total <= 0 {
		return false
	}
	for i := range dims / 2 {
		sector := i % total
		switch {
		case sector%3 == 0 && sector < 3*sections[0]:
		case sector%3 == 1 && sector < 3*sections[1]:
		case sector%3 == 2 && sector < 3*sections[2]:
		default:
			return false
		}
	}
	return true
}
