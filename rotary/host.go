package rotary

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"golang.org/x/sync/errgroup"
)

// segment is pinned host memory to copy into a slot at byte off.
type segment struct {
	mem []byte
	off int64
}

// source is where a missing expert's bytes come from: one segment (a pinned
// copy of the whole expert) or one per part (the registered mapping).
type source struct {
	segs  [4]segment
	n     int
	entry *hostEntry // the host LRU's entry, held until the copies are queued
}

func (s *source) add(mem []byte, off int64) {
	s.segs[s.n] = segment{mem, off}
	s.n++
}

// hostTier supplies misses from pinned host memory.
type hostTier interface {
	// sources fills srcs[i] for expert ids[i] of ls, from pinned memory,
	// reading the file first where needed; it may block until ctx is done.
	sources(ctx context.Context, ls *layerState, ids []int, srcs []source) error
	// release lets go of the sources' host memory once fence completes.
	release(srcs []source, fence batchRef)
	// prefetch brings an expert into pinned memory in the background, if
	// there is a goroutine to spare; it reports whether the expert is there
	// already.
	prefetch(ls *layerState, id int) bool
	// stats returns the tier's counters and how many experts it read ahead
	// of a miss (the warm-up, prefetches).
	stats() (TierStats, uint64)
	reset()
	// warmed is closed when the background warm-up has ended (or at once
	// without one).
	warmed() <-chan struct{}
	close() error
}

// closedChan is a channel closed from the start: a warm-up that is over.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// mappedTier is HostMapped: the expert tensors of the mapping, registered.
type mappedTier struct {
	dev    cuda.Device
	mem    []byte
	ranges []span
	regs   []cuda.HostBuffer // [range]

	mu   sync.Mutex
	hits uint64
}

// With deviceMap, the ranges are mapped into the device as well, for
// kernels that read the experts.
func newMappedTier(ctx context.Context, dev cuda.Device, m *experts.Model, ranges []span, deviceMap bool) (*mappedTier, error) {
	t := &mappedTier{dev: dev, mem: m.File.Mapping(), ranges: ranges}
	flags := cuda.RegisterReadOnly
	if deviceMap {
		flags |= cuda.RegisterDeviceMap
	}
	for _, r := range ranges {
		if err := ctx.Err(); err != nil {
			t.close()
			return nil, fmt.Errorf("rotary: registering the model file as pinned memory: %w", err)
		}
		h, err := dev.Register(t.mem[r.off:r.off+r.n:r.off+r.n], flags)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("rotary: registering %s of the model file at offset %d as pinned memory: %w", FormatSize(r.n), r.off, err)
		}
		t.regs = append(t.regs, h)
	}
	return t, nil
}

func (t *mappedTier) sources(_ context.Context, ls *layerState, ids []int, srcs []source) error {
	var off int64
	for i, id := range ids {
		srcs[i] = source{}
		off = 0
		for _, p := range ls.parts {
			start := p.fileOffset + int64(id)*p.Size
			srcs[i].add(t.mem[start:start+p.Size:start+p.Size], off)
			off += p.Size
		}
	}
	t.mu.Lock()
	t.hits += uint64(len(ids))
	t.mu.Unlock()
	return nil
}

// deviceAddr is the device address of the n bytes at offset off of the
// file, 0 if no range mapped into the device holds them all.
func (t *mappedTier) deviceAddr(off, n int64) uint64 {
	for i, r := range t.ranges {
		if i < len(t.regs) && off >= r.off && off+n <= r.off+r.n && t.regs[i].Addr() != 0 {
			return t.regs[i].Addr() + uint64(off-r.off)
		}
	}
	return 0
}

func (t *mappedTier) release([]source, batchRef)     {}
func (t *mappedTier) prefetch(*layerState, int) bool { return true }

func (t *mappedTier) stats() (TierStats, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TierStats{Hits: t.hits}, 0
}

func (t *mappedTier) warmed() <-chan struct{} { return closedChan }

func (t *mappedTier) reset() {
	t.mu.Lock()
	t.hits = 0
	t.mu.Unlock()
}

