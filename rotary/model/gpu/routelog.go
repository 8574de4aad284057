package gpu

import (
	"fmt"
	"slices"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/model"
)

// routeLog is model.RoutingLogger under WithDeviceResidency: each Route
// queues a copy of its ids and weights to pinned memory, with the step's
// work (in a captured step, as nodes of the graph), and LoggedRouting hands
// them to the model once the step has run. No layer waits for its routing.
type routeLog struct {
	on      bool
	stage   staging
	used    int64      // bytes of stage the step's copies take
	entries []logEntry // the step's MoE layers, in order
}

// logEntry is one MoE layer's routing in the log: rows×k ids, then as many
// weights, at byte off of the stage.
type logEntry struct {
	layer, rows, k int
	off            int64
}

func (l *routeLog) reset() { l.used, l.entries = 0, l.entries[:0] }

// copy queues the copy of rt to the stage.
func (l *routeLog) copy(b *Backend, rt *routing) error {
	if !l.on {
		return nil
	}
	n := rt.both.Size()
	host, err := l.stage.get(b, l.used, n)
	if err != nil {
		return err
	}
	if err := b.stream.CopyDtoH(host, rt.both, 0); err != nil {
		return fmt.Errorf("gpu: logging the routing: %w", err)
	}
	rt.logged = l.used
	l.used += n
	return nil
}

// routed files rt's copy under layer.
func (l *routeLog) routed(layer int, rt *routing) {
	if l.on && rt.logged >= 0 {
		l.entries = append(l.entries, logEntry{layer: layer, rows: rt.rows, k: rt.k, off: rt.logged})
	}
}

// LogRouting implements model.RoutingLogger: under WithDeviceResidency the
// routing is logged with the step's work; without it Route reads it back
// and LogRouting returns false.
func (b *Backend) LogRouting() bool {
	b.routes.on = b.res != nil
	return b.routes.on
}

// LoggedRouting implements model.RoutingLogger: it waits for the step's
// work, then calls fn with each MoE layer's routing, in order.
func (b *Backend) LoggedRouting(fn func(layer int, r model.Routing)) error {
	if b.err != nil {
		return b.err
	}
	if err := b.idleStream(); err != nil {
		return b.fail(fmt.Errorf("gpu: waiting for the step's routing: %w", err))
	}
	mem := b.routes.stage.buf.Bytes()
	for _, e := range b.routes.entries {
		n := int64(e.rows * e.k)
		ids := cuda.View[int32](mem[e.off : e.off+4*n])
		weights := cuda.View[float32](mem[e.off+4*n : e.off+8*n])
		fn(e.layer, model.Routing{K: e.k, IDs: ids, Weights: weights})
	}
	return nil
}

// logged is the log of a step being captured, for its replays.
func (l *routeLog) logged() (entries []logEntry, gen uint64) {
	return slices.Clone(l.entries), l.stage.gen
}
