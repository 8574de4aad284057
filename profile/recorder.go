package profile

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

// A Recorder accumulates router statistics while a model runs. Call Record once
// per layer per token with the router's choice; take a Profile at any time.
//
// Record is safe for concurrent use. Each layer has its own mutex-guarded
// statistics, so goroutines recording different layers never contend, and one
// inference goroutine walking the layers takes one uncontended lock per call:
// one atomic pair per call instead of the 3-4 atomic read-modify-writes per
// selected expert (count, weight mass by CAS loop, last use, histogram) that a
// lock-free design needs, 25-30 for top-8. Calls for the same layer are serialised, which is
// what gives "tokens since last use" a meaning: a layer's tokens are numbered
// in the order its Record calls take the lock.
type Recorder struct {
	model    ModelID
	workload string
	layers   []layerRecorder
	raw      *rawTrace // nil unless WithTrace
}

// layerRecorder is one layer's state; the padding keeps two layers' mutexes
// and counters out of one cache line.
type layerRecorder struct {
	mu       sync.Mutex
	tokens   int64
	weighted int64
	firstUse uint64
	experts  []expertStat
	reuse    [ReuseBuckets]uint64
	pairs    []uint32 // co-activation upper triangle, nil if off
	// With WithTransitions: trans[d-1][i*E+j] (see Layer.Transitions),
	// and the last token's selection, for the layers after this one.
	trans   [TransitionDepth][]uint32
	lastIDs []int32
	routed  atomic.Bool // Record was called for the layer
	_       [64]byte
}

// expertStat keeps what Record touches for one expert together (16 bytes).
// Count and token stamp are 32-bit: a recorder meant for more than 4·10⁹ tokens
// per layer would miscount (no panic); that is over a year at 100 tokens/s.
type expertStat struct {
	count uint32
	last  uint32 // 1 + the last token that selected the expert, 0 if none
	mass  float64
}

// An Option configures a Recorder.
type Option interface{ apply(*recorderConfig) }

type recorderConfig struct {
	coActivation bool
	transitions  bool
	traceRecords int
	workload     string
}

type optionFunc func(*recorderConfig)

func (f optionFunc) apply(c *recorderConfig) { f(c) }

// WithCoActivation makes the recorder count, per layer, how often each pair of
// experts is selected by the same token. It costs k(k-1)/2 increments per call
// and 4·E(E-1) bytes per layer.
func WithCoActivation() Option {
	return optionFunc(func(c *recorderConfig) { c.coActivation = true })
}

// WithTransitions makes the recorder count, per layer, how often each expert
// of the routed layer before (and of the one before that) is followed by each
// expert of this one in the same token (Layer.Transitions), which
// predicting the next layer's experts needs. A token is the n-th Record call
// of each layer, as an inference loop walking the layers in order makes them.
// It costs two more uncontended locks and 2k² increments per call, and
// 8·E² bytes per layer.
func WithTransitions() Option {
	return optionFunc(func(c *recorderConfig) { c.transitions = true })
}

// WithTrace makes the recorder keep the first maxRecords Record calls verbatim
// (a record is one layer of one token; maxRecords >= 0); see Recorder.Trace.
// The storage is allocated up front so Record never allocates.
func WithTrace(maxRecords int) Option {
	return optionFunc(func(c *recorderConfig) { c.traceRecords = maxRecords })
}

// WithWorkload sets the workload label of the profiles the recorder produces.
func WithWorkload(label string) Option {
	return optionFunc(func(c *recorderConfig) { c.workload = label })
}

// NewRecorder returns a recorder for model, which must pass ModelID.Validate.
func NewRecorder(model ModelID, opts ...Option) (*Recorder, error) {
	if err := model.Validate(); err != nil {
		return nil, err
	}
	var c recorderConfig
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.traceRecords < 0 {
		return nil, fmt.Errorf("%w: WithTrace(%d) is negative", ErrInvalid, c.traceRecords)
	}
	r := &Recorder{model: model, workload: c.workload, layers: make([]layerRecorder, model.Layers)}
	for i := range r.layers {
		l := &r.layers[i]
		l.experts = make([]expertStat, model.Experts)
		if c.coActivation {
			l.pairs = make([]uint32, pairCount(model.Experts))
		}
		if c.transitions {
			for d := range l.trans {
				l.trans[d] = make([]uint32, model.Experts*model.Experts)
			}
			l.lastIDs = make([]int32, 0, model.ExpertsUsed)
		}
	}
	if c.traceRecords > 0 {
		r.raw = newRawTrace(c.traceRecords, model.ExpertsUsed)
	}
	return r, nil
}

