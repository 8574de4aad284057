package gpu

import (
	"github.com/rotary-moe/rotary/experts"
)

// StepBytes bounds the device memory a Backend's arena takes for one forward
// step of batch tokens of a model with hyper-parameters h, at sequences of
// up to positions tokens: the model's tensors of one layer of each kind
// (layers of a kind reuse them), the embeddings, the logits of every token, and the kernels' largest
// workspace (the routed experts' intermediate values of a prefill, or the
// partial results of attention split over a long sequence). It is what a
// VRAM plan reserves for the backend's activations besides the sequence
// state; WithArenaBytes sizes the arena from it.
func StepBytes(h experts.HParams, batch, positions int) int64 {
	embed, vocab := int64(h.EmbeddingDim), int64(h.VocabSize)
	E, K := int64(h.NumExperts), int64(max(h.NumExpertsUsed, 1))
	ff, shared := int64(h.ExpertFFNDim), int64(h.SharedExpertFFNDim)
	heads, kvHeads := int64(h.NumHeads), int64(h.NumKVHeads)
	keyDim, valueDim := int64(h.KeyDim), int64(h.ValueDim)
	// Attention: queries (with qwen35moe's interleaved gates), keys, values
	// and the attended heads.
	attention := 2*heads*keyDim + 2*kvHeads*keyDim + heads*valueDim
	// Gated DeltaNet: the projection and its convolution, z and the core
	// output, alpha and beta.
	S, kHeads, vHeads := int64(h.SSMStateSize), int64(h.SSMGroupCount), int64(h.SSMTimeStepRank)
	deltaNet := 2*(2*kHeads+vHeads)*S + 2*vHeads*S + 2*vHeads
	// Workspaces: the routed experts' gate·up and down outputs per routed
	// pair, and attention's partial softmax per split of the sequence. The
	// backend reuses one workspace call after call, growing it when a call
	// needs more, so a step holds both when attention comes first.
	splits := int64((positions + maxSplit - 1) / maxSplit)
	workspace := K*(ff+embed+2) + heads*splits*(keyDim+2)
	perToken := 6*embed + vocab + // embeddings, norms, block and layer outputs, logits
		attention + deltaNet + // a hybrid model's step holds both kinds' tensors
		E + 2*shared + 1 + embed + // router logits, shared expert
		3*K + // the routing and its slot ids
		workspace
	// Per step: the experts' counts and tiles of a prefill, and alignment of
	// every buffer to arenaAlign.
	return 4*int64(batch)*perToken + 16*E + 64*arenaAlign
}
