package model

// Option configures a Net. Options only record their values; New checks
// them (an error matching ErrInvalid).
type Option interface{ apply(*options) }

type options struct {
	maxBatch     int
	replay       func(layer, pos int, r Routing)
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

// WithRoutingReplay calls fn for every MoE layer of every forward step with
// the routing the router computed, before the experts are acquired; fn may
// overwrite r.IDs in place (K distinct ids per token, each below the
// layer's expert count) to replay recorded expert choices. The weights stay
// the router's. Benchmarks use it to run a real model's routing on a
// synthetic model, whose router picks experts almost uniformly. Ids that
// are out of range or repeated within a token fail the step with
// ErrInvalid. The routing hook (WithRoutingHook) sees the replayed choices.
func WithRoutingReplay(fn func(layer, pos int, r Routing)) Option {
	return optionFunc(func(o *options) { o.replay = fn })
}
