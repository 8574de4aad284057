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
