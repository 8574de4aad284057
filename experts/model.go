package experts

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// GatingFunc is how a router turns its logits into expert weights, numbered
// as llama.cpp's expert_gating_func.
type GatingFunc int

// The gating functions.
const (
	// GatingSoftmax: softmax over all experts, then top-k.
	GatingSoftmax GatingFunc = 1
	// GatingSigmoid: sigmoid of each logit, then top-k (DeepSeek-V3).
	GatingSigmoid GatingFunc = 2
	// GatingSoftmaxWeight: top-k of the logits, then softmax over those
	// (gpt-oss).
	GatingSoftmaxWeight GatingFunc = 3
)

func (g GatingFunc) String() string {
	switch g {
	case GatingSoftmax:
		return "softmax"
	case GatingSigmoid:
		return "sigmoid"
	case GatingSoftmaxWeight:
		return "softmax_weight"
	}
	return fmt.Sprintf("gating(%d)", int(g))
}

// HParams are a model's hyper-parameters, read from the `<arch>.` metadata
// keys. Keys a model may omit take the defaults llama.cpp uses; counts are
// checked to be positive where the model cannot work otherwise.
type HParams struct {
	Arch string // general.architecture, e.g. "qwen35moe"
	Name string // general.name, may be empty

	NumLayers int // block_count, including NumNextNLayers
	// NumNextNLayers is the number of trailing multi-token-prediction layers
	// (nextn_predict_layers) that normal decoding skips.
	NumNextNLayers int
	EmbeddingDim   int
	// NumHeads and NumKVHeads are the attention heads; where a file gives
	// them per layer, the largest value.
	NumHeads   int
	NumKVHeads int
	KeyDim     int // per head; default EmbeddingDim/NumHeads
	ValueDim   int // per head; default EmbeddingDim/NumHeads

	NumExperts         int // routed experts per MoE layer
	NumExpertsUsed     int // experts selected per token (top-k)
	ExpertFFNDim       int // hidden size of one routed expert
	SharedExpertFFNDim int // hidden size of the shared expert, 0 without one
	ExpertWeightsNorm  bool
	ExpertGatingFunc   GatingFunc

	ContextLength int
	VocabSize     int
	RopeFreqBase  float32 // default 10000
	RopeDims      int     // rotated dimensions per head; default KeyDim
	// RopeSections are the M-RoPE sections (rope.dimension_sections), zero
	// where the file has none.
	RopeSections [4]int
	RMSEps       float32

	// FullAttentionInterval: layer l is a full-attention layer when
	// (l+1) is a multiple of it; 1 where every layer is one.
	FullAttentionInterval int
	// Gated DeltaNet (linear attention) layers of hybrid models.
	SSMConvKernel   int
	SSMStateSize    int // head dimension of k and v
	SSMGroupCount   int // k heads
	SSMTimeStepRank int // v heads
	SSMInnerSize    int
}

// IsFullAttention reports whether layer is a (gated) full-attention layer
// rather than a linear-attention one.
func (h HParams) IsFullAttention(layer int) bool {
	if h.FullAttentionInterval <= 1 {
		return true
	}
	return (layer+1)%h.FullAttentionInterval == 0
}

// Architectures this package knows beyond the generic `<arch>.` keys.
const (
	ArchQwen3MoE  = "qwen3moe"  // Qwen3-30B-A3B and relatives
	ArchQwen35MoE = "qwen35moe" // Qwen3.5/3.6-35B-A3B: Gated DeltaNet + gated attention, shared expert
)

// archDefaults holds what llama.cpp's graph for an architecture fixes in
// code rather than reading from the file.
type archDefaults struct {
	weightsNorm           bool
	gating                GatingFunc
	fullAttentionInterval int
}

var knownArchDefaults = map[string]archDefaults{
	ArchQwen3MoE:  {weightsNorm: true, gating: GatingSoftmax, fullAttentionInterval: 1},
	ArchQwen35MoE: {weightsNorm: true, gating: GatingSoftmax, fullAttentionInterval: 4},
	"qwen2moe":    {weightsNorm: false, gating: GatingSoftmax, fullAttentionInterval: 1},
	"llama":       {weightsNorm: true, gating: GatingSoftmax, fullAttentionInterval: 1}, // Mixtral
	"gpt-oss":     {weightsNorm: false, gating: GatingSoftmaxWeight, fullAttentionInterval: 1},
}

var genericDefaults = archDefaults{gating: GatingSoftmax, fullAttentionInterval: 1}

// maxLayers bounds block_count: per-layer tables are sized by it.
const maxLayers = 1 << 16

// hparamReader reads `<arch>.` keys and keeps the first error.
type hparamReader struct {
	f      *File
	prefix string
	err    error
}

