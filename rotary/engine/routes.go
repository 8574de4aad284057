package engine

import (
	"fmt"
	"slices"

	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Routes passes the routing the model computes (Hook, for
// model.WithRoutingHook) to a profile.Recorder, which counts it at once, and
// to a profile.TraceWriter, which takes whole tokens: Routes keeps each
// token's layers until Flush, called after every forward step, writes them.
// Either sink may be nil. It is used by one goroutine, like the model. A nil
// *Routes records nothing (its StartSegment, Discard and Flush do nothing).
type Routes struct {
	rec    *profile.Recorder
	trace  *profile.TraceWriter
	layers int

	next    int           // position of the first buffered token
	ids     [][][]int32   // [token - next][layer]
	weights [][][]float32 // [token - next][layer]
	err     error
	calls   int // Hook's, so that Generate can tell Routes the model does not feed
}

// NewRoutes returns Routes for a model of id's shape feeding rec and trace.
func NewRoutes(id profile.ModelID, rec *profile.Recorder, trace *profile.TraceWriter) *Routes {
	return &Routes{rec: rec, trace: trace, layers: id.Layers}
}

// Hook is the model's routing hook: layer's routing of the tokens at
// positions pos, pos+1, ...
func (r *Routes) Hook(layer, pos int, rt model.Routing) {
	r.calls++
	if r.err != nil {
		return
	}
	for t := range len(rt.IDs) / rt.K {
		ids, weights := rt.IDs[t*rt.K:(t+1)*rt.K], rt.Weights[t*rt.K:(t+1)*rt.K]
		if r.rec != nil {
			if err := r.rec.Record(layer, ids, weights); err != nil {
				r.err = fmt.Errorf("engine: recording the routing of layer %d at position %d: %w", layer, pos+t, err)
				return
			}
		}
		if r.trace == nil {
			continue
		}
		i := pos + t - r.next
		switch {
		case layer < 0 || layer >= r.layers:
			r.err = fmt.Errorf("engine: routing of layer %d of a %d-layer model", layer, r.layers)
			return
		case i < 0:
			r.err = fmt.Errorf("engine: routing of position %d, which the trace has written (Reset states need a new Routes)", pos+t)
			return
		}
		for len(r.ids) <= i {
			r.ids = append(r.ids, make([][]int32, r.layers))
			r.weights = append(r.weights, make([][]float32, r.layers))
		}
		r.ids[i][layer] = slices.Clone(ids)
		r.weights[i][layer] = slices.Clone(weights)
	}
}

// StartSegment writes the tokens so far and starts a trace segment (a
// prompt's prefill, a generation's decode).
func (r *Routes) StartSegment(name, phase string) error {
	if r == nil {
		return nil
	}
	if err := r.Flush(); err != nil {
		return err
	}
	if r.trace == nil {
		return nil
	}
	return r.trace.StartSegment(name, phase)
}

// Discard drops the buffered tokens of a forward step that did not complete
// (its context was cancelled): some of their layers were never routed, so
// they must not reach the trace. The recorder has counted the layers that
// were.
func (r *Routes) Discard() {
	if r == nil {
		return
	}
	r.ids, r.weights = r.ids[:0], r.weights[:0]
}

// Flush writes the buffered tokens to the trace and flushes it, and reports
// the first error of the hook.
func (r *Routes) Flush() error {
	if r == nil {
		return nil
	}
	if r.err != nil {
		return r.err
	}
	if r.trace == nil {
		return nil
	}
	for i := range r.ids {
		if err := r.trace.WriteToken(r.ids[i], r.weights[i]); err != nil {
			r.err = fmt.Errorf("engine: writing the trace at position %d: %w", r.next+i, err)
			return r.err
		}
	}
	r.next += len(r.ids)
	r.ids, r.weights = r.ids[:0], r.weights[:0]
	return r.trace.Flush()
}
