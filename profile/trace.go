package profile

import (
	"fmt"
	"math"
	"slices"
)

// noExpert fills the unused id slots of a (token, layer) record in memory and in
// the binary encoding.
const noExpert = 0xFFFF

// A Trace is a recorded routing sequence: for each token and each layer, the
// experts the router selected (at most the model's top-k, in router order) and
// optionally their routing weights. A layer a token did not pass through a router
// (a dense layer, or a token missing from one layer's stream) has no experts.
//
// Tokens may be grouped into segments (prompts, or the prefill and decode
// phases of a prompt); a segment runs from its Start to the next segment's
// Start. Traces of several prompts are stored concatenated in order.
//
// Storage is flat and compact (a byte count and top-k uint16 ids per token and
// layer, plus float32 weights if present), so a 94k-token, 27-layer, top-6
// trace takes about 33 MB.
type Trace struct {
	model    ModelID
	weights  bool
	segments []Segment
	tokens   int
	counts   []uint8   // [token][layer]: number of selected experts
	ids      []uint16  // [token][layer][k]: expert ids, noExpert past counts
	wts      []float32 // [token][layer][k], nil without weights
	dropped  int64     // bytes of a cut-off last record ReadTrace dropped
}

// A Segment names a run of consecutive tokens of a trace.
type Segment struct {
	Name  string `json:"segment"`
	Phase string `json:"phase,omitempty"` // "prefill", "decode" or empty
	Start int    `json:"-"`               // index of its first token
}

// A TraceOption configures NewTrace.
type TraceOption interface{ applyTrace(*traceConfig) }

type traceConfig struct {
	weights  bool
	capacity int
}

type traceOptionFunc func(*traceConfig)

func (f traceOptionFunc) applyTrace(c *traceConfig) { f(c) }

// WithWeights makes the trace store routing weights next to expert ids.
func WithWeights() TraceOption {
	return traceOptionFunc(func(c *traceConfig) { c.weights = true })
}

// WithTokenCapacity reserves room for the given number of tokens (>= 0).
func WithTokenCapacity(tokens int) TraceOption {
	return traceOptionFunc(func(c *traceConfig) { c.capacity = tokens })
}

// NewTrace returns an empty trace of model, which must pass ModelID.Validate.
func NewTrace(model ModelID, opts ...TraceOption) (*Trace, error) {
	if err := model.Validate(); err != nil {
		return nil, err
	}
	var c traceConfig
	for _, o := range opts {
		if o != nil {
			o.applyTrace(&c)
		}
	}
	if c.capacity < 0 {
		return nil, fmt.Errorf("%w: WithTokenCapacity(%d) is negative", ErrInvalid, c.capacity)
	}
	t := &Trace{model: model, weights: c.weights}
	if c.capacity > 0 && c.capacity <= 1<<28/(model.Layers*model.ExpertsUsed) {
		rec := c.capacity * model.Layers
		t.counts = make([]uint8, 0, rec)
		t.ids = make([]uint16, 0, rec*model.ExpertsUsed)
		if t.weights {
			t.wts = make([]float32, 0, rec*model.ExpertsUsed)
		}
	}
	return t, nil
}

// Model returns the identity of the traced model.
func (t *Trace) Model() ModelID { return t.model }

// Dropped returns how many bytes at the end of the input ReadTrace (or
// OpenTrace) dropped because they did not form a complete record: a trace
// whose writer was killed mid-record. It is 0 for a complete trace and for
// a trace built in memory.
func (t *Trace) Dropped() int64 { return t.dropped }

// Tokens returns the number of tokens.
func (t *Trace) Tokens() int { return t.tokens }

// HasWeights reports whether the trace stores routing weights.
func (t *Trace) HasWeights() bool { return t.weights }

// Segments returns the segments in token order. The slice is the trace's own:
// do not modify it.
func (t *Trace) Segments() []Segment { return t.segments }

