package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/rotary-moe/rotary/experts"
)

// Net is the forward pass of a loaded qwen3moe or qwen35moe model (named
// apart from experts.Model, the file it is built over): resident weights
// viewed in the mapped file and a Backend to compute with, which also
// supplies the routed experts. It is safe for concurrent use; Forward calls run
// one at a time (they share the backend).
type Net struct {
	mu      sync.Mutex // serialises Forward
	cfg     config
	backend Backend
	// step holds the tensors of the forward step under way, which every
	// layer reuses: a step's activations take a layer's worth of memory,
	// not one per layer, at the same addresses in every layer.
	step [numTensorKeys]Tensor
	opts options

	tokenEmbd, outputNorm, output Weight
	layers                        []layerWeights

	states atomic.Uint64 // the last State's id
	// logged: the backend logs the routing for the hook (RoutingLogger),
	// which sees it once each step has run.
	logged bool
}

// New builds a Net over m's weights. The model keeps views into m's
// mapping: m must stay open while the Net is used.
func New(m *experts.Model, backend Backend, opts ...Option) (*Net, error) {
	if backend == nil {
		return nil, fmt.Errorf("%w: New needs a backend", ErrInvalid)
	}
	md := &Net{backend: backend, opts: options{maxBatch: defaultMaxBatch}}
	for _, o := range opts {
		if o != nil {
			o.apply(&md.opts)
		}
	}
	if md.opts.maxBatch <= 0 {
		return nil, fmt.Errorf("%w: WithMaxBatch(%d) is not positive", ErrInvalid, md.opts.maxBatch)
	}
	if rl, ok := backend.(RoutingLogger); ok && md.opts.onRouting != nil && md.opts.replay == nil {
		md.logged = rl.LogRouting()
	}
	cfg, err := newConfig(m)
	if err != nil {
		return nil, err
	}
	md.cfg = cfg
	l := &loader{f: m.File}
	md.tokenEmbd = l.matrix("token_embd.weight", cfg.vocab, cfg.embed)
	md.outputNorm = l.vector("output_norm.weight", 1, cfg.embed)
	if out, ok := l.find("output.weight", cfg.vocab, cfg.embed); ok {
		md.output = out
	} else {
		md.output = md.tokenEmbd // tied embeddings
	}
	md.layers = make([]layerWeights, cfg.layers)
	for il := range md.layers {
		md.layers[il] = md.loadLayer(l, il)
	}
	if l.err != nil {
		return nil, l.err
	}
	for il := range cfg.layers {
		if _, ok := m.Experts(il); !ok {
			return nil, fmt.Errorf("%w: %s: layer %d has no routed experts", ErrBadWeights, m.File.Path(), il)
		}
	}
	return md, nil
}

// VocabSize is the number of logits per position.
func (m *Net) VocabSize() int { return m.cfg.vocab }

// Layers is the number of decoder layers the forward pass runs.
func (m *Net) Layers() int { return m.cfg.layers }

// Weights lists the weights the forward pass reads besides the routed
// experts, each once: what a GPU backend uploads before the first step.
func (m *Net) Weights() []Weight {
	var ws []Weight
	type view struct { // the bytes a weight views, as backends key uploads
		data *byte
		n    int
	}
	seen := map[view]bool{}
	add := func(w Weight) {
		v := view{unsafe.SliceData(w.Data), len(w.Data)}
		if v.n == 0 || seen[v] {
			return
		}
		seen[v] = true
		ws = append(ws, w)
	}
	add(m.tokenEmbd)
	for _, l := range m.layers {
		for _, w := range []Weight{l.attnNorm, l.q, l.k, l.v, l.qNorm, l.kNorm, l.o,
			l.qkv, l.z, l.alpha, l.beta, l.conv, l.dtBias, l.a, l.ssmNorm, l.ssmOut,
			l.ffnNorm, l.router, l.shGate, l.shUp, l.shDown, l.shInput} {
			add(w)
		}
	}
	add(m.outputNorm)
	add(m.output)
	return ws
}

// State is one sequence's memory: the KV cache of attention layers and the
// convolution and recurrent state of Gated DeltaNet layers.
type State struct {
	model    *Net
	id       uint64 // StepKey.State
	pos      int
	capacity int
	layers   []layerState
}

type layerState struct {
	kv          KVCache // attention layers
	conv, delta Tensor  // DeltaNet layers
}