func (r *hparamReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// count reads a non-negative integer that fits an int32. A missing key
// gives def, or an error if it is required.
func (r *hparamReader) count(name string, required bool, def int) int {
	key := r.prefix + name
	v, ok := r.f.Value(key)
	if !ok {
		if required {
			r.fail(fmt.Errorf("%w: %q", ErrKeyNotFound, key))
		}
		return def
	}
	u, ok := v.AsUint()
	if !ok {
		r.fail(fmt.Errorf("%w: %q is %s, want an unsigned integer", ErrValueType, key, v.describe()))
		return def
	}
	if u > math.MaxInt32 {
		r.fail(fmt.Errorf("%w: %q = %d is too large", ErrValueType, key, u))
		return def
	}
	return int(u)
}

// maxCount reads a count that a file may give per layer, as an array; it
// returns the largest.
func (r *hparamReader) maxCount(name string, required bool, def int) int {
	v, ok := r.f.Value(r.prefix + name)
	if !ok || v.Type() != ValueArray {
		return r.count(name, required, def)
	}
	vals, ok := v.AsInts()
	if !ok || len(vals) == 0 {
		r.fail(fmt.Errorf("%w: %q is %s, want an unsigned integer or an array of them", ErrValueType, r.prefix+name, v.describe()))
		return def
	}
	m := int64(0)
	for _, x := range vals {
		if x < 0 || x > math.MaxInt32 {
			r.fail(fmt.Errorf("%w: %q holds %d", ErrValueType, r.prefix+name, x))
			return def
		}
		m = max(m, x)
	}
	return int(m)
}

func (r *hparamReader) float(name string, required bool, def float32) float32 {
	key := r.prefix + name
	x, err := r.f.Float(key)
	switch {
	case errors.Is(err, ErrKeyNotFound) && !required:
		return def
	case err != nil:
		r.fail(err)
		return def
	case math.IsNaN(x) || math.IsInf(x, 0):
		r.fail(fmt.Errorf("%w: %q is %v", ErrValueType, key, x))
		return def
	}
	return float32(x)
}

func (r *hparamReader) bool(name string, def bool) bool {
	b, err := r.f.Bool(r.prefix + name)
	if errors.Is(err, ErrKeyNotFound) {
		return def
	}
	if err != nil {
		r.fail(err)
	}
	return b
}

func (r *hparamReader) sections(name string, required bool) [4]int {
	var s [4]int
	key := r.prefix + name
	v, ok := r.f.Value(key)
	if !ok {
		if required {
			r.fail(fmt.Errorf("%w: %q", ErrKeyNotFound, key))
		}
		return s
	}
	vals, ok := v.AsInts()
	if !ok || len(vals) > len(s) {
		r.fail(fmt.Errorf("%w: %q is %s, want up to %d integers", ErrValueType, key, v.describe(), len(s)))
		return s
	}
	for i, x := range vals {
		if x < 0 || x > math.MaxInt32 {
			r.fail(fmt.Errorf("%w: %q holds %d", ErrValueType, key, x))
			return s
		}
		s[i] = int(x)
	}
	return s
}

// readHParams reads the hyper-parameters of an MoE model. Sizes that the
// file may leave to the tensors (expert FFN sizes, vocabulary) are filled
// in later from the tensors.
func readHParams(f *File) (HParams, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return HParams{}, err
	}
	if arch == "" || strings.ContainsAny(arch, ". ") {
		return HParams{}, fmt.Errorf("%w: general.architecture %q is not a name", ErrValueType, arch)
	}
	defaults, known := knownArchDefaults[arch]
	if !known {
		defaults = genericDefaults
	}
	qwen := arch == ArchQwen3MoE || arch == ArchQwen35MoE
	hybrid := arch == ArchQwen35MoE

	r := &hparamReader{f: f, prefix: arch + "."}
	h := HParams{Arch: arch}
	if name, err := f.String("general.name"); err == nil {
		h.Name = name
	}
	h.NumLayers = r.count("block_count", true, 0)
	h.NumNextNLayers = r.count("nextn_predict_layers", false, 0)
	h.ContextLength = r.count("context_length", true, 0)
	h.EmbeddingDim = r.count("embedding_length", true, 0)
	h.NumHeads = r.maxCount("attention.head_count", true, 0)
	h.NumKVHeads = r.maxCount("attention.head_count_kv", false, h.NumHeads)
	headDim := 0
	if h.NumHeads > 0 {
		headDim = h.EmbeddingDim / h.NumHeads
	}
	h.KeyDim = r.count("attention.key_length", false, headDim)
	h.ValueDim = r.count("attention.value_length", false, headDim)

	h.NumExperts = r.count("expert_count", true, 0)
	h.NumExpertsUsed = r.count("expert_used_count", true, 0)
	h.ExpertFFNDim = r.count("expert_feed_forward_length", false, 0)
	h.SharedExpertFFNDim = r.count("expert_shared_feed_forward_length", false, 0)
	h.ExpertWeightsNorm = r.bool("expert_weights_norm", defaults.weightsNorm)
	h.ExpertGatingFunc = GatingFunc(r.count("expert_gating_func", false, int(defaults.gating)))
	if h.ExpertGatingFunc == 0 { // "none": llama.cpp falls back to the architecture's gating
		h.ExpertGatingFunc = defaults.gating
	}

	h.RopeFreqBase = r.float("rope.freq_base", false, 10000)
	h.RopeDims = r.count("rope.dimension_count", false, h.KeyDim)
	h.RopeSections = r.sections("rope.dimension_sections", hybrid)
	h.RMSEps = r.float("attention.layer_norm_rms_epsilon", qwen, 0)
	if h.RMSEps == 0 && !qwen {
		h.RMSEps = r.float("attention.layer_norm_epsilon", false, 0)
	}

	h.FullAttentionInterval = r.count("full_attention_interval", false, defaults.fullAttentionInterval)
	h.SSMConvKernel = r.count("ssm.conv_kernel", hybrid, 0)
	h.SSMStateSize = r.count("ssm.state_size", hybrid, 0)
	h.SSMGroupCount = r.count("ssm.group_count", hybrid, 0)
	h.SSMTimeStepRank = r.count("ssm.time_step_rank", hybrid, 0)
	h.SSMInnerSize = r.count("ssm.inner_size", hybrid, 0)

	if tokens, ok := f.Value("tokenizer.ggml.tokens"); ok {
		if tokens.Type() != ValueArray || tokens.ElemType() != ValueString {
			r.fail(fmt.Errorf("%w: %q is %s, want an array of strings", ErrValueType, "tokenizer.ggml.tokens", tokens.describe()))
		}
		h.VocabSize = tokens.Len()
	}
	if r.err != nil {
		return HParams{}, r.err
	}
	return h, h.check()
}

