package prefetch

import (
	"fmt"
	"math"
)

// A Predictor scores the experts of the routed layer after one that has
// just routed the current token.
type Predictor interface {
	// Predict writes to scores, one per expert of layer next (the routed
	// layer after layer, the last one h observed), how likely the current
	// token is to select each there: non-negative, higher is likelier, on
	// any scale.
	Predict(h *History, layer, next int, scores []float32) error
}

// Part is one predictor of a combination and its weight.
type Part struct {
	Predictor Predictor
	// Weight is the part's weight at every layer LayerWeights does not give.
	Weight float32
	// LayerWeights are the part's weights by the (model) layer predicted;
	// layers past its end take Weight.
	LayerWeights []float32
}

func (p *Part) weight(layer int) float32 {
	if layer < len(p.LayerWeights) {
		return p.LayerWeights[layer]
	}
	return p.Weight
}

// Combined is a weighted sum of predictors: each part's scores are scaled to
// sum to one, then weighted by the layer's weight. Make one with Combine.
type Combined struct {
	parts   []Part
	scratch []float32
}

// Combine returns the weighted sum of parts. Weights must be finite and
// non-negative, with at least one part.
func Combine(parts ...Part) (*Combined, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no predictors to combine", ErrInvalid)
	}
	for i, p := range parts {
		if p.Predictor == nil {
			return nil, fmt.Errorf("%w: part %d has no predictor", ErrInvalid, i)
		}
		for _, w := range append([]float32{p.Weight}, p.LayerWeights...) {
			if !(w >= 0) || math.IsInf(float64(w), 0) {
				return nil, fmt.Errorf("%w: part %d has weight %v", ErrInvalid, i, w)
			}
		}
	}
	return &Combined{parts: parts}, nil
}

// Predict implements Predictor.
func (c *Combined) Predict(h *History, layer, next int, scores []float32) error {
	clear(scores)
	if cap(c.scratch) < len(scores) {
		c.scratch = make([]float32, len(scores))
	}
	s := c.scratch[:len(scores)]
	for i := range c.parts {
		p := &c.parts[i]
		w := p.weight(next)
		if w == 0 {
			continue
		}
		clear(s)
		if err := p.Predictor.Predict(h, layer, next, s); err != nil {
			return err
		}
		var sum float32
		for _, x := range s {
			sum += x
		}
		if sum <= 0 {
			continue
		}
		w /= sum
		for e, x := range s {
			scores[e] += w * x
		}
	}
	return nil
}

// topM writes to dst the indexes of the m largest scores, largest first,
// ties to the lower index, and returns it.
func topM(dst []int, scores []float32, m int) []int {
	dst = dst[:0]
	for e, x := range scores {
		if len(dst) == m && x <= scores[dst[m-1]] {
			continue
		}
		if len(dst) < m {
			dst = append(dst, e)
		} else {
			dst[m-1] = e
		}
		for i := len(dst) - 1; i > 0 && scores[dst[i]] > scores[dst[i-1]]; i-- {
			dst[i], dst[i-1] = dst[i-1], dst[i]
		}
	}
	return dst
}