// NewState allocates an empty sequence holding up to maxTokens positions,
// capped at the model's trained context length; maxTokens <= 0 means the
// context length.
func (m *Net) NewState(maxTokens int) *State {
	capacity := m.cfg.contextLength
	if maxTokens > 0 {
		capacity = min(capacity, maxTokens)
	}
	s := &State{model: m, id: m.states.Add(1), capacity: capacity, layers: make([]layerState, m.cfg.layers)}
	s.Reset() // new state tensors are zero: nothing to clear, no error
	return s
}

// Reset empties the sequence. A State is used by one goroutine at a time.
// It fails only when the backend cannot clear the recurrent state; the
// state must not be used then.
func (s *State) Reset() error {
	s.model.mu.Lock()
	defer s.model.mu.Unlock()
	c, b := &s.model.cfg, s.model.backend
	s.pos = 0
	for il := range s.layers {
		ls := &s.layers[il]
		if c.isAttention(il) {
			if ls.kv.K == nil {
				n := c.kvHeads * c.headDim
				ls.kv = KVCache{K: b.NewState(s.capacity, n), V: b.NewState(s.capacity, n)}
			}
			continue // positions past pos are never read
		}
		if ls.conv == nil {
			channels := 2*c.ssmKHeads*c.ssmHeadDim + c.ssmVHeads*c.ssmHeadDim
			ls.conv = b.NewState(c.convKernel-1, channels)
			ls.delta = b.NewState(c.ssmVHeads*c.ssmHeadDim, c.ssmHeadDim)
			continue // new state is zero
		}
		if err := errors.Join(b.Zero(ls.conv), b.Zero(ls.delta)); err != nil {
			return fmt.Errorf("model: resetting layer %d's state: %w", il, err)
		}
	}
	return nil
}

// Pos is the number of positions processed so far: the position of the
// next token.
func (s *State) Pos() int { return s.pos }

// Capacity is the number of positions the state can hold.
func (s *State) Capacity() int { return s.capacity }

// Logits selects which positions' logits Forward returns.
type Logits int

const (
	// LastLogits returns the logits of the last token only (generation).
	LastLogits Logits = iota
	// AllLogits returns the logits of every token, position after position.
	AllLogits
)

// Forward runs tokens through the model at the state's next positions (a
// whole prompt at once, or one token per step when generating) and returns
// vocabulary-sized logits as selected by which. Inputs longer than the
// micro-batch (WithMaxBatch) run in several passes. On error the state is
// left as it was only if the error came before the first layer ran;
// otherwise Reset it.
func (m *Net) Forward(ctx context.Context, s *State, tokens []int32, which Logits) ([]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &m.cfg
	T := len(tokens)
	switch {
	case s.model != m:
		return nil, fmt.Errorf("model: state belongs to another model")
	case T == 0:
		return nil, nil
	case s.pos+T > s.capacity:
		return nil, fmt.Errorf("%w: %d tokens at position %d of %d", ErrContextFull, T, s.pos, s.capacity)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= c.vocab {
			return nil, fmt.Errorf("%w: token %d (index %d) of a %d-token vocabulary", ErrBadToken, t, i, c.vocab)
		}
	}

	// Long prompts run in micro-batches: results do not depend on the
	// split, and activation buffers stay bounded.
	var logits []float32
	for lo := 0; lo < T; lo += m.opts.maxBatch {
		hi := min(lo+m.opts.maxBatch, T)
		which := which
		if hi < T && which == LastLogits {
			which = noLogits
		}
		l, err := m.forward(ctx, s, tokens[lo:hi], which)
		if err != nil {
			return nil, err
		}
		logits = append(logits, l...)
	}
	return logits, nil
}

// noLogits skips the output layer for a micro-batch whose logits nobody
// asked for.
const noLogits Logits = -1

// forward runs one micro-batch: a one-token step through the backend's
// graphs when it has them and no hook needs to see inside the step.
func (m *Net) forward(ctx context.Context, s *State, tokens []int32, which Logits) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pos := s.pos
	g, ok := m.backend.(StepGrapher)
	if !ok || len(tokens) != 1 || which == noLogits || m.opts.replay != nil || m.opts.onRouting != nil && !m.logged || m.opts.onActivation != nil {
		m.backend.BeginStep()
		out, err := m.queue(ctx, s, tokens, which)
		if err != nil {
			return nil, err
		}
		return m.finish(out, pos)
	}
	key := StepKey{State: s.id, Logits: which}
	if out := g.BeginDecode(key, tokens[0], pos); out != nil {
		s.pos++
		return m.finish(out, pos)
	}
	out, err := m.queue(ctx, s, tokens, which)
	if err != nil {
		out = nil // a capture of part of the step is dropped
	}
	switch cerr := g.EndDecode(out); {
	case cerr != nil && ctx.Err() != nil:
		s.pos = pos
		return nil, ctx.Err()
	case cerr != nil:
		// The capture failed (an operation failed in it, or the graph
		// could not be made): nothing ran, so the step runs as usual.
		s.pos = pos
		m.backend.BeginStep()
		if out, err = m.queue(ctx, s, tokens, which); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	return m.finish(out, pos)
}