// check rejects hyper-parameters no model can have.
func (h HParams) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: "+format, append([]any{ErrInconsistentModel, h.Arch}, args...)...)
	}
	switch {
	case h.NumLayers < 1 || h.NumLayers > maxLayers:
		return bad("block_count %d is outside [1, %d]", h.NumLayers, maxLayers)
	case h.NumNextNLayers >= h.NumLayers:
		return bad("nextn_predict_layers %d leaves none of the %d layers", h.NumNextNLayers, h.NumLayers)
	case h.EmbeddingDim < 1:
		return bad("embedding_length is 0")
	case h.NumHeads < 1:
		return bad("attention.head_count is 0")
	case h.NumExperts < 1:
		return bad("expert_count is 0")
	case h.NumExpertsUsed < 1 || h.NumExpertsUsed > h.NumExperts:
		return bad("expert_used_count %d is outside [1, expert_count %d]", h.NumExpertsUsed, h.NumExperts)
	case h.ExpertGatingFunc > GatingSoftmaxWeight:
		return bad("unknown expert_gating_func %d", int(h.ExpertGatingFunc))
	case h.FullAttentionInterval < 1:
		return bad("full_attention_interval is 0")
	}
	return nil
}

// Model is the view of an MoE model file: its hyper-parameters and where
// every expert's bytes lie. It is read-only and safe for concurrent use.
type Model struct {
	File   *File
	Arch   string
	Params HParams

	layers           []*ExpertLayer  // by layer index; nil for a layer without routed experts
	shared           []*SharedExpert // by layer index; nil for a layer without a shared expert
	moeLayers        []int
	expertTensors    []*TensorInfo // the layers' stacked expert tensors, in the file's order
	totalExpertBytes int64
	nonExpertBytes   int64
}

// OpenModel opens the GGUF file at path and builds its model view.
func OpenModel(path string) (*Model, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	m, err := NewModel(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// NewModel reads f's hyper-parameters and indexes its experts. It fails
// when a required key is missing (the error names it), when the model has
// no stacked expert tensors (ErrNoExperts), and when the expert tensors do
// not agree with each other or with the hyper-parameters
// (ErrInconsistentModel, usually inside a *FormatError naming the tensor).
// The Model does not own f unless it came from OpenModel.
func NewModel(f *File) (*Model, error) {
	h, err := readHParams(f)
	if err != nil {
		return nil, &modelError{path: f.path, err: err}
	}
	m := &Model{File: f, Arch: h.Arch, Params: h}
	if err := m.index(); err != nil {
		if _, ok := err.(*FormatError); ok {
			return nil, err // names the file and the tensor already
		}
		return nil, &modelError{path: f.path, err: err}
	}
	return m, nil
}

// Close closes the model's file.
func (m *Model) Close() error { return m.File.Close() }

// modelError puts the file's name in front of a model-level error.
type modelError struct {
	path string
	err  error
}

func (e *modelError) Error() string {
	return "experts: " + e.path + ": " + strings.TrimPrefix(e.err.Error(), "experts: ")
}

func (e *modelError) Unwrap() error { return e.err }
