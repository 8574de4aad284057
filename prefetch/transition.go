package prefetch

import (
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/profile"
)

// Transition predicts a layer's experts from the experts the same token
// selected at the routed layers before it, as a product of experts: the
// score of expert j is
//
//	exp(Σ_d w_d Σ_i log(P_d(j | i) + ε) + r·[the previous token selected j here])
//
// over the experts i the token selected at the d-th routed layer before (d
// = 1, 2; weights 1 and 0.5), with a bonus r = 2 for recency. The
// conditional probabilities are counted over a router profile's tokens
// (profile.Layer.Transitions): a table of experts² bytes per routed layer and
// depth. Predict only reads them: one Transition serves concurrent users.
// On the DeepSeek-V2-Lite trace, fitted on half the prompts, the
// product recalls 50.7% of the next layer's top-6 in its top 6, the plain
// best-weighted sum Σ_d w_d Σ_i P_d(j | i) with recency 49.7%.
type Transition struct {
	model   profile.ModelID
	experts int
	// p[d-1][layer][i*experts+j]: log(P(j at layer | i at the d-th routed
	// layer before) + ε) in steps of logStep, nil for a layer without one.
	// A byte each, not a float: a prediction reads 2k rows of them, from
	// tables too large for the caches (20 MB of floats for Qwen3.5-35B-A3B),
	// and a quarter of the bytes costs a quarter of the misses.
	p       [profile.TransitionDepth][][]uint8
	weights [profile.TransitionDepth]float32
	recency float32
}

// TransitionOption configures a Transition. Options record their values;
// NewTransition checks them (ErrInvalid).
type TransitionOption func(*Transition)

// WithDepthWeights sets the weight of the layer before (default 1) and of
// the one before that (default 0.5).
func WithDepthWeights(before, second float32) TransitionOption {
	return func(t *Transition) { t.weights = [profile.TransitionDepth]float32{before, second} }
}

// WithRecency sets the log-score added to the experts the previous token
// selected at the layer (default 2: e² times likelier).
func WithRecency(w float32) TransitionOption {
	return func(t *Transition) { t.recency = w }
}

// finite checks that the weights are finite and non-negative.
func finite(what string, ws ...float32) error {
	for _, w := range ws {
		if !(w >= 0) || math.IsInf(float64(w), 0) {
			return fmt.Errorf("%w: %s %v", ErrInvalid, what, w)
		}
	}
	return nil
}

// NewTransition learns the statistics from a profile recorded with
// profile.WithTransitions (ErrNoTransitions otherwise). Check that the
// profile is of the model it will predict for (Model, profile.ModelID.Check).
func NewTransition(p *profile.Profile, opts ...TransitionOption) (*Transition, error) {
	if !p.HasTransitions() {
		return nil, fmt.Errorf("%w (profile of %s, workload %q)", ErrNoTransitions, p.Model, p.Workload)
	}
	n := p.Model.Experts
	t := &Transition{model: p.Model, experts: n, weights: [profile.TransitionDepth]float32{1, 0.5}, recency: 2}
	for _, o := range opts {
		if o != nil {
			o(t)
		}
	}
	if err := finite("WithDepthWeights", t.weights[:]...); err != nil {
		return nil, err
	}
	if err := finite("WithRecency", t.recency); err != nil {
		return nil, err
	}
	for d := range t.p {
		t.p[d] = make([][]uint8, len(p.Layers))
		for l := range p.Layers {
			counts := p.Layers[l].Transitions
			if counts == nil {
				continue
			}
			var probs []uint8
			for i := range n {
				row := counts[d][i*n : (i+1)*n]
				var sum uint64
				for _, c := range row {
					sum += c
				}
				if sum == 0 {
					continue
				}
				if probs == nil {
					probs = make([]uint8, n*n)
				}
				for j, c := range row {
					probs[i*n+j] = uint8(math.Round(math.Log(float64(c)/float64(sum)+transitionFloor) / logStep))
				}
			}
			t.p[d][l] = probs
		}
	}
	return t, nil
}

// transitionFloor is ε, the probability given to a transition never seen,
// so that one unseen pair does not veto an expert.
const transitionFloor = 0.01

// logStep is the step of the tables' log-probabilities: 255 steps from
// log(ε + 1) down to log(ε), 1.8% apart in probability.
var logStep = math.Log(transitionFloor) / 255

// FitTransition learns the statistics from a trace (recorded through a
// profile.Recorder, as a profile would have them).
func FitTransition(tr *profile.Trace, opts ...TransitionOption) (*Transition, error) {
	rec, err := profile.NewRecorder(tr.Model(), profile.WithTransitions())
	if err != nil {
		return nil, fmt.Errorf("prefetch: fitting transitions: %w", err)
	}
	if err := rec.RecordTrace(tr); err != nil {
		return nil, fmt.Errorf("prefetch: fitting transitions: %w", err)
	}
	return NewTransition(rec.Profile(), opts...)
}

// Model returns the model of the profile the statistics come from.
func (t *Transition) Model() profile.ModelID { return t.model }

// Predict implements Predictor.
func (t *Transition) Predict(h *History, layer, next int, scores []float32) error {
	n := t.experts
	if len(scores) != n || next < 0 || next >= len(t.p[0]) {
		return fmt.Errorf("%w: %d scores for layer %d of a model of %d layers and %d experts", ErrInvalid, len(scores), next, len(t.p[0]), n)
	}
	clear(scores)
	for d := range t.p {
		probs, w := t.p[d][next], t.weights[d]
		if probs == nil || w == 0 {
			continue
		}
		ids := h.Current(h.Before(next, d+1))
		for _, i := range ids {
			if i < 0 || i >= n {
				return fmt.Errorf("%w: expert %d of %d", ErrInvalid, i, n)
			}
		}
		addRows(scores, w*float32(logStep), probs, ids)
	}
	if t.recency > 0 {
		for _, j := range h.Previous(next) {
			if j >= 0 && j < n {
				scores[j] += t.recency
			}
		}
	}
	top := float32(math.Inf(-1))
	for _, x := range scores {
		top = max(top, x)
	}
	for j, x := range scores {
		scores[j] = expNeg(x - top)
	}
	return nil
}

// addRows adds c times rows ids of the table tab (len(s) bytes each) to s,
// four rows at a time: one integer sum, conversion and pass over s for
// four rows instead of four.
func addRows(s []float32, c float32, tab []uint8, ids []int) {
	n := len(s)
	for ; len(ids) >= 4; ids = ids[4:] {
		r0, r1, r2, r3 := tab[ids[0]*n:][:n], tab[ids[1]*n:][:n], tab[ids[2]*n:][:n], tab[ids[3]*n:][:n]
		for j := range s {
			s[j] += c * float32(int32(r0[j])+int32(r1[j])+int32(r2[j])+int32(r3[j]))
		}
	}
	for _, i := range ids {
		r := tab[i*n:][:n]
		for j := range s {
			s[j] += c * float32(r[j])
		}
	}
}

// expNeg approximates e^x for x <= 0 within 6%, monotonically, by writing
// x/ln 2 into a float's exponent and mantissa (Schraudolph's method): a
// prediction's ranking and rough weights need no more, and math.Exp on 256
// experts would cost a few µs of the per-layer budget.
func expNeg(x float32) float32 {
	const scale = (1 << 23) / math.Ln2
	if x < -80 {
		return 0
	}
	return math.Float32frombits(uint32(int32(x*scale) + 127<<23))
}