// finish waits for the step that ran from position pos: it reads its
// logits, if out holds them, and hands its routing to the routing hook
// when the backend logs it (RoutingLogger).
func (m *Net) finish(out Tensor, pos int) ([]float32, error) {
	var logits []float32
	if out != nil {
		logits = make([]float32, out.Rows()*out.Cols())
		if err := m.backend.Read(logits, out); err != nil {
			return nil, err
		}
	}
	if m.logged {
		err := m.backend.(RoutingLogger).LoggedRouting(func(layer int, r Routing) { m.opts.onRouting(layer, pos, r) })
		if err != nil {
			return nil, err
		}
	}
	return logits, nil
}

// queue queues the operations of one micro-batch, begun (BeginStep or
// BeginDecode), and returns the tensor of its logits (nil for noLogits).
func (m *Net) queue(ctx context.Context, s *State, tokens []int32, which Logits) (Tensor, error) {
	c, b := &m.cfg, m.backend
	T := len(tokens)
	clear(m.step[:])
	x := m.tensor(tEmbed, T, c.embed)
	if err := b.Embed(x, m.tokenEmbd, tokens); err != nil {
		return nil, err
	}
	// h is x normalised for what reads it next: the first layer's
	// attention here; each layer normalises its output for the next one
	// (the last for the output), fused with its residual sum.
	h := m.tensor(tNorm, T, c.embed)
	if err := b.RMSNorm(h, x, m.layers[0].attnNorm, c.eps); err != nil {
		return nil, err
	}
	for il := range c.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var err error
		if x, err = m.layer(ctx, s, il, x, h); err != nil {
			return nil, fmt.Errorf("model: layer %d: %w", il, err)
		}
	}
	s.pos += T

	switch which {
	case noLogits:
		return nil, nil
	case LastLogits:
		h = b.Slice(h, T-1, T)
	}
	if err := m.observe("result_norm", -1, h); err != nil {
		return nil, err
	}
	out := m.tensor(tLogits, h.Rows(), c.vocab)
	if err := b.MatMul(out, h, m.output); err != nil {
		return nil, err
	}
	return out, nil
}

// layer runs decoder layer il on the hidden states x, normalised by its
// attention norm in h, and returns the new hidden states; h then holds
// them normalised for the next layer (or the output).
func (m *Net) layer(ctx context.Context, s *State, il int, x, h Tensor) (Tensor, error) {
	c, b, w := &m.cfg, m.backend, &m.layers[il]
	var mixed Tensor
	var err error
	if c.isAttention(il) {
		mixed, err = m.attention(s, il, h)
	} else {
		mixed, err = m.deltaNet(s, il, h)
	}
	if err != nil {
		return nil, err
	}
	if err := b.AddNorm(mixed, h, Residual{A: mixed, B: x}, w.ffnNorm, c.eps); err != nil {
		return nil, err
	}
	if c.hybrid {
		err = m.observe("attn_residual", il, mixed)
	} else {
		err = m.observe("ffn_inp", il, mixed)
	}
	if err != nil {
		return nil, err
	}

	ffn, err := m.moe(ctx, s.pos, il, h)
	if err != nil {
		return nil, err
	}
	next := m.outputNorm
	if il+1 < c.layers {
		next = m.layers[il+1].attnNorm
	}
	// ffn's routed experts, plus the gated shared expert, plus the
	// residual: summed in that order.
	r := Residual{A: ffn.routed, B: mixed}
	if ffn.shared != nil {
		r = Residual{A: ffn.routed, B: ffn.shared, Gate: ffn.gate, C: mixed}
	}
	if err := b.AddNorm(ffn.routed, h, r, next, c.eps); err != nil {
		return nil, err
	}
	return ffn.routed, m.observe("l_out", il, ffn.routed)
}

