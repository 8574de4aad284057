package main

import (
	"fmt"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
)

// replayer feeds a trace's expert choices to the model in place of its
// router (model.WithRoutingReplay): position p uses the trace's token p
// modulo its length.
type replayer struct {
	t   *profile.Trace
	buf []int32
}

// newReplayer checks that t routes every MoE layer of m to m's top-k
// experts at every token.
func newReplayer(t *profile.Trace, m *experts.Model) (*replayer, error) {
	want, got := engine.ModelID(m), t.Model()
	if got.Layers != want.Layers || got.Experts != want.Experts || got.ExpertsUsed != want.ExpertsUsed {
		return nil, fmt.Errorf("the trace is of %d layers of top-%d of %d experts, the model has %d layers of top-%d of %d",
			got.Layers, got.ExpertsUsed, got.Experts, want.Layers, want.ExpertsUsed, want.Experts)
	}
	if t.Tokens() == 0 {
		return nil, fmt.Errorf("the trace has no tokens")
	}
	for _, layer := range m.MoELayers() {
		for tok := range t.Tokens() {
			if n := t.Len(tok, layer); n != want.ExpertsUsed {
				return nil, fmt.Errorf("token %d of layer %d routes to %d experts, the model to %d", tok, layer, n, want.ExpertsUsed)
			}
		}
	}
	return &replayer{t: t}, nil
}

// replay implements the routing replay hook.
func (p *replayer) replay(layer, pos int, r model.Routing) {
	for i := 0; i+r.K <= len(r.IDs); i += r.K {
		tok := (pos + i/r.K) % p.t.Tokens()
		p.buf = p.t.AppendExperts(p.buf[:0], tok, layer)
		copy(r.IDs[i:i+r.K], p.buf)
	}
}