// SegmentEnd returns the token index one past the end of segment i.
func (t *Trace) SegmentEnd(i int) int {
	if i+1 < len(t.segments) {
		return t.segments[i+1].Start
	}
	return t.tokens
}

// StartSegment starts a segment at the next token to be added.
func (t *Trace) StartSegment(name, phase string) {
	t.segments = append(t.segments, Segment{Name: name, Phase: phase, Start: t.tokens})
}

// AddToken appends a token with no routing in any layer and returns its index.
func (t *Trace) AddToken() int {
	k := t.model.ExpertsUsed
	rec := t.model.Layers
	t.counts = append(t.counts, make([]uint8, rec)...)
	n := len(t.ids)
	t.ids = slices.Grow(t.ids, rec*k)[:n+rec*k]
	for i := n; i < len(t.ids); i++ {
		t.ids[i] = noExpert
	}
	if t.weights {
		t.wts = append(t.wts, make([]float32, rec*k)...)
	}
	t.tokens++
	return t.tokens - 1
}

// Set stores the experts (and routing weights) selected for token at layer,
// replacing what was there. ids must be distinct expert ids in [0, Experts), at most
// ExpertsUsed of them; weights is nil or as long as ids, and finite. Weights are ignored when
// the trace has none, and stored as zeros when the trace has weights and weights
// is nil.
func (t *Trace) Set(token, layer int, ids []int32, weights []float32) error {
	if err := t.checkIndex(token, layer); err != nil {
		return err
	}
	err := checkRoute(t.model.Experts, t.model.ExpertsUsed, ids, weights)
	if err == nil {
		err = checkFinite(weights)
	}
	if err != nil {
		return fmt.Errorf("%w (token %d, layer %d)", err, token, layer)
	}
	r := token*t.model.Layers + layer
	k := t.model.ExpertsUsed
	t.counts[r] = uint8(len(ids))
	dst := t.ids[r*k : (r+1)*k]
	for i := range dst {
		if i < len(ids) {
			dst[i] = uint16(ids[i])
		} else {
			dst[i] = noExpert
		}
	}
	if t.weights {
		w := t.wts[r*k : (r+1)*k]
		clear(w)
		copy(w, weights)
	}
	return nil
}

func (t *Trace) checkIndex(token, layer int) error {
	if token < 0 || token >= t.tokens {
		return fmt.Errorf("%w: token %d of a %d-token trace", ErrOutOfRange, token, t.tokens)
	}
	if layer < 0 || layer >= t.model.Layers {
		return fmt.Errorf("%w: layer %d of a %d-layer model", ErrOutOfRange, layer, t.model.Layers)
	}
	return nil
}

// checkRoute validates one routing decision against a model with the given
// number of experts and top-k. It is on the recorder's hot path.
func checkRoute(experts, topK int, ids []int32, weights []float32) error {
	if len(ids) > topK {
		return fmt.Errorf("%w: %d experts selected, model uses at most %d", ErrOutOfRange, len(ids), topK)
	}
	if weights != nil && len(weights) != len(ids) {
		return fmt.Errorf("%w: %d weights for %d experts", ErrInvalid, len(weights), len(ids))
	}
	// A router never selects an expert twice; a repeat would be counted twice
	// and read as a reuse at distance 0. seen is a 64-bit filter of the ids so
	// far: only a collision in it costs a scan.
	var seen uint64
	for i, id := range ids {
		if uint32(id) >= uint32(experts) {
			return fmt.Errorf("%w: expert %d of %d", ErrOutOfRange, id, experts)
		}
		bit := uint64(1) << (uint32(id) & 63)
		if seen&bit != 0 && slices.Contains(ids[:i], id) {
			return fmt.Errorf("%w: expert %d selected twice", ErrInvalid, id)
		}
		seen |= bit
	}
	return nil
}

// checkFinite rejects NaN and infinite routing weights, which no encoding can
// carry faithfully (JSON has no NaN).
func checkFinite(weights []float32) error {
	for _, x := range weights {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: routing weight %v", ErrInvalid, x)
		}
	}
	return nil
}

