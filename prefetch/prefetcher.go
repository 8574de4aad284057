package prefetch

import (
	"fmt"
	"log/slog"

	"github.com/rotary-moe/rotary/rotary"
)

// Prefetcher moves the experts a predictor expects the next layer to route
// to while the current layer computes. A decoder calls Routed once per token
// and routed layer, right after that layer's Acquire, so that the layer's
// demand misses are on the copy stream before any prefetch: the prefetch
// copies queue behind them and run while the layer's experts compute.
//
// It names the predictor's top m experts (the prediction Stats.Prefetch
// scores) to rotary.Runtime.PrefetchN, which copies those that are not
// resident, as many as the byte budget allows, into slots of the next
// layer's plane whose experts the prediction does not name, that are not
// pinned and that no Set holds: the current layer's experts, in their own
// plane and held by the decoder's Set, are never touched. A Prefetcher is
// not safe for concurrent use: one decoder drives it.
type Prefetcher struct {
	rt     *rotary.Runtime
	pred   Predictor
	hist   *History
	log    *slog.Logger
	m      int
	budget int64   // bytes per token, 0: no limit
	share  int64   // budget per routed layer
	bytes  []int64 // [model layer]: an expert's bytes
	nexp   []int   // [model layer]: experts
	credit int64   // bytes the token may still move
	scores []float32
	top    []int
	err    error
}

// Option configures a Prefetcher. Options record their values; New checks
// them (ErrInvalid, naming the option).
type Option func(*config)

type config struct {
	m      int
	budget int64
	log    *slog.Logger
	set    map[string]bool // the options given
}

// WithCandidates sets how many experts each prediction names (default: the
// layer's top-k). More raise recall at the price of precision and bytes.
func WithCandidates(m int) Option {
	return func(c *config) { c.m, c.set["WithCandidates"] = m, true }
}

// WithBudget bounds the bytes prefetched per token (default: no bound but
// the candidates). It is shared evenly among the predictions (one after each
// routed layer but the last), and what one leaves unused carries over to the
// later ones of the token: each moves as many experts as its credit pays
// for.
//
// It is what keeps prefetches behind demand misses: copies are served in
// the order queued, so a prefetch that is still copying when the next
// layer's misses come delays them. Size it to what PCIe moves while the
// layers compute, less the misses. Replaying the DeepSeek-V2-Lite trace at
// 16 slots (simulate, H200 timing) where misses already keep PCIe busy,
// the top-8 without a budget lifts the hit rate from 47% to 68% but drops
// 68 tokens/s to 51; a budget of one expert per layer gives 54% and 74
// tokens/s.
func WithBudget(bytesPerToken int64) Option {
	return func(c *config) { c.budget = bytesPerToken }
}

// WithLogger sets the logger the error that turns prefetching off goes to
// (default: none).
func WithLogger(log *slog.Logger) Option {
	return func(c *config) { c.log, c.set["WithLogger"] = log, true }
}

// New returns a prefetcher that drives rt's prefetches with p's predictions.
func New(rt *rotary.Runtime, p Predictor, opts ...Option) (*Prefetcher, error) {
	if rt == nil || p == nil {
		return nil, fmt.Errorf("%w: New needs a runtime and a predictor", ErrInvalid)
	}
	c := config{log: slog.New(slog.DiscardHandler), set: map[string]bool{}}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	switch {
	case c.set["WithCandidates"] && c.m <= 0:
		return nil, fmt.Errorf("%w: WithCandidates(%d) is not positive", ErrInvalid, c.m)
	case c.budget < 0:
		return nil, fmt.Errorf("%w: WithBudget(%d) is negative", ErrInvalid, c.budget)
	case c.set["WithLogger"] && c.log == nil:
		return nil, fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
	}
	plan := rt.Plan()
	if len(plan.Layers) == 0 {
		return nil, fmt.Errorf("%w: the runtime's model routes no layer", ErrInvalid)
	}
	var layers []int
	last := plan.Layers[len(plan.Layers)-1].Layer
	f := &Prefetcher{rt: rt, pred: p, log: c.log, m: c.m, budget: c.budget,
		bytes: make([]int64, last+1), nexp: make([]int, last+1)}
	for _, l := range plan.Layers {
		layers = append(layers, l.Layer)
		f.bytes[l.Layer], f.nexp[l.Layer] = l.ExpertBytes, l.Experts
		if c.m == 0 {
			f.m = max(f.m, l.TopK)
		}
		if len(f.scores) < l.Experts {
			f.scores = make([]float32, l.Experts)
		}
	}
	var err error
	if f.hist, err = NewHistory(layers); err != nil {
		return nil, err
	}
	// The last routed layer predicts nothing: the others share the budget.
	f.share = f.budget / int64(max(len(layers)-1, 1))
	f.top = make([]int, 0, f.m)
	return f, nil
}

// Routed tells the prefetcher that the current token selected ids at layer,
// whose input hidden state was hidden (nil if the caller has none; it is
// read during the call only), and prefetches the next routed layer's
// predicted experts. A layer at or before the last one seen starts a new
// token. Errors do not stop the caller: the first one (the predictor's, or
// the runtime's) is logged, kept for Err, and turns prefetching off.
func (f *Prefetcher) Routed(layer int, ids []int, hidden []float32) {
	if f.err != nil {
		return
	}
	if err := f.routed(layer, ids, hidden); err != nil {
		f.err = fmt.Errorf("prefetch: after layer %d: %w", layer, err)
		f.log.Warn("prefetch: turned off", "err", f.err)
	}
}

func (f *Prefetcher) routed(layer int, ids []int, hidden []float32) error {
	if err := f.hist.Observe(layer, ids, hidden); err != nil {
		return err
	}
	if layer == f.hist.layers[0] {
		f.credit = 0 // a new token
	}
	f.credit += f.share
	next := f.hist.Next(layer)
	if next < 0 {
		return nil
	}
	scores := f.scores[:f.nexp[next]]
	if err := f.pred.Predict(f.hist, layer, next, scores); err != nil {
		return err
	}
	f.top = topM(f.top, scores, min(f.m, len(scores)))
	n := len(f.top)
	if f.budget > 0 {
		n = int(f.credit / f.bytes[next])
	}
	moved, err := f.rt.PrefetchN(next, f.top, n)
	f.credit -= int64(moved) * f.bytes[next]
	return err
}

// Err returns the error that turned prefetching off, or nil while it is on.
func (f *Prefetcher) Err() error { return f.err }
