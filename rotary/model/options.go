package model

// Option configures a Net. Options only record their values; New checks
// them (an error matching ErrInvalid).
type Option interface{ apply(*options) }

type options struct {
	maxBatch     int
	onRouting    func(layer, pos int, r Routing)
	onActivation func(name string, layer int, rows, cols int, values []float32)
}

// defaultMaxBatch is llama.cpp's default micro-batch (n_ubatch).
const defaultMaxBatch = 512

type optionFunc func(*options)

// WithMaxBatch sets how many tokens one pass through the layers takes at
// most (default 512; n must be positive); Forward splits longer inputs.
// Larger batches read each weight once for more tokens but need more
// activation memory.
func WithMaxBatch(n int) Option { return optionFunc(func(o *options) { o.maxBatch = n }) }

func (f optionFunc) apply(o *options) { f(o) }

// WithRoutingHook calls fn for every MoE layer of every forward step with
// the routing of the step's tokens (positions pos, pos+1, ...). fn must not
// keep r's slices.
func WithRoutingHook(fn func(layer, pos int, r Routing)) Option {
	return optionFunc(func(o *options) { o.onRouting = fn })
}

// WithActivationHook calls fn with intermediate activations, named as
// llama.cpp's graph names them ("attn_residual", "ffn_inp", "ffn_moe_out",
// "ffn_shexp_gated", "l_out", "result_norm"; layer -1 for the last), one
// row per token. Reading them back costs time: it is a debugging aid. fn
// must not keep values.
func WithActivationHook(fn func(name string, layer int, rows, cols int, values []float32)) Option {
	return optionFunc(func(o *options) { o.onActivation = fn })
}
