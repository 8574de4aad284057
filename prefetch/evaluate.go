package prefetch

import (
	"fmt"

	"github.com/rotary-moe/rotary/profile"
)

// Recall replays a trace through a History and returns, for the routed
// layers after the first, the share of the experts each token selected that
// were among the predictor's top m for that layer: the recall@m that
// rotary.Stats.Prefetch reports at run time, without a runtime. The trace
// has no hidden states: predictors that need them fail (ErrNoHidden).
func Recall(t *profile.Trace, p Predictor, m int) (float64, error) {
	if m <= 0 {
		return 0, fmt.Errorf("%w: recall@%d", ErrInvalid, m)
	}
	id := t.Model()
	layers := t.RoutedLayers()
	h, err := NewHistory(layers)
	if err != nil {
		return 0, err
	}
	scores := make([]float32, id.Experts)
	var top, ids []int
	var ids32 []int32
	var hits, total int
	predFor := -1 // the layer top predicts
	for tok := range t.Tokens() {
		for _, l := range layers {
			ids32 = t.AppendExperts(ids32[:0], tok, l)
			if len(ids32) == 0 {
				continue
			}
			ids = ids[:0]
			for _, e := range ids32 {
				ids = append(ids, int(e))
			}
			if l == predFor {
				for _, e := range ids {
					for _, c := range top {
						if c == e {
							hits++
							break
						}
					}
				}
				total += len(ids)
			}
			predFor = -1
			if err := h.Observe(l, ids, nil); err != nil {
				return 0, err
			}
			if next := h.Next(l); next >= 0 {
				if err := p.Predict(h, l, next, scores); err != nil {
					return 0, err
				}
				top = topM(top, scores, min(m, len(scores)))
				predFor = next
			}
		}
	}
	if total == 0 {
		return 0, nil
	}
	return float64(hits) / float64(total), nil
}
