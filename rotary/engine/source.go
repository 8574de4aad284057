package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Source is a model.ExpertSource that serves every expert through a rotary
// Runtime on the host backend: Acquire makes the experts resident in the
// layer's slots (copying the missing ones on the runtime's copy stream),
// waits for the copies, and returns views of the slots' bytes, which the
// CPU backend computes on in place. The lease's Release gives the slots back
// with no event: the CPU's work on them is complete when the model releases.
//
// A Source is used by one forward pass at a time, as the model does.
type Source struct {
	rt     *rotary.Runtime
	stream cuda.Stream // the compute stream: it waits for the copies
	planes []*plane    // by layer; nil for a layer without experts

	prefetch Prefetcher // nil: none

	// The counters are read by Engine.Stats while another goroutine's
	// Generate may be in a forward step.
	acquires atomic.Int64
	wait     atomic.Int64 // nanoseconds
	err      error        // the first failed Release, reported by the next Acquire
}

// plane is a layer's plane of slots seen as bytes, and the lease the model
// holds on it: the model holds one lease per layer at a time, so each
// layer's Set, views and lease are reused and a step of hits allocates
// nothing.
type plane struct {
	mem       []byte
	slotBytes int64
	lease     lease
}

// NewSource serves rt's experts to the model; rt must have been opened on
// dev, whose device memory the CPU reads.
func NewSource(rt *rotary.Runtime, dev *cuda.HostDevice) (*Source, error) {
	layers := rt.Plan().Layers // in layer order
	s := &Source{rt: rt}
	if len(layers) > 0 {
		s.planes = make([]*plane, layers[len(layers)-1].Layer+1)
	}
	for _, lp := range layers {
		p, err := rt.Plane(lp.Layer)
		if err != nil {
			return nil, err
		}
		mem, err := dev.Bytes(p.Buf)
		if err != nil {
			return nil, fmt.Errorf("engine: layer %d's plane: %w", lp.Layer, err)
		}
		pl := &plane{mem: mem, slotBytes: p.SlotBytes}
		pl.lease.s = s
		s.planes[lp.Layer] = pl
	}
	stream, err := dev.NewStream()
	if err != nil {
		return nil, fmt.Errorf("engine: creating the compute stream: %w", err)
	}
	s.stream = stream
	return s, nil
}

// Acquire implements model.ExpertSource.
func (s *Source) Acquire(ctx context.Context, layer int, ids []int) (model.ExpertLease, error) {
	if s.err != nil {
		return nil, s.err
	}
	var p *plane
	if layer >= 0 && layer < len(s.planes) {
		p = s.planes[layer]
	}
	if p == nil {
		return nil, fmt.Errorf("engine: layer %d has no plane of slots", layer)
	}
	start := time.Now()
	l := &p.lease
	set := &l.set
	if err := s.rt.AcquireInto(ctx, layer, ids, s.stream, set); err != nil {
		return nil, err
	}
	// The CPU computes as soon as Acquire returns, so wait for what a GPU
	// kernel on the stream would wait for: the copies of the misses.
	if err := s.stream.Synchronize(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("engine: waiting for layer %d's experts: %w", layer, err), s.rt.Release(set, nil))
	}
	s.wait.Add(int64(time.Since(start)))

	l.weights = slices.Grow(l.weights[:0], len(set.Experts))[:len(set.Experts)]
	ws := l.weights
	for i, v := range set.Experts {
		ws[i] = model.ExpertWeights{}
		base := int64(v.Slot) * p.slotBytes
		for _, part := range v.Parts {
			w := model.Weight{
				Data: p.mem[base+part.Offset : base+part.Offset+part.Size : base+part.Offset+part.Size],
				Type: part.Type, Rows: int(part.Rows), Cols: int(part.Cols),
			}
			if err := ws[i].SetPart(part.Role, w); err != nil {
				return nil, errors.Join(err, s.rt.Release(set, nil))
			}
		}
	}
	s.acquires.Add(1)
	if s.prefetch != nil {
		// The copies it queues overlap this layer's computation; the
		// layer's own experts are held by set, so none is evicted for them.
		s.prefetch.Routed(layer, ids, nil)
	}
	return l, nil
}

// Wait is the time Acquire spent until the experts were resident: the
// runtime's bookkeeping, reads into the host tier and the copies to the
// slots.
func (s *Source) Wait() time.Duration { return time.Duration(s.wait.Load()) }

// Acquires counts the Acquire calls that succeeded.
func (s *Source) Acquires() int { return int(s.acquires.Load()) }

// Close closes the compute stream. The runtime is the caller's.
func (s *Source) Close() error { return s.stream.Close() }

type lease struct {
	s       *Source
	set     rotary.Set
	weights []model.ExpertWeights
}

func (l *lease) Weights() []model.ExpertWeights { return l.weights }

func (l *lease) Release() {
	if err := l.s.rt.Release(&l.set, nil); err != nil && l.s.err == nil {
		l.s.err = fmt.Errorf("engine: releasing layer %d's experts: %w", l.set.Layer, err)
	}
}

// MaxBatch is the most tokens one forward pass may take so that the experts
// they route to always fit the slots of every layer, and their misses the
// host LRU: a layer whose dynamic slots (or host entries for its expert
// size) cannot hold all its experts that are not pinned holds slots/top-k
// (entries/top-k) tokens' worth. It returns 0 when any batch fits.
func MaxBatch(p *rotary.Plan) int {
	n := 0
	limit := func(room int, l rotary.LayerPlan) {
		if room >= l.Experts-len(l.Pinned) || l.TopK == 0 {
			return
		}
		if b := max(room/l.TopK, 1); n == 0 || b < n {
			n = b
		}
	}
	for _, l := range p.Layers {
		limit(l.Slots, l)
		if p.Host.Mode == rotary.HostLRU {
			limit(p.Host.EntriesFor(l.ExpertBytes), l)
		}
	}
	return n
}