// attention is the (gated) full-attention block of layer il.
func (m *Net) attention(s *State, il int, h Tensor) (Tensor, error) {
	c, b, w := &m.cfg, m.backend, &m.layers[il]
	T, H, KV, Dh := h.Rows(), c.heads, c.kvHeads, c.headDim
	q := m.tensor(tQ, T, w.q.Rows)
	k := m.tensor(tK, T, KV*Dh)
	v := m.tensor(tV, T, KV*Dh)
	for _, mm := range []struct {
		dst Tensor
		w   Weight
	}{{q, w.q}, {k, w.k}, {v, w.v}} {
		if err := b.MatMul(mm.dst, h, mm.w); err != nil {
			return nil, err
		}
	}
	a := Attention{
		Q: q, QHeads: Heads{Count: H, Dim: Dh, Stride: Dh},
		K: k, V: v, KVHeads: KV,
		Cache: s.layers[il].kv,
		Pos:   s.pos,
		Scale: float32(1 / math.Sqrt(float64(Dh))),
		QNorm: w.qNorm, KNorm: w.kNorm, Eps: c.eps, Rope: c.rope,
	}
	if c.gatedAttention {
		a.QHeads.Stride = 2 * Dh
		a.Gate, a.GateHeads = q, Heads{Count: H, Dim: Dh, Stride: 2 * Dh, Offset: Dh}
	}
	att := m.tensor(tAttended, T, H*Dh)
	if err := b.Attend(att, a); err != nil {
		return nil, err
	}
	out := m.tensor(tMixed, T, c.embed)
	return out, b.MatMul(out, att, w.o)
}

// deltaNet is the Gated DeltaNet block of layer il.
func (m *Net) deltaNet(s *State, il int, h Tensor) (Tensor, error) {
	c, b, w := &m.cfg, m.backend, &m.layers[il]
	T, S, Hv := h.Rows(), c.ssmHeadDim, c.ssmVHeads
	qkv := m.tensor(tQKV, T, w.qkv.Rows)
	z := m.tensor(tZ, T, Hv*S)
	alpha := m.tensor(tAlpha, T, Hv)
	beta := m.tensor(tBeta, T, Hv)
	for _, mm := range []struct {
		dst Tensor
		w   Weight
	}{{qkv, w.qkv}, {z, w.z}, {beta, w.beta}, {alpha, w.alpha}} {
		if err := b.MatMul(mm.dst, h, mm.w); err != nil {
			return nil, err
		}
	}
	ls := &s.layers[il]
	conv := m.tensor(tConv, T, w.qkv.Rows)
	if err := b.ConvSiLU(conv, qkv, ls.conv, w.conv); err != nil {
		return nil, err
	}
	core := m.tensor(tCore, T, Hv*S)
	err := b.DeltaNet(core, DeltaNet{
		QKV: conv, Alpha: alpha, Beta: beta, DTBias: w.dtBias, A: w.a,
		State: ls.delta, KHeads: c.ssmKHeads, VHeads: Hv, HeadDim: S, Eps: c.eps,
	})
	if err != nil {
		return nil, err
	}
	if err := b.GatedRMSNorm(core, core, z, w.ssmNorm, c.eps); err != nil {
		return nil, err
	}
	out := m.tensor(tMixed, T, c.embed)
	return out, b.MatMul(out, core, w.ssmOut)
}

// moe is the mixture-of-experts block of layer il on the normalised
// hidden states h of positions pos, pos+1, ...
func (m *Net) moe(ctx context.Context, pos, il int, h Tensor) (moeOut, error) {
	c, b, w := &m.cfg, m.backend, &m.layers[il]
	T := h.Rows()
	logits := m.tensor(tRouter, T, c.experts)
	if err := b.MatMul(logits, h, w.router); err != nil {
		return moeOut{}, err
	}
	// The shared expert first: on a GPU its launches are queued while the
	// router's kernels run, before the host waits for the routing, so fewer
	// launches are left to queue after that wait. (Its result is added
	// last, as before: the sums are unchanged.)
	var shared, gateIn Tensor
	if w.shared {
		var err error
		if shared, gateIn, err = m.sharedExpert(il, h); err != nil {
			return moeOut{}, err
		}
	}
	r, err := b.Route(logits, c.expertsUsed, c.normalizeWeights)
	if err != nil {
		return moeOut{}, err
	}
	if r.IDs == nil && (m.opts.replay != nil || m.opts.onRouting != nil && !m.logged) {
		rr, ok := b.(RoutingReader)
		if !ok {
			return moeOut{}, fmt.Errorf("model: layer %d's routing stays in a backend that cannot read it back", il)
		}
		if err := rr.ReadRouting(&r); err != nil {
			return moeOut{}, err
		}
	}
	if m.opts.replay != nil {
		m.opts.replay(il, pos, r)
		if err := checkRouting(r, c.experts); err != nil {
			return moeOut{}, fmt.Errorf("model: replayed routing of layer %d at position %d: %w", il, pos, err)
		}
	}
	if m.opts.onRouting != nil && !m.logged {
		m.opts.onRouting(il, pos, r)
	}
	// The layer's output, the next layer's input: two tensors in turn, so
	// a layer never writes the tensor it reads.
	out := m.tensor(tLayerOut+tensorKey(il%2), T, c.embed)
	if err := b.MoE(ctx, out, h, il, r); err != nil {
		return moeOut{}, err
	}
	if err := m.observe("ffn_moe_out", il, out); err != nil {
		return moeOut{}, err
	}
	if !w.shared {
		return moeOut{routed: out}, nil
	}
	if m.opts.onActivation != nil {
		gated, zero := m.tensor(tHookGated, T, c.embed), m.tensor(tHookZero, T, c.embed)
		if err := b.Zero(zero); err != nil {
			return moeOut{}, err
		}
		if err := b.AddGated(gated, zero, shared, gateIn); err != nil {
			return moeOut{}, err
		}
		if err := m.observe("ffn_shexp_gated", il, gated); err != nil {
			return moeOut{}, err
		}
	}
	return moeOut{routed: out, shared: shared, gate: gateIn}, nil
}

