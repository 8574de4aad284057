package rotary

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotary-moe/rotary/cuda"
)

// batch is the copies of one Acquire's (or Prefetch's) misses: events around
// them on the copy stream, and one on the compute stream before it waits, to
// measure the transfer and the stall. Batches are recycled once their copies
// have completed; a batchRef's generation tells a stale reference.
type batch struct {
	start, done cuda.Event    // on the copy stream, around the copies
	before      cuda.Event    // on the compute stream, before it waits on done
	waited      bool          // before was recorded
	gen         atomic.Uint64 // bumped when recycled
	layer       *layerState
	err         atomic.Pointer[error] // set when the copies failed on the device
}

// batchRef is a reference to one generation of a batch: the copies that fill
// a slot, or the last ones that read a host entry.
type batchRef struct {
	b   *batch
	gen uint64
}

// state reports whether the referenced copies have completed and whether
// they failed. A recycled batch's copies completed without error.
func (r batchRef) state() (done bool, err error) {
	if r.b == nil {
		return true, nil
	}
	if r.b.gen.Load() != r.gen {
		return true, nil
	}
	if e := r.b.err.Load(); e != nil {
		return true, *e
	}
	ok, err := r.b.done.Query()
	if ok && err != nil {
		return true, err
	}
	return ok, nil
}

// batchPool recycles batches and harvests their timings.
type batchPool struct {
	dev     cuda.Device
	closing context.Context // done once Close starts

	collecting sync.Mutex // one collector at a time: it alone pops inflight

	mu       sync.Mutex
	free     []*batch
	inflight []*batch // in the order their done events were recorded
	all      []*batch
	failed   atomic.Bool // a harvested batch failed: the copy stream may be broken
}

// maxInflight bounds the batches in flight; the next one waits for the oldest.
const maxInflight = 512

func newEvent(dev cuda.Device) (cuda.Event, error) { return dev.NewEvent(0) }

// get returns a batch for new copies, recycling completed ones first.
func (p *batchPool) get(ctx context.Context) (*batch, error) {
	p.collect()
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b, nil
	}
	full := len(p.inflight) >= maxInflight
	var oldest *batch
	if full {
		oldest = p.inflight[0]
	}
	p.mu.Unlock()
	if full {
		if err := p.await(ctx, oldest); err != nil {
			return nil, err
		}
		return p.get(ctx)
	}
	b := &batch{}
	var err error
	for _, e := range []*cuda.Event{&b.start, &b.done, &b.before} {
		if *e, err = newEvent(p.dev); err != nil {
			b.close()
			return nil, fmt.Errorf("rotary: creating a copy event: %w", err)
		}
	}
	p.mu.Lock()
	p.all = append(p.all, b)
	p.mu.Unlock()
	return b, nil
}

// await waits for a batch's copies, until ctx is done or Close starts
// (ErrClosed). A failed copy is the collector's to report.
func (p *batchPool) await(ctx context.Context, b *batch) error {
	wait, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(p.closing, func() { cancel(ErrClosed) })()
	if err := b.done.Synchronize(wait); err != nil && wait.Err() != nil {
		return fmt.Errorf("rotary: waiting for a copy batch: %w", context.Cause(wait))
	}
	return nil
}

// put returns a batch that was never recorded.
func (p *batchPool) put(b *batch) {
	p.mu.Lock()
	b.gen.Add(1)
	p.free = append(p.free, b)
	p.mu.Unlock()
}

// queued files a recorded batch as in flight.
func (p *batchPool) queued(b *batch) {
	p.mu.Lock()
	p.inflight = append(p.inflight, b)
	p.mu.Unlock()
}

// collect harvests the batches whose copies (and compute-stream marks) have
// completed, oldest first, adding their timings to their layers' stats. It
// leaves the work to a collector already at it.
func (p *batchPool) collect() {
	if !p.collecting.TryLock() {
		return
	}
	defer p.collecting.Unlock()
	for {
		p.mu.Lock()
		if len(p.inflight) == 0 {
			p.mu.Unlock()
			return
		}
		b := p.inflight[0]
		p.mu.Unlock()
		done, err := b.done.Query()
		if !done {
			return
		}
		if b.waited {
			if ok, _ := b.before.Query(); !ok {
				return
			}
		}
		p.mu.Lock()
		p.inflight = p.inflight[1:]
		if err != nil {
			// Keep the generation: slots filled by it see the failure.
			b.err.Store(&err)
			p.failed.Store(true)
			p.mu.Unlock()
			b.layer.log.Debug("rotary: copies failed on the device")
			continue
		}
		b.harvest()
		b.gen.Add(1)
		p.free = append(p.free, b)
		p.mu.Unlock()
	}
}

// harvest adds a completed batch's timings to its layer's stats.
func (b *batch) harvest() {
	var transfer, stall time.Duration
	if d, err := b.done.Since(b.start); err == nil {
		transfer = d
	}
	if b.waited {
		if d, err := b.done.Since(b.before); err == nil && d > 0 {
			stall = d
		}
	}
	b.layer.timing.add(transfer, stall)
}

func (b *batch) close() {
	for _, e := range []cuda.Event{b.start, b.done, b.before} {
		if e != nil {
			_ = e.Close()
		}
	}
}

// close releases every batch's events.
func (p *batchPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.all {
		b.close()
	}
	p.all, p.free, p.inflight = nil, nil, nil
}
