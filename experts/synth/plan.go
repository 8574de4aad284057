package synth

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rotary-moe/rotary/experts"
)

// synthKind says what values a tensor holds.
type synthKind int

const (
	synthWeights   synthKind = iota // zero-mean, standard deviation sigma
	synthNorm                       // RMS-norm weights around 1 (llama.cpp stores Qwen's 1+w already added)
	synthSSMA                       // Gated DeltaNet A = -exp(A_log): negative, in [-16, -1]
	synthSSMDtBias                  // inverse softplus of a time step log-uniform in [1e-3, 1e-1]
)

// synthTensor is one tensor of a preset: name, ggml type and shape, and what
// to fill it with.
type synthTensor struct {
	name  string
	typ   experts.Type
	dims  []uint64
	kind  synthKind
	sigma float64 // for synthWeights
}

// synthPlan lists a preset's tensors in the order its kind of file has them:
// the converter's order for F32 files, llama-quantize's (non-layer tensors,
// then layer by layer, names sorted within each) for quantized ones.
func synthPlan(p *synthPreset) []synthTensor {
	var ts []synthTensor
	u := func(n int) uint64 { return uint64(n) }
	weights := func(name string, sigma float64, dims ...uint64) {
		ts = append(ts, synthTensor{name: name, dims: dims, kind: synthWeights, sigma: sigma})
	}
	proj := func(name string, dims ...uint64) { // a projection from dims[0] inputs
		weights(name, 1/math.Sqrt(float64(dims[0])), dims...)
	}
	other := func(name string, kind synthKind, dims ...uint64) {
		ts = append(ts, synthTensor{name: name, dims: dims, kind: kind})
	}
	embd, vocab := u(p.embd), u(p.vocab)
	// Untied input embeddings of unit scale, an output matrix and routers
	// scaled up so that logits and routing are peaked and token-dependent.
	weights("token_embd.weight", 1, embd, vocab)
	other("output_norm.weight", synthNorm, embd)
	weights("output.weight", 2/math.Sqrt(float64(p.embd)), embd, vocab)
	for l := range p.layers {
		blk := func(s string) string { return "blk." + strconv.Itoa(l) + "." + s }
		other(blk("attn_norm.weight"), synthNorm, embd)
		switch p.arch {
		case "qwen35moe":
			other(blk("post_attention_norm.weight"), synthNorm, embd)
			if (l+1)%p.fullAttnInterval == 0 {
				synthPlanAttention(p, blk, proj, other, 2)
			} else {
				keyDim, valueDim := u(p.ssmGroups*p.ssmState), u(p.ssmTimeStepRank*p.ssmState)
				proj(blk("attn_qkv.weight"), embd, 2*keyDim+valueDim)
				proj(blk("attn_gate.weight"), embd, valueDim)
				weights(blk("ssm_conv1d.weight"), 0.5, u(p.ssmConv), 2*keyDim+valueDim)
				other(blk("ssm_dt.bias"), synthSSMDtBias, u(p.ssmTimeStepRank))
				other(blk("ssm_a"), synthSSMA, u(p.ssmTimeStepRank))
				proj(blk("ssm_beta.weight"), embd, u(p.ssmTimeStepRank))
				proj(blk("ssm_alpha.weight"), embd, u(p.ssmTimeStepRank))
				other(blk("ssm_norm.weight"), synthNorm, u(p.ssmState))
				proj(blk("ssm_out.weight"), valueDim, embd)
			}
		case "qwen3moe":
			synthPlanAttention(p, blk, proj, other, 1)
			other(blk("ffn_norm.weight"), synthNorm, embd)
		}
		weights(blk("ffn_gate_inp.weight"), 4/math.Sqrt(float64(p.embd)), embd, u(p.experts))
		proj(blk("ffn_gate_exps.weight"), embd, u(p.expertFFN), u(p.experts))
		proj(blk("ffn_up_exps.weight"), embd, u(p.expertFFN), u(p.experts))
		proj(blk("ffn_down_exps.weight"), u(p.expertFFN), embd, u(p.experts))
		if p.sharedFFN > 0 {
			// The converter writes the shared expert's gate as an [n_embd, 1]
			// matrix; llama-quantize drops the trailing 1 (ggml_n_dims).
			if p.ftype == synthF32 {
				proj(blk("ffn_gate_inp_shexp.weight"), embd, 1)
			} else {
				proj(blk("ffn_gate_inp_shexp.weight"), embd)
			}
			proj(blk("ffn_gate_shexp.weight"), embd, u(p.sharedFFN))
			proj(blk("ffn_up_shexp.weight"), embd, u(p.sharedFFN))
			proj(blk("ffn_down_shexp.weight"), u(p.sharedFFN), embd)
		}
	}
	if p.ftype == synthF32 {
		for i := range ts {
			ts[i].typ = experts.TypeF32
		}
		return ts
	}
	slices.SortStableFunc(ts, func(a, b synthTensor) int {
		la, lb := synthLayerOf(a.name), synthLayerOf(b.name)
		if la != lb {
			return la - lb
		}
		return strings.Compare(a.name, b.name)
	})
	q := synthQ4KMState{preset: p}
	for _, t := range ts {
		if synthAttnVLike(t.name) {
			q.attnVCount++
		}
	}
	for i := range ts {
		ts[i].typ = q.typeOf(&ts[i])
	}
	return ts
}