// Model returns the model the recorder was made for.
func (r *Recorder) Model() ModelID { return r.model }

// Record adds one token's routing at layer: the selected expert ids (at most
// ExpertsUsed distinct ids in [0, Experts)) and their routing weights (nil, or
// one per id; they are summed unchecked, so pass finite ones). It does not
// allocate. Invalid input is an error (ErrOutOfRange or ErrInvalid) and
// records nothing.
func (r *Recorder) Record(layer int, ids []int32, weights []float32) error {
	if layer < 0 || layer >= len(r.layers) {
		return fmt.Errorf("%w: layer %d of a %d-layer model", ErrOutOfRange, layer, len(r.layers))
	}
	if err := checkRoute(r.model.Experts, r.model.ExpertsUsed, ids, weights); err != nil {
		return fmt.Errorf("%w (layer %d)", err, layer)
	}
	l := &r.layers[layer]
	var before [TransitionDepth][]int32
	if l.trans[0] != nil {
		// Read the layers before under their own locks, never two at once.
		var buf [TransitionDepth][maxTopK + 1]int32
		before = r.before(layer, &buf)
	}
	l.mu.Lock()
	tok := l.tokens
	l.tokens++
	if weights != nil {
		l.weighted++
		weights = weights[:len(ids)]
	}
	for i, id := range ids {
		e := &l.experts[id]
		e.count++
		if e.last == 0 {
			l.firstUse++
		} else {
			l.reuse[reuseBucket(int64(tok)+1-int64(e.last))]++
		}
		e.last = uint32(tok + 1)
		if weights != nil {
			e.mass += float64(weights[i])
		}
	}
	if l.pairs != nil {
		n := len(l.experts)
		for i, a := range ids {
			for _, b := range ids[i+1:] {
				lo, hi := int(a), int(b)
				if lo > hi {
					lo, hi = hi, lo
				}
				l.pairs[pairIndex(lo, hi, n)]++
			}
		}
	}
	if l.trans[0] != nil {
		n := len(l.experts)
		for d, prev := range before {
			// Only the layer's own token: the one before must have recorded
			// exactly as many tokens, this one included.
			if prev == nil || int64(prev[len(prev)-1]) != tok {
				continue
			}
			for _, a := range prev[:len(prev)-1] {
				row := l.trans[d][int(a)*n : int(a)*n+n]
				for _, b := range ids {
					row[b]++
				}
			}
		}
		l.lastIDs = append(l.lastIDs[:0], ids...)
		l.routed.Store(true)
	}
	if r.raw != nil {
		r.raw.add(layer, tok, ids, weights)
	}
	l.mu.Unlock()
	return nil
}

// maxTopK is the largest top-k whose selections the layers before are read
// into a buffer on the stack for (larger ones allocate): a trace's limit.
const maxTopK = 255

// before returns, for d = 1..TransitionDepth, the last selection of the d-th
// routed layer before layer, followed by that selection's token number (nil
// where there is none), read into buf.
func (r *Recorder) before(layer int, buf *[TransitionDepth][maxTopK + 1]int32) [TransitionDepth][]int32 {
	var out [TransitionDepth][]int32
	d := 0
	for j := layer - 1; j >= 0 && d < TransitionDepth; j-- {
		src := &r.layers[j]
		if !src.routed.Load() {
			continue
		}
		src.mu.Lock()
		b := append(append(buf[d][:0], src.lastIDs...), int32(src.tokens-1))
		src.mu.Unlock()
		out[d] = b
		d++
	}
	return out
}

// reuseBucket returns the histogram bucket of reuse distance d >= 1.
func reuseBucket(d int64) int {
	return min(bits.Len64(uint64(d))-1, ReuseBuckets-1)
}

// RecordTrace records every routed (token, layer) of t in token order, as an
// inference loop would. t must be of the recorder's model (ErrModelMismatch).
func (r *Recorder) RecordTrace(t *Trace) error {
	if err := r.model.Check(t.Model()); err != nil {
		return err
	}
	ids := make([]int32, 0, r.model.ExpertsUsed)
	var weights []float32
	if t.HasWeights() {
		weights = make([]float32, 0, r.model.ExpertsUsed)
	}
	for tok := range t.Tokens() {
		for layer := range r.model.Layers {
			if t.Len(tok, layer) == 0 {
				continue
			}
			ids = t.AppendExperts(ids[:0], tok, layer)
			if weights != nil {
				weights = t.AppendWeights(weights[:0], tok, layer)
			}
			if err := r.Record(layer, ids, weights); err != nil {
				return err
			}
		}
	}
	return nil
}