func (t *mappedTier) close() error {
	var errs []error
	for _, h := range t.regs {
		errs = append(errs, t.dev.Unregister(h))
	}
	t.regs = nil
	return errors.Join(errs...)
}

// expertKey names an expert of the model.
type expertKey struct{ layer, expert int32 }

// hostEntry is one expert's pinned copy (gate|up|down back to back, as in a
// slot) in the host LRU.
type hostEntry struct {
	mem   []byte
	key   expertKey
	refs  int           // batches about to copy from it
	fill  chan struct{} // non-nil while it is being filled; closed after
	err   error         // the fill's failure
	fence batchRef      // the last copies from it
}

// lruClass is the host LRU for experts of one size: capacity fixed by the
// plan, entries carved from pinned chunks. The LRU counts entries, and every
// entry has the class's size, so the count is a byte budget.
type lruClass struct {
	lru     *simplelru.LRU[expertKey, *hostEntry]
	free    []*hostEntry
	entries int
	held    int // entries with refs > 0
}

// lruTier is HostLRU.
type lruTier struct {
	dev    cuda.Device
	file   *experts.File
	bg     *background
	chunks []cuda.HostBuffer

	mu      sync.Mutex
	classes map[int64]*lruClass
	changed chan struct{} // closed when refs drop or fills end, for waiters
	hits    uint64
	misses  uint64
	ahead   uint64 // entries filled ahead of a miss: warm-up, prefetch
	bytes   int64
	busy    int           // background fills running
	warmEnd chan struct{} // closed when the warm-up ends
}

// fillers is how many goroutines read experts from the file into the host
// LRU at once: for one batch of misses, for Prefetch's background fills, and
// for the warm-up.
const fillers = 4

func newLRUTier(ctx context.Context, dev cuda.Device, m *experts.Model, hp *HostPlan, bg *background) (*lruTier, error) {
	t := &lruTier{dev: dev, file: m.File, bg: bg, classes: map[int64]*lruClass{}, warmEnd: closedChan}
	for _, c := range hp.classes {
		cl := &lruClass{entries: c.entries}
		lru, err := simplelru.NewLRU[expertKey, *hostEntry](c.entries, nil)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("rotary: host LRU: %w", err)
		}
		cl.lru = lru
		for left := c.entries; left > 0; {
			if err := ctx.Err(); err != nil {
				t.close()
				return nil, fmt.Errorf("rotary: allocating the host LRU: %w", err)
			}
			n := min(left, c.perChunk)
			h, err := dev.AllocHost(int64(n)*c.size, 0)
			if err != nil {
				t.close()
				return nil, fmt.Errorf("rotary: allocating %s of pinned host memory (host LRU chunk %d): %w", FormatSize(int64(n)*c.size), len(t.chunks)+1, err)
			}
			t.chunks = append(t.chunks, h)
			mem := h.Bytes()
			for i := range n {
				off := int64(i) * c.size
				cl.free = append(cl.free, &hostEntry{mem: mem[off : off+c.size : off+c.size]})
			}
			left -= n
		}
		t.classes[c.size] = cl
	}
	return t, nil
}

// wake wakes the goroutines waiting for entries. Called with t.mu held.
func (t *lruTier) wake() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

func (t *lruTier) waitChan() chan struct{} {
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return t.changed
}

func (t *lruTier) sources(ctx context.Context, ls *layerState, ids []int, srcs []source) error {
	return t.hold(ctx, ls, ids, srcs, true)
}