// synthPlanAttention adds a full-attention block; qwen35moe's query
// projection also produces an output gate per head (qGateFactor 2).
func synthPlanAttention(p *synthPreset, blk func(string) string, proj func(string, ...uint64), other func(string, synthKind, ...uint64), qGateFactor int) {
	embd, hd := uint64(p.embd), uint64(p.headDim)
	proj(blk("attn_q.weight"), embd, uint64(qGateFactor*p.heads)*hd)
	proj(blk("attn_k.weight"), embd, uint64(p.kvHeads)*hd)
	proj(blk("attn_v.weight"), embd, uint64(p.kvHeads)*hd)
	proj(blk("attn_output.weight"), uint64(p.heads)*hd, embd)
	other(blk("attn_q_norm.weight"), synthNorm, hd)
	other(blk("attn_k_norm.weight"), synthNorm, hd)
}

// synthLayerOf is the layer number in a "blk.N." name, or -1, as llama.cpp's
// weight_name_comparer reads it.
func synthLayerOf(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, ".")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return -1
	}
	return n
}

// synthAttnVLike matches the tensors llama-quantize treats as attn_v:
// attn_v, attn_qkv and attn_kv_b.
func synthAttnVLike(name string) bool {
	return strings.Contains(name, "attn_qkv.weight") || strings.Contains(name, "attn_kv_b.weight") ||
		strings.Contains(name, "attn_v.weight")
}

// synthQ4KMState chooses tensor types as llama.cpp's llama-quant.cpp does
// for LLAMA_FTYPE_MOSTLY_Q4_K_M without an importance matrix (default
// options), visiting tensors in the order llama-quantize does.
type synthQ4KMState struct {
	preset     *synthPreset
	attnVCount int // n_attention_wv
	attnVSeen  int // i_attention_wv
}

// synthUseMoreBits is llama-quant.cpp's use_more_bits: the first and last
// eighth of the layers and every third layer in between.
func synthUseMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

func (q *synthQ4KMState) typeOf(t *synthTensor) experts.Type {
	name := t.name
	nDims := len(t.dims)
	for nDims > 1 && t.dims[nDims-1] == 1 {
		nDims-- // ggml_n_dims ignores trailing dimensions of 1
	}
	quantize := nDims >= 2 && strings.HasSuffix(name, "weight") &&
		!strings.Contains(name, "_norm.weight") &&
		!strings.Contains(name, "ffn_gate_inp.weight") &&
		!strings.Contains(name, "ssm_conv1d")
	if !quantize {
		return experts.TypeF32
	}
	eightExperts := q.preset.experts == 8 // llama.cpp special-cases 8-expert models
	typ := experts.TypeQ4_K
	switch {
	case name == "output.weight":
		typ = experts.TypeQ6_K
		if t.dims[0]%uint64(experts.TypeQ6_K.BlockSize()) != 0 {
			typ = experts.TypeQ8_0
		}
	case name == "token_embd.weight":
		// Q4_K_M keeps the default type for untied input embeddings.
	case synthAttnVLike(name):
		if synthUseMoreBits(q.attnVSeen, q.attnVCount) {
			typ = experts.TypeQ6_K
		}
		if eightExperts {
			typ = experts.TypeQ8_0
		}
		q.attnVSeen++
	case strings.Contains(name, "attn_k.weight"):
		if eightExperts {
			typ = experts.TypeQ8_0
		}
	case strings.Contains(name, "ffn_down"):
		// With experts llama.cpp takes the layer from the name and counts
		// n_layer_all layers.
		if synthUseMoreBits(synthLayerOf(name), q.preset.layers) {
			typ = experts.TypeQ6_K
		}
	case strings.Contains(name, "attn_output.weight"):
		if eightExperts {
			typ = experts.TypeQ5_K
		}
	}
	return typ
}