// lockAll takes every layer's lock, in layer order (Record holds at most one,
// so this cannot deadlock), for a snapshot consistent across layers.
func (r *Recorder) lockAll() {
	for i := range r.layers {
		r.layers[i].mu.Lock()
	}
}

func (r *Recorder) unlockAll() {
	for i := range r.layers {
		r.layers[i].mu.Unlock()
	}
}

// Profile returns a snapshot of the statistics so far. Recording may go on.
func (r *Recorder) Profile() *Profile {
	p := newProfile(r.model, false)
	p.Workload = r.workload
	r.lockAll()
	defer r.unlockAll()
	for i := range r.layers {
		src, dst := &r.layers[i], &p.Layers[i]
		dst.Tokens = src.tokens
		dst.WeightedTokens = src.weighted
		dst.FirstUse = src.firstUse
		for e, st := range src.experts {
			dst.Counts[e] = uint64(st.count)
			dst.Mass[e] = st.mass
		}
		copy(dst.Reuse, src.reuse[:])
		if src.trans[0] != nil {
			dst.Transitions = make([][]uint64, TransitionDepth)
			for d, tr := range src.trans {
				dst.Transitions[d] = make([]uint64, len(tr))
				for i, c := range tr {
					dst.Transitions[d][i] = uint64(c)
				}
			}
		}
		if src.pairs != nil {
			dst.CoActivation = make([]uint64, len(src.pairs))
			for i, c := range src.pairs {
				dst.CoActivation[i] = uint64(c)
			}
		}
		p.Tokens = max(p.Tokens, src.tokens)
	}
	return p
}

// Trace returns the records kept by WithTrace as a trace: record n of a layer
// becomes token n at that layer. Records past the limit were dropped, so the
// last tokens may miss some layers. It returns nil without WithTrace.
func (r *Recorder) Trace() *Trace {
	if r.raw == nil {
		return nil
	}
	r.lockAll()
	defer r.unlockAll()
	return r.raw.trace(r.model)
}

// rawTrace keeps the first records verbatim in preallocated arrays. A writer
// claims a slot with an atomic counter while holding its layer's lock, so a
// reader holding every layer lock sees only complete records.
type rawTrace struct {
	next    atomic.Int64
	k       int
	layer   []uint16
	token   []int64
	count   []uint8
	weighed []bool
	ids     []uint16  // [record][k]
	wts     []float32 // [record][k]
}

func newRawTrace(records, k int) *rawTrace {
	return &rawTrace{
		k:       k,
		layer:   make([]uint16, records),
		token:   make([]int64, records),
		count:   make([]uint8, records),
		weighed: make([]bool, records),
		ids:     make([]uint16, records*k),
		wts:     make([]float32, records*k),
	}
}

func (t *rawTrace) add(layer int, token int64, ids []int32, weights []float32) {
	slot := t.next.Add(1) - 1
	if slot >= int64(len(t.layer)) {
		return
	}
	t.layer[slot] = uint16(layer)
	t.token[slot] = token
	t.count[slot] = uint8(len(ids))
	t.weighed[slot] = weights != nil
	for i, id := range ids {
		t.ids[int(slot)*t.k+i] = uint16(id)
	}
	copy(t.wts[int(slot)*t.k:], weights)
}

func (t *rawTrace) trace(m ModelID) *Trace {
	n := int(min(t.next.Load(), int64(len(t.layer))))
	tokens := 0
	weighted := false
	for i := range n {
		tokens = max(tokens, int(t.token[i])+1)
		weighted = weighted || t.weighed[i]
	}
	var opts []TraceOption
	if weighted {
		opts = append(opts, WithWeights())
	}
	tr, _ := NewTrace(m, append(opts, WithTokenCapacity(tokens))...) // m was validated by NewRecorder
	for range tokens {
		tr.AddToken()
	}
	ids := make([]int32, t.k)
	for i := range n {
		c := int(t.count[i])
		for j := range c {
			ids[j] = int32(t.ids[i*t.k+j])
		}
		var w []float32
		if t.weighed[i] {
			w = t.wts[i*t.k : i*t.k+c]
		}
		// The record passed checkRoute in Record, so Set cannot fail.
		_ = tr.Set(int(t.token[i]), int(t.layer[i]), ids[:c], w)
	}
	return tr
}