// hold holds an entry for every id (all at once, or none while it waits, so
// that concurrent batches cannot deadlock), fills the new ones from the file
// in parallel and waits for fills others started. demand says whether to
// count the hits and misses (not for background fills).
func (t *lruTier) hold(ctx context.Context, ls *layerState, ids []int, srcs []source, demand bool) error {
	cl := t.classes[ls.expertBytes]
	if len(ids) > cl.entries {
		return fmt.Errorf("%w: %d experts of layer %d at once, the host LRU holds %d of their size", ErrTooMany, len(ids), ls.index, cl.entries)
	}
	t.mu.Lock()
	for !t.canHold(cl, ls.index, ids) {
		ch := t.waitChan()
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("rotary: waiting for host memory: %w", ctx.Err())
		case <-t.bg.ctx.Done():
			return fmt.Errorf("rotary: waiting for host memory: %w", ErrClosed)
		}
		t.mu.Lock()
	}
	// Hits first, so that no miss evicts an entry this batch asks for.
	var fresh []*hostEntry
	for i, id := range ids {
		srcs[i] = source{}
		if e, ok := cl.lru.Get(expertKey{int32(ls.index), int32(id)}); ok {
			if demand {
				t.hits++
			}
			cl.hold(e)
			srcs[i].entry = e
			srcs[i].add(e.mem, 0)
		}
	}
	for i, id := range ids {
		if srcs[i].entry != nil {
			continue
		}
		if demand {
			t.misses++
		}
		key := expertKey{int32(ls.index), int32(id)}
		e := cl.evict()
		e.key, e.fill, e.err = key, make(chan struct{}), nil
		cl.lru.Add(key, e)
		cl.hold(e)
		fresh = append(fresh, e)
		srcs[i].entry = e
		srcs[i].add(e.mem, 0)
	}
	if !demand {
		t.ahead += uint64(len(fresh))
	}
	t.mu.Unlock()

	err := t.fill(ctx, ls, fresh)
	for i := range ids {
		if err != nil {
			break
		}
		err = t.await(ctx, srcs[i].entry)
	}
	if err != nil {
		t.release(srcs[:len(ids)], batchRef{})
		return err
	}
	return nil
}

// canHold reports whether the class can give ids entries now: those not
// present must fit in free entries or in entries no batch holds and ids do
// not name.
func (t *lruTier) canHold(cl *lruClass, layer int, ids []int) bool {
	need, spare := 0, len(cl.free)+cl.lru.Len()-cl.held
	for _, id := range ids {
		e, ok := cl.lru.Peek(expertKey{int32(layer), int32(id)})
		switch {
		case !ok:
			need++
		case e.refs == 0:
			spare--
		}
	}
	return need <= spare
}

func (cl *lruClass) hold(e *hostEntry) {
	if e.refs == 0 {
		cl.held++
	}
	e.refs++
}

func (cl *lruClass) unhold(e *hostEntry) {
	if e.refs--; e.refs == 0 {
		cl.held--
	}
}

// evict returns a free entry, or the least recently used one that no batch
// holds, taken out of the LRU. Entries it skips become the most recent: they
// are in use right now. canHold said there is one.
func (cl *lruClass) evict() *hostEntry {
	if n := len(cl.free); n > 0 {
		e := cl.free[n-1]
		cl.free = cl.free[:n-1]
		return e
	}
	for {
		key, e, _ := cl.lru.RemoveOldest()
		if e.refs == 0 {
			return e
		}
		cl.lru.Add(key, e)
	}
}

// fill reads fresh entries from the file, after the last copies from their
// memory have completed. A failed entry leaves the LRU.
func (t *lruTier) fill(ctx context.Context, ls *layerState, fresh []*hostEntry) error {
	if len(fresh) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fillers)
	for _, e := range fresh {
		g.Go(func() error {
			err := t.read(gctx, ls, e)
			t.mu.Lock()
			e.err = err
			close(e.fill)
			e.fill = nil
			if err != nil {
				// Out of the LRU; the entry goes back to the free list when
				// its batch lets go of it.
				cl := t.classes[ls.expertBytes]
				cl.lru.Remove(e.key)
				e.key = expertKey{-1, -1}
			} else {
				t.bytes += int64(len(e.mem))
			}
			t.wake()
			t.mu.Unlock()
			return err
		})
	}
	return g.Wait()
}

// read copies expert e.key out of the file into e's memory, part after part.
func (t *lruTier) read(ctx context.Context, ls *layerState, e *hostEntry) error {
	if done, _ := e.fence.state(); !done {
		if err := e.fence.b.done.Synchronize(ctx); err != nil && ctx.Err() != nil {
			return fmt.Errorf("rotary: waiting for copies out of host memory: %w", ctx.Err())
		}
	}
	e.fence = batchRef{}
	var off int64
	for _, p := range ls.parts {
		src := p.fileOffset + int64(e.key.expert)*p.Size
		if _, err := t.file.ReadAt(e.mem[off:off+p.Size], src); err != nil {
			return fmt.Errorf("rotary: reading expert %d of layer %d (%s) from the model file: %w", e.key.expert, e.key.layer, p.Role, err)
		}
		// The pinned copy is what the tier keeps: let the mapping's pages
		// go, or the process's resident memory grows toward the file's
		// size as misses read it. Failing to only costs memory.
		_ = t.file.DontNeed(src, p.Size)
		off += p.Size
	}
	return nil
}