// synthSetMetadata adds the metadata keys in the order and with the types
// llama.cpp's tools write them.
func synthSetMetadata(w *experts.Writer, p *synthPreset, tok *synthVocab) error {
	a := p.arch + "."
	u32 := func(n int) uint32 { return uint32(n) }
	type kv struct {
		key   string
		value any
	}
	kvs := []kv{
		{"general.architecture", p.arch},
		{"general.type", "model"},
		{"general.name", "rotary synthetic " + p.name},
		{a + "block_count", u32(p.layers)},
		{a + "context_length", u32(p.ctxLen)},
		{a + "embedding_length", u32(p.embd)},
	}
	add := func(key string, value any) { kvs = append(kvs, kv{key, value}) }
	if p.ffnLength > 0 {
		add(a+"feed_forward_length", u32(p.ffnLength))
	}
	add(a+"attention.head_count", u32(p.heads))
	add(a+"attention.head_count_kv", u32(p.kvHeads))
	add(a+"rope.freq_base", p.ropeBase)
	add(a+"attention.layer_norm_rms_epsilon", p.rmsEps)
	add(a+"expert_count", u32(p.experts))
	add(a+"expert_used_count", u32(p.expertsUsed))
	add(a+"attention.key_length", u32(p.headDim))
	add(a+"attention.value_length", u32(p.headDim))
	add(a+"expert_feed_forward_length", u32(p.expertFFN))
	if p.arch == "qwen35moe" {
		add(a+"expert_shared_feed_forward_length", u32(p.sharedFFN))
		add(a+"ssm.conv_kernel", u32(p.ssmConv))
		add(a+"ssm.state_size", u32(p.ssmState))
		add(a+"ssm.group_count", u32(p.ssmGroups))
		add(a+"ssm.time_step_rank", u32(p.ssmTimeStepRank))
		add(a+"ssm.inner_size", u32(p.ssmInner))
		add(a+"full_attention_interval", u32(p.fullAttnInterval))
		add(a+"rope.dimension_count", u32(p.ropeDims))
		add(a+"rope.dimension_sections", p.ropeSections[:])
	}
	// llama_ftype: 0 all F32, 15 mostly Q4_K_M. The converter writes it
	// before the tokenizer; llama-quantize rewrites it at the end.
	const ftypeAllF32, ftypeQ4KM, quantizationVersion = 0, 15, 2
	if p.ftype == synthF32 {
		add("general.file_type", uint32(ftypeAllF32))
	}
	pre := map[string]string{"qwen35moe": "qwen35", "qwen3moe": "qwen2"}[p.arch]
	add("tokenizer.ggml.model", "gpt2")
	add("tokenizer.ggml.pre", pre)
	add("tokenizer.ggml.tokens", tok.tokens)
	add("tokenizer.ggml.token_type", tok.types)
	add("tokenizer.ggml.merges", tok.merges)
	add("tokenizer.ggml.eos_token_id", uint32(tok.imEnd))
	add("tokenizer.ggml.padding_token_id", uint32(tok.endOfText))
	add("tokenizer.ggml.bos_token_id", uint32(tok.endOfText))
	add("tokenizer.ggml.add_bos_token", false)
	add("tokenizer.chat_template", synthChatTemplate)
	if p.ftype == synthQ4KM {
		add("general.quantization_version", uint32(quantizationVersion))
		add("general.file_type", uint32(ftypeQ4KM))
	}
	for _, kv := range kvs {
		if err := w.SetKV(kv.key, kv.value); err != nil {
			return fmt.Errorf("synth: preset %s: %w", p.name, err)
		}
	}
	return nil
}

// synthChatTemplate is a minimal ChatML template, the format Qwen models
// are trained on.
const synthChatTemplate = "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