// Len returns how many experts token selected at layer (0: not routed there),
// or 0 when token or layer is out of range.
func (t *Trace) Len(token, layer int) int {
	if t.checkIndex(token, layer) != nil {
		return 0
	}
	return int(t.counts[token*t.model.Layers+layer])
}

// AppendExperts appends the experts token selected at layer to dst and returns
// the extended slice; nothing is appended when token or layer is out of range.
func (t *Trace) AppendExperts(dst []int32, token, layer int) []int32 {
	n := t.Len(token, layer)
	if n == 0 {
		return dst
	}
	r := token*t.model.Layers + layer
	for _, id := range t.ids[r*t.model.ExpertsUsed:][:n] {
		dst = append(dst, int32(id))
	}
	return dst
}

// AppendWeights appends the routing weights of token's experts at layer to dst
// (nothing when the trace has no weights).
func (t *Trace) AppendWeights(dst []float32, token, layer int) []float32 {
	n := t.Len(token, layer)
	if n == 0 || !t.weights {
		return dst
	}
	r := token*t.model.Layers + layer
	return append(dst, t.wts[r*t.model.ExpertsUsed:][:n]...)
}

// RoutedLayers returns the layers that route any token of the trace, in
// order.
func (t *Trace) RoutedLayers() []int {
	var out []int
	for l := range t.model.Layers {
		for tok := range t.tokens {
			if t.Len(tok, l) > 0 {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// Subset returns a new trace holding the segments for which keep returns true,
// concatenated in order. Tokens before the first segment are dropped.
func (t *Trace) Subset(keep func(Segment) bool) *Trace {
	out := &Trace{model: t.model, weights: t.weights}
	rec := t.model.Layers
	k := t.model.ExpertsUsed
	for i, s := range t.segments {
		if !keep(s) {
			continue
		}
		start, end := s.Start, t.SegmentEnd(i)
		out.segments = append(out.segments, Segment{Name: s.Name, Phase: s.Phase, Start: out.tokens})
		out.counts = append(out.counts, t.counts[start*rec:end*rec]...)
		out.ids = append(out.ids, t.ids[start*rec*k:end*rec*k]...)
		if t.weights {
			out.wts = append(out.wts, t.wts[start*rec*k:end*rec*k]...)
		}
		out.tokens += end - start
	}
	return out
}

// Readers bound the trace they build by the input they read it from. A trace
// stores every (token, layer) at full width, top-k ids (and weights) whether
// the layer was routed or not, while a text encoding spends as little as three
// bytes on an unrouted layer ("[],"): without a bound, a header announcing a
// wide model followed by empty lists would turn megabytes of text into
// gigabytes of trace. Real traces stay well inside the bound: their routed
// layers take about as many bytes of text as of trace.
const (
	maxTraceExpansion   = 32       // bytes of trace per byte of input
	traceExpansionSlack = 32 << 20 // bytes any input may build
)

// tokenBytes is the memory one token takes in a trace of m.
func tokenBytes(m ModelID, weights bool) int64 {
	per := 1 + 2*m.ExpertsUsed // count and ids
	if weights {
		per += 4 * m.ExpertsUsed
	}
	return int64(m.Layers) * int64(per)
}

// checkGrowth reports whether a reader that has read input bytes may add
// tokens tokens to a trace of m: an error when they would take more than
// maxTraceExpansion times the input (plus traceExpansionSlack).
func checkGrowth(m ModelID, weights bool, tokens int, input int64) error {
	size, limit := int64(tokens)*tokenBytes(m, weights), maxTraceExpansion*input+traceExpansionSlack
	if size > limit {
		return fmt.Errorf("%d tokens of %d bytes from %d bytes of input: more than %d× its size",
			tokens, tokenBytes(m, weights), input, maxTraceExpansion)
	}
	return nil
}