// await waits for an entry someone else is filling.
func (t *lruTier) await(ctx context.Context, e *hostEntry) error {
	t.mu.Lock()
	ch, err := e.fill, e.err
	t.mu.Unlock()
	if ch == nil {
		return err
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return fmt.Errorf("rotary: waiting for a host fill: %w", ctx.Err())
	case <-t.bg.ctx.Done():
		return fmt.Errorf("rotary: waiting for a host fill: %w", ErrClosed)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return e.err
}

func (t *lruTier) release(srcs []source, fence batchRef) {
	t.mu.Lock()
	for i := range srcs {
		e := srcs[i].entry
		if e == nil {
			continue
		}
		cl := t.classes[int64(len(e.mem))]
		cl.unhold(e)
		if fence.b != nil {
			e.fence = fence
		}
		if e.refs == 0 && e.key.layer < 0 {
			cl.free = append(cl.free, e) // its fill failed
		}
		srcs[i].entry = nil
	}
	t.wake()
	t.mu.Unlock()
}

// prefetch fills an expert's entry in the background, if a filler is free.
func (t *lruTier) prefetch(ls *layerState, id int) bool {
	key := expertKey{int32(ls.index), int32(id)}
	t.mu.Lock()
	cl := t.classes[ls.expertBytes]
	if e, ok := cl.lru.Get(key); ok && e.fill == nil && e.err == nil {
		t.mu.Unlock()
		return true
	}
	if t.busy >= fillers {
		t.mu.Unlock()
		return false
	}
	t.busy++
	t.mu.Unlock()
	t.bg.run(func(ctx context.Context) {
		defer func() {
			t.mu.Lock()
			t.busy--
			t.mu.Unlock()
		}()
		var src [1]source
		if err := t.hold(ctx, ls, []int{id}, src[:], false); err == nil {
			t.release(src[:], batchRef{})
		}
	})
	return false
}

// warm fills the LRU in the background with experts in the given order until
// it is full. Each layer's share is held at once, so the experts enter the
// LRU in the given order whatever order their reads end in: the same run
// finds the same experts in the same places. If reading the file fails, the
// warm-up stops and failed gets the error (not when it stops because the
// runtime closes).
func (t *lruTier) warm(order []*layerState, ids [][]int, failed func(error)) {
	t.warmEnd = make(chan struct{})
	done := t.warmEnd
	t.bg.run(func(ctx context.Context) {
		defer close(done)
		for i, ls := range order {
			t.mu.Lock()
			cl := t.classes[ls.expertBytes]
			var take []int
			for _, id := range ids[i] {
				if len(take) == len(cl.free) {
					break
				}
				if !cl.lru.Contains(expertKey{int32(ls.index), int32(id)}) {
					take = append(take, id)
				}
			}
			t.mu.Unlock()
			if len(take) == 0 {
				continue
			}
			src := make([]source, len(take))
			if err := t.hold(ctx, ls, take, src, false); err != nil {
				if ctx.Err() == nil {
					failed(err)
				}
				return
			}
			t.release(src, batchRef{})
		}
	})
}

func (t *lruTier) warmed() <-chan struct{} { return t.warmEnd }

func (t *lruTier) stats() (TierStats, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TierStats{Hits: t.hits, Misses: t.misses, Bytes: t.bytes}, t.ahead
}

func (t *lruTier) reset() {
	t.mu.Lock()
	t.hits, t.misses, t.ahead, t.bytes = 0, 0, 0, 0
	t.mu.Unlock()
}

func (t *lruTier) close() error {
	var errs []error
	for _, h := range t.chunks {
		errs = append(errs, t.dev.FreeHost(h))
	}
	t.chunks = nil
	return errors.Join(errs...)
}