// moeOut is an MoE block's output before its sums: the routed experts', and
// the shared expert's (nil without one) with its gate's input.
type moeOut struct {
	routed, shared, gate Tensor
}

// sharedExpert computes layer il's shared expert on h, before its sigmoid
// gate, and the gate's input (one value per row).
func (m *Net) sharedExpert(il int, h Tensor) (shared, gateIn Tensor, err error) {
	c, b, w := &m.cfg, m.backend, &m.layers[il]
	T := h.Rows()
	gate := m.tensor(tSharedGate, T, w.shGate.Rows)
	up := m.tensor(tSharedUp, T, w.shUp.Rows)
	gateIn = m.tensor(tSharedIn, T, 1)
	shared = m.tensor(tShared, T, c.embed)
	for _, mm := range []struct {
		dst Tensor
		w   Weight
	}{{up, w.shUp}, {gate, w.shGate}, {gateIn, w.shInput}} {
		if err := b.MatMul(mm.dst, h, mm.w); err != nil {
			return nil, nil, err
		}
	}
	if err := b.SwiGLU(gate, gate, up); err != nil {
		return nil, nil, err
	}
	return shared, gateIn, b.MatMul(shared, gate, w.shDown)
}

// tensorKey names a tensor of a forward step.
type tensorKey uint8

const (
	tEmbed tensorKey = iota
	tNorm
	tMixed // the attention or DeltaNet block's output
	tQ
	tK
	tV
	tAttended
	tQKV
	tZ
	tAlpha
	tBeta
	tConv
	tCore
	tRouter
	tSharedGate
	tSharedUp
	tSharedIn
	tShared
	tLayerOut // and tLayerOut+1: layers alternate
	_
	tHookGated // the activation hook's gated shared expert
	tHookZero
	tLogits
	numTensorKeys
)

// tensor returns the step's tensor k, allocating it the first time (or
// when the shape differs: the last rows only, say). What a layer computes
// is dead once the layer has added it to its output, so layers reuse the
// same tensors; the backend runs operations in order, so a layer never
// overwrites what an earlier one has yet to read.
func (m *Net) tensor(k tensorKey, rows, cols int) Tensor {
	t := m.step[k]
	if t == nil || t.Rows() != rows || t.Cols() != cols {
		t = m.backend.NewTensor(rows, cols)
		m.step[k] = t
	}
	return t
}

// checkRouting verifies that every token of r routes to K distinct experts
// below n.
func checkRouting(r Routing, n int) error {
	for t := 0; t+r.K <= len(r.IDs); t += r.K {
		ids := r.IDs[t : t+r.K]
		for i, id := range ids {
			if id < 0 || int(id) >= n || slices.Contains(ids[:i], id) {
				return fmt.Errorf("%w: token %d routes to experts %v of %d", ErrInvalid, t/r.K, ids, n)
			}
		}
	}
	return nil
}

// observe hands an activation to the activation hook, if any.
func (m *Net) observe(name string, layer int, t Tensor) error {
	if m.opts.onActivation == nil {
		return nil
	}
	vals := make([]float32, t.Rows()*t.Cols())
	if err := m.backend.Read(vals, t); err != nil {
		return err
	}
	m.opts.onActivation(name, layer, t.Rows(), t.Cols(), vals)
	return nil
}
