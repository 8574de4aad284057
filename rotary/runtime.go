package rotary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary/internal/residency"
)

// Runtime keeps a model's experts in VRAM slots, pinned host memory and the
// mapped file, and hands them out to compute with Acquire and Release.
//
// It is safe for concurrent use. Each layer has its own lock over its
// tables, so calls for different layers run in parallel and calls for one
// layer in turn; a miss keeps its layer locked until its copies are queued
// (with the host LRU, after reading the file if it must). All copies go on
// one copy stream, in batches queued whole; the host tier and the pool of
// copy events have their own locks, taken after a layer's.
type Runtime struct {
	model *experts.Model
	dev   cuda.Device
	plan  *Plan
	log   *slog.Logger

	layers []*layerState // by model layer; nil for a layer without experts
	moe    []*layerState // the MoE layers in order

	copyMu  sync.Mutex // keeps a batch's operations together on the copy stream
	copy    cuda.Stream
	batches batchPool
	host    hostTier
	bg      *background

	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool

	warmErr atomic.Pointer[error] // why the background warm-up stopped early

	// counters is where device kernels count the hits and misses of the
	// layers handed over (WithDeviceResidency): deviceCounters per layer, in
	// the order of r.moe, mapped into the device.
	counters cuda.HostBuffer
}

// layerState is one MoE layer: its plane of slots and the residency tables,
// plain arrays indexed by expert or slot, as a device-side table would hold
// them.
type layerState struct {
	index       int
	experts     int
	expertBytes int64
	parts       []partInfo
	plane       cuda.Buffer
	views       [][]Part // [slot]: the slot's parts
	log         *slog.Logger

	mu      sync.Mutex
	tab     *residency.Table // which slot holds which expert; Held counts unreleased Sets
	ready   []batchRef       // [slot]: the copies filling it, until known done
	fences  [][]cuda.Event   // [slot]: Release events that may not have completed
	fetched []bool           // [slot]: filled by Prefetch, not yet asked for
	changed chan struct{}    // closed by Release, for Acquires waiting for slots
	counts  layerCounts
	timing  layerTiming

	// onDevice is set by Handover: the device decides from then on, and
	// counts at device (the layer's counters), from base on since the last
	// ResetStats.
	onDevice bool
	device   []uint64
	base     [deviceCounters]uint64

	// The last Prefetch's prediction, until the next Acquire scores it:
	// predicted[e] == predStamp for the predN experts it named.
	predicted []uint64
	predStamp uint64
	predN     int

	// scratch, reused under mu
	misses    []int // indexes into the request
	missIDs   []int
	missSlots []int
	srcs      []source
	copyWaits []cuda.Event
	waits     []batchRef
}

// partInfo is where one part of the layer's experts lies in the file and in a
// slot.
type partInfo struct {
	PartLayout
	fileOffset int64 // expert 0's
}

// PartLayout is one part (gate, up, down or gate_up) of a slot: Rows rows of
// Cols elements of Type, Size bytes at byte Offset of the slot.
type PartLayout struct {
	Role       experts.PartRole
	Type       experts.Type
	Cols, Rows uint64
	Offset     int64
	Size       int64
}

// Part is one part of a resident expert: its layout and its device memory.
type Part struct {
	PartLayout
	Buf cuda.Buffer
}

// View is one expert of a Set: its slot in the layer's plane and its parts,
// in the model's order (gate, up, down, or gate_up, down).
type View struct {
	Expert int
	Slot   int
	Parts  []Part
}

// Part returns the view's part with role r.
func (v View) Part(r experts.PartRole) (Part, bool) {
	for _, p := range v.Parts {
		if p.Role == r {
			return p, true
		}
	}
	return Part{}, false
}

// Set is the experts one Acquire made resident, held until Release. Experts
// are in the order they were asked for. Once released, a Set can be filled
// again by AcquireInto.
type Set struct {
	Layer   int
	Experts []View

	rt   *Runtime
	ls   *layerState
	live atomic.Bool
}

// Plane describes a layer's plane of slots: Slots slots of SlotBytes each,
// slot s at byte s·SlotBytes of Buf, laid out like the model's stacked expert
// tensors (Parts), so kernels can address experts by slot index. The first
// Pinned slots hold pinned experts.
type Plane struct {
	Layer     int
	Buf       cuda.Buffer
	SlotBytes int64
	Slots     int
	Pinned    int
	Parts     []PartLayout
}

// Residency is a snapshot of a layer's residency tables.
type Residency struct {
	SlotOf   []int32  // [expert]: its slot, -1 if not resident
	ExpertIn []int32  // [slot]: its expert, -1 if empty
	LastUse  []uint64 // [slot]
	Held     []int32  // [slot]: unreleased Sets holding it
	Pinned   int
	Tick     uint64
}

// background runs the runtime's goroutines until Close. Its context is
// cancelled as soon as Close starts: blocked calls watch it to give up with
// ErrClosed.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (b *background) run(f func(ctx context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f(b.ctx)
	}()
}

func (b *background) stop() {
	b.cancel()
	b.wg.Wait()
}

// Open plans the residency of m's experts on dev (NewPlan; without WithVRAM
// the budget is the device's free memory), or follows the plan WithPlan
// gives, allocates each layer's plane of slots and the host tier, and starts
// copying the pinned experts. That can
// take a while on a GPU (pinning host memory costs about 0.6 s per GiB, and
// the pinned experts are read from the file): ctx bounds it, between
// allocations. Open frees what it allocated if it fails.
func Open(ctx context.Context, m *experts.Model, dev cuda.Device, opts ...Option) (*Runtime, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	plan := c.plan
	if plan != nil {
		if err := plan.check(m); err != nil {
			return nil, err
		}
	} else {
		if c.vram == 0 && c.slots == 0 {
			free, _, err := dev.MemInfo()
			if err != nil {
				return nil, fmt.Errorf("rotary: asking the device for its free memory: %w", err)
			}
			c.vram = free
		}
		if plan, err = newPlan(m, &c); err != nil {
			return nil, err
		}
	}
	bctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		model: m, dev: dev, plan: plan, log: c.log,
		layers:  make([]*layerState, m.Params.NumLayers),
		batches: batchPool{dev: dev, closing: bctx},
		bg:      &background{ctx: bctx, cancel: cancel},
	}
	if err := r.open(ctx, &c); err != nil {
		r.bg.stop()
		return nil, errors.Join(err, r.free())
	}
	// The plan's table is Plan.String, for a program to print; the log
	// keeps to one line of figures.
	r.log.Debug("rotary: opened", slog.Int64("vram", plan.VRAM), slog.Int64("non_expert", plan.NonExpert),
		slog.Int64("reserve", plan.Reserve), slog.Int64("pinned", plan.Pinned), slog.Int64("slots", plan.Slots),
		slog.Int64("unused", plan.Unused), slog.String("host_mode", plan.Host.Mode.String()), slog.Int64("host_bytes", plan.Host.Bytes))
	return r, nil
}

func (r *Runtime) open(ctx context.Context, c *config) error {
	var err error
	if r.copy, err = r.dev.NewStream(); err != nil {
		return fmt.Errorf("rotary: creating the copy stream: %w", err)
	}
	// The host tier first: each layer's pinned experts are copied from it as
	// soon as the layer's plane exists.
	if c.onDev {
		if r.plan.Host.Mode != HostMapped {
			return fmt.Errorf("%w: residency on the device reads misses from the registered model file, but the host budget keeps a host LRU of %s instead (WithHostBudget)", ErrBudget, FormatSize(r.plan.Host.Bytes))
		}
		if r.counters, err = r.dev.AllocHost(int64(len(r.plan.Layers))*deviceCounters*8, cuda.HostAllocDeviceMap); err != nil {
			return fmt.Errorf("rotary: allocating the device's counters: %w", err)
		}
	}
	if r.plan.Host.Mode == HostMapped {
		t, err := newMappedTier(ctx, r.dev, r.model, r.plan.Host.ranges, c.onDev)
		if err != nil {
			return err
		}
		r.host = t
	} else {
		t, err := newLRUTier(ctx, r.dev, r.model, &r.plan.Host, r.bg)
		if err != nil {
			return err
		}
		r.host = t
	}
	for _, lp := range r.plan.Layers {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rotary: allocating the planes: %w", err)
		}
		ls, err := r.newLayer(lp, c.policy)
		if ls != nil {
			r.layers[lp.Layer] = ls
			r.moe = append(r.moe, ls)
		}
		if err != nil {
			return err
		}
		if err := r.loadPinned(ctx, ls, lp.Pinned); err != nil {
			return err
		}
	}
	if t, ok := r.host.(*lruTier); ok && c.warm {
		r.warm(t)
	}
	return nil
}

// newLayer allocates a layer's plane and tables; the pinned experts take the
// first slots.
func (r *Runtime) newLayer(lp LayerPlan, policy Policy) (*layerState, error) {
	el, _ := r.model.Experts(lp.Layer)
	slots := len(lp.Pinned) + lp.Slots
	ls := &layerState{
		index: lp.Layer, experts: lp.Experts, expertBytes: lp.ExpertBytes, log: r.log,
		tab:       residency.NewTable(lp.Experts, slots, len(lp.Pinned), policy.NewEvictor(lp.Layer, lp.Experts, lp.Slots)),
		ready:     make([]batchRef, slots),
		fences:    make([][]cuda.Event, slots),
		fetched:   make([]bool, slots),
		predicted: make([]uint64, lp.Experts),
	}
	var off int64
	for _, p := range el.Parts {
		ls.parts = append(ls.parts, partInfo{
			PartLayout: PartLayout{Role: p.Role, Type: p.Type, Cols: p.Cols, Rows: p.Rows, Offset: off, Size: p.Size},
			fileOffset: p.Offset,
		})
		off += p.Size
	}
	plane, err := r.dev.Alloc(lp.PlaneBytes())
	if err != nil {
		return nil, fmt.Errorf("rotary: allocating layer %d's plane of %d slots (%s): %w", lp.Layer, slots, FormatSize(lp.PlaneBytes()), err)
	}
	ls.plane = plane
	ls.views = make([][]Part, slots)
	parts := make([]Part, slots*len(ls.parts))
	for s := range slots {
		for i, p := range ls.parts {
			buf, err := plane.Slice(int64(s)*ls.expertBytes+p.Offset, p.Size)
			if err != nil {
				return ls, fmt.Errorf("rotary: slicing layer %d's plane: %w", lp.Layer, err)
			}
			parts[s*len(ls.parts)+i] = Part{PartLayout: p.PartLayout, Buf: buf}
		}
		ls.views[s] = parts[s*len(ls.parts) : (s+1)*len(ls.parts) : (s+1)*len(ls.parts)]
	}
	return ls, nil
}

// loadPinned queues the copies of a layer's pinned experts into its first
// slots, a working set at a time (the host LRU holds at least that much).
func (r *Runtime) loadPinned(ctx context.Context, ls *layerState, ids []int) error {
	step := max(r.plan.topK(), 1)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for start := 0; start < len(ids); start += step {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rotary: loading layer %d's pinned experts: %w", ls.index, err)
		}
		chunk := ids[start:min(start+step, len(ids))]
		slots := make([]int, len(chunk))
		for i, id := range chunk {
			slots[i] = start + i
			ls.tab.Put(start+i, id)
		}
		if _, _, err := r.fill(ctx, ls, chunk, slots, nil, nil); err != nil {
			return fmt.Errorf("rotary: loading layer %d's pinned experts: %w", ls.index, err)
		}
	}
	return nil
}

// WaitWarmup waits until the background warm-up that Open started has
// filled the host LRU (at once with HostMapped, WithoutWarmup, or once it
// ended), reporting the bytes read so far against the LRU's size to
// progress (nil for none) every tenth of a second. Acquires that run during
// the warm-up find some experts already read and others not, depending on
// timing: a program that wants the same counts from the same run waits.
func (r *Runtime) WaitWarmup(ctx context.Context, progress func(done, total int64)) error {
	done := r.host.warmed()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	total := r.plan.Host.Bytes
	report := func() {
		if progress != nil {
			s, _ := r.host.stats()
			progress(min(s.Bytes, total), total)
		}
	}
	for {
		select {
		case <-done:
			report()
			return nil
		case <-tick.C:
			report()
		case <-ctx.Done():
			return fmt.Errorf("rotary: waiting for the host warm-up: %w", ctx.Err())
		case <-r.bg.ctx.Done():
			return fmt.Errorf("rotary: waiting for the host warm-up: %w", ErrClosed)
		}
	}
}

// warm fills the host LRU in the background with every expert, layer by
// layer in expert order, until it is full. A failure stops it; Stats reports
// it (WarmupErr) and the log warns.
func (r *Runtime) warm(t *lruTier) {
	var order []*layerState
	var ids [][]int
	for _, ls := range r.moe {
		all := make([]int, ls.experts)
		for i := range all {
			all[i] = i
		}
		order, ids = append(order, ls), append(ids, all)
	}
	t.warm(order, ids, func(err error) {
		r.log.Warn("rotary: the host LRU's warm-up stopped; misses read the file themselves", slog.Any("err", err))
		r.warmErr.Store(&err)
	})
}

// Plan returns the plan the runtime follows.
func (r *Runtime) Plan() *Plan { return r.plan }

// Plane returns the layout of a layer's plane of slots.
func (r *Runtime) Plane(layer int) (Plane, error) {
	ls, err := r.layerOf(layer)
	if err != nil {
		return Plane{}, err
	}
	p := Plane{Layer: layer, Buf: ls.plane, SlotBytes: ls.expertBytes, Slots: len(ls.views), Pinned: ls.tab.Pinned}
	for _, part := range ls.parts {
		p.Parts = append(p.Parts, part.PartLayout)
	}
	return p, nil
}

// Residency returns a copy of a layer's residency tables: for a layer
// handed over to the device (Handover), as they were then (package
// rotary/device's Resolver.Tables reads the device's).
func (r *Runtime) Residency(layer int) (Residency, error) {
	ls, err := r.layerOf(layer)
	if err != nil {
		return Residency{}, err
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.residency(), nil
}

// residency is a copy of the layer's tables. Called with ls.mu held.
func (ls *layerState) residency() Residency {
	t := ls.tab
	return Residency{
		SlotOf: slices.Clone(t.SlotOf), ExpertIn: slices.Clone(t.ExpertIn), LastUse: slices.Clone(t.LastUse),
		Held: slices.Clone(t.Held), Pinned: t.Pinned, Tick: t.Tick,
	}
}

func (r *Runtime) layerOf(layer int) (*layerState, error) {
	if layer < 0 || layer >= len(r.layers) || r.layers[layer] == nil {
		return nil, fmt.Errorf("%w: layer %d of %s", ErrNoExperts, layer, r.plan.Model)
	}
	return r.layers[layer], nil
}

// layerFor is layerOf for a request of ids, which must be the layer's.
func (r *Runtime) layerFor(layer int, ids []int) (*layerState, error) {
	ls, err := r.layerOf(layer)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if id < 0 || id >= ls.experts {
			return nil, fmt.Errorf("%w: expert %d of layer %d (%d experts)", ErrExpertRange, id, layer, ls.experts)
		}
	}
	return ls, nil
}

// enter starts a call; it fails after Close. The caller must r.mu.RUnlock.
func (r *Runtime) enter() error {
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Acquire makes experts ids of layer resident and returns their views, held
// until Release. layer is the model's layer index (as in LayerPlan.Layer and
// experts.Model.MoELayers), not the layer's ordinal among the MoE layers: on
// a model whose layer 0 is dense, the first MoE layer is 1. Resident experts
// return at once. Missing ones are copied on the runtime's copy stream, all
// in one batch, and stream waits for the batch's event, so the host does not
// block; with a nil stream, Acquire waits for the copies itself. The host
// blocks only when it must: while every slot it could evict is held by an
// unreleased Set, or while the host LRU reads missing experts from the file.
// ctx bounds the blocking.
//
// ids must be distinct experts of the layer, and no more of them than the
// layer's dynamic slots can hold besides its pinned experts (nor, with the
// host LRU, more missing ones than it holds of their size, at least top-k).
//
// Acquire allocates the Set; AcquireInto reuses one.
func (r *Runtime) Acquire(ctx context.Context, layer int, ids []int, stream cuda.Stream) (*Set, error) {
	set := new(Set)
	if err := r.AcquireInto(ctx, layer, ids, stream, set); err != nil {
		return nil, err
	}
	return set, nil
}

// AcquireInto is Acquire into set, which the caller keeps and reuses once it
// has released it (a decoder keeps one per layer), so that an Acquire of
// resident experts allocates nothing. set must not be held: Acquired (by
// either call) and not yet Released; that is an error matching ErrInvalid.
// Its Experts slice is reused, and emptied on error.
func (r *Runtime) AcquireInto(ctx context.Context, layer int, ids []int, stream cuda.Stream, set *Set) error {
	if set == nil || set.live.Load() {
		return fmt.Errorf("%w: AcquireInto a nil Set or one still held", ErrInvalid)
	}
	set.Experts = set.Experts[:0]
	if err := r.enter(); err != nil {
		return err
	}
	defer r.mu.RUnlock()
	ls, err := r.layerFor(layer, ids)
	if err != nil {
		return err
	}
	set.Layer, set.rt, set.ls = layer, r, ls
	set.Experts = slices.Grow(set.Experts, len(ids))[:len(ids)]
	if err := r.acquire(ctx, ls, ids, stream, set); err != nil {
		set.Experts = set.Experts[:0]
		return err
	}
	set.live.Store(true)
	return nil
}

func (r *Runtime) acquire(ctx context.Context, ls *layerState, ids []int, stream cuda.Stream, set *Set) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.onDevice {
		return fmt.Errorf("%w: Acquire of layer %d", ErrOnDevice, ls.index)
	}
	var waited time.Duration
	for {
		// check marks ids for fits; others' calls mark theirs while this
		// one waits, so it marks them again each time.
		if err := ls.check(ids); err != nil {
			return err
		}
		if ls.fits(ids) {
			break
		}
		ch := ls.waitChan()
		ls.mu.Unlock()
		start := time.Now()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = fmt.Errorf("rotary: waiting for a free slot of layer %d: %w", ls.index, ctx.Err())
		case <-r.bg.ctx.Done():
			err = ErrClosed
		}
		waited += time.Since(start)
		ls.mu.Lock()
		if err != nil {
			ls.counts.hostWait += waited
			return err
		}
	}
	ls.counts.hostWait += waited
	ls.scorePrediction(ids)

	tab := ls.tab
	tab.Tick++
	tick := tab.Tick
	ls.misses, ls.waits = ls.misses[:0], ls.waits[:0]
	for i, id := range ids {
		tab.Evictor.Requested(id, tick)
		s := int(tab.SlotOf[id])
		if s >= 0 && ls.ready[s].b != nil {
			switch done, err := ls.ready[s].state(); {
			case err != nil && tab.Held[s] == 0:
				// Its copy failed on the device: load it again.
				ls.log.Debug("rotary: reloading an expert whose copy failed", slog.Int("layer", ls.index), slog.Int("expert", id), slog.Any("err", err))
				tab.Empty(s)
				ls.ready[s], ls.fetched[s] = batchRef{}, false
				s = -1
			case done && err == nil:
				ls.ready[s] = batchRef{}
			case !slices.Contains(ls.waits, ls.ready[s]):
				ls.waits = append(ls.waits, ls.ready[s])
			}
		}
		if s < 0 {
			ls.misses = append(ls.misses, i)
			continue
		}
		if ls.fetched[s] {
			ls.fetched[s] = false
			ls.counts.prefetch.Useful++
			ls.counts.prefetch.UsefulBytes += ls.expertBytes
			if ls.ready[s].b != nil {
				ls.counts.prefetch.Late++
			}
		}
		tab.Hit(s, tick)
		set.Experts[i] = View{Expert: id, Slot: s, Parts: ls.views[s]}
		ls.counts.hits++
		if s < tab.Pinned {
			ls.counts.pinnedHits++
		}
	}
	var b *batch
	if len(ls.misses) > 0 {
		ls.missIDs, ls.missSlots = ls.missIDs[:0], ls.missSlots[:0]
		for _, i := range ls.misses {
			ls.missIDs = append(ls.missIDs, ids[i])
		}
		ls.place(ls.missIDs, tick)
		var queued int
		var err error
		b, queued, err = r.fill(ctx, ls, ls.missIDs, ls.missSlots, ls.copyWaits, stream)
		if err != nil {
			ls.unplace(ls.missIDs, ls.missSlots, queued)
			for i, v := range set.Experts {
				if !slices.Contains(ls.misses, i) {
					tab.Held[v.Slot]--
				}
			}
			ls.wake()
			return err
		}
		for j, i := range ls.misses {
			s := ls.missSlots[j]
			set.Experts[i] = View{Expert: ids[i], Slot: s, Parts: ls.views[s]}
		}
		ls.counts.misses += uint64(len(ls.misses))
		ls.counts.bytes += int64(len(ls.misses)) * ls.expertBytes
	}
	if err := r.await(ctx, ls, b, stream); err != nil {
		for _, v := range set.Experts {
			tab.Held[v.Slot]--
		}
		ls.wake()
		return err
	}
	return nil
}

// await makes stream wait for the copies still filling the slots the
// Acquire hit (its own batch's wait was queued by fill), or, without a
// stream, waits for them and for b on the host.
func (r *Runtime) await(ctx context.Context, ls *layerState, b *batch, stream cuda.Stream) error {
	if stream != nil {
		for _, w := range ls.waits {
			if err := stream.Wait(w.b.done); err != nil {
				return fmt.Errorf("rotary: making the compute stream wait for copies: %w", err)
			}
		}
		return nil
	}
	if b != nil {
		ls.waits = append(ls.waits, batchRef{b, 0})
	}
	if len(ls.waits) == 0 {
		return nil
	}
	start := time.Now()
	defer func() { ls.counts.hostWait += time.Since(start) }()
	for _, w := range ls.waits {
		if err := w.b.done.Synchronize(ctx); err != nil {
			return fmt.Errorf("rotary: waiting for layer %d's copies: %w", ls.index, err)
		}
	}
	return nil
}

func (ls *layerState) waitChan() chan struct{} {
	if ls.changed == nil {
		ls.changed = make(chan struct{})
	}
	return ls.changed
}

// wake wakes the Acquires waiting for slots. Called with ls.mu held.
func (ls *layerState) wake() {
	if ls.changed != nil {
		close(ls.changed)
		ls.changed = nil
	}
}

// scorePrediction counts how well the last Prefetch predicted ids, the
// Acquire that follows it. Called with ls.mu held.
func (ls *layerState) scorePrediction(ids []int) {
	if ls.predN == 0 {
		return
	}
	p := &ls.counts.prefetch
	for _, id := range ids {
		if ls.predicted[id] == ls.predStamp {
			p.Correct++
		}
	}
	p.Requested += uint64(len(ids))
	p.Predicted += uint64(ls.predN)
	ls.predN = 0
}

// check rejects duplicate ids and requests the slots cannot hold at once,
// and names ids in the table, for fits and place. Called with ls.mu held.
func (ls *layerState) check(ids []int) error {
	t := ls.tab
	t.Begin()
	for _, id := range ids {
		if !t.Name(id) {
			return fmt.Errorf("%w: expert %d of layer %d", ErrDuplicate, id, ls.index)
		}
	}
	if need, n := t.Unpinned(ids), t.Dynamic(); need > n {
		return fmt.Errorf("%w: %d experts of layer %d that are not pinned, %d dynamic slots", ErrTooMany, need, ls.index, n)
	}
	return nil
}

// fits reports whether the missing ones of ids (named by check) can be
// placed now. Called with ls.mu held.
func (ls *layerState) fits(ids []int) bool { return ls.tab.Fits(ids) }

// place assigns slots to ids (missing, distinct, named) as the table's
// Place does. The evicted experts leave the tables at once; their slots are
// overwritten by copies queued after the Release events still pending on
// them. The slots are held (for the Set, or until the copies are queued);
// place returns how many ids it placed, fewer only if it runs out of slots
// (Prefetch). It appends the slots to ls.missSlots and the events to wait
// for to ls.copyWaits.
func (ls *layerState) place(ids []int, tick uint64) int {
	from := len(ls.missSlots)
	ls.missSlots = ls.tab.Place(ids, tick, ls.missSlots, ls.evicted)
	ls.copyWaits = ls.copyWaits[:0]
	for _, s := range ls.missSlots[from:] {
		ls.copyWaits = ls.pending(s, ls.copyWaits)
	}
	return len(ls.missSlots) - from
}

// evicted counts a prefetched expert evicted before any Acquire asked for
// it as wasted.
func (ls *layerState) evicted(s, _ int) {
	if ls.fetched[s] {
		ls.fetched[s] = false
		ls.counts.prefetch.Wasted++
		ls.counts.prefetch.WastedBytes += ls.expertBytes
	}
}

// pending appends to waits the Release events of slot s that may not have
// completed, and forgets them all: the copy into s is queued after them.
func (ls *layerState) pending(s int, waits []cuda.Event) []cuda.Event {
	for _, f := range ls.fences[s] {
		if done, err := f.Query(); !done && err == nil {
			waits = append(waits, f)
		}
	}
	ls.fences[s] = ls.fences[s][:0]
	return waits
}

// unplace takes back the placement of ids[from:] (their copies were not
// queued): the slots are left empty and released.
func (ls *layerState) unplace(ids, slots []int, from int) {
	for i, s := range slots {
		if i >= from {
			ls.ready[s] = batchRef{}
		}
	}
	ls.tab.Unplace(ids, slots, from)
}

// fill copies experts ids into slots on the copy stream as one batch: after
// the events in waits (Release events of evicted slots), from the host tier's
// pinned memory. If stream is not nil, it waits for the batch. It returns the
// batch and how many experts' copies were queued (all, unless it fails); the
// slots of those are marked as filled by the batch.
func (r *Runtime) fill(ctx context.Context, ls *layerState, ids, slots []int, waits []cuda.Event, stream cuda.Stream) (*batch, int, error) {
	if cap(ls.srcs) < len(ids) {
		ls.srcs = make([]source, len(ids))
	}
	srcs := ls.srcs[:len(ids)]
	b, err := r.batches.get(ctx)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	err = r.host.sources(ctx, ls, ids, srcs)
	if _, lru := r.host.(*lruTier); lru {
		ls.counts.hostWait += time.Since(start) // reading the file, or waiting for pinned memory
	}
	if err != nil {
		r.batches.put(b)
		return nil, 0, err
	}
	r.copyMu.Lock()
	queued, recorded, err := r.queue(b, ls, slots, srcs, waits)
	r.copyMu.Unlock()
	if !recorded {
		r.host.release(srcs, batchRef{})
		r.batches.put(b)
		return nil, 0, err
	}
	ref := batchRef{b, b.gen.Load()}
	r.host.release(srcs, ref)
	for _, s := range slots[:queued] {
		ls.ready[s] = ref
	}
	if err == nil && stream != nil {
		if err = stream.Record(b.before); err == nil {
			b.waited = true
			err = stream.Wait(b.done)
		}
		if err != nil {
			err = fmt.Errorf("rotary: making the compute stream wait for layer %d's copies: %w", ls.index, err)
		}
	}
	r.batches.queued(b)
	return b, queued, err
}

// queue puts a batch on the copy stream. Called with r.copyMu held. It
// reports how many experts' copies it queued and whether the batch's done
// event was recorded after them.
func (r *Runtime) queue(b *batch, ls *layerState, slots []int, srcs []source, waits []cuda.Event) (queued int, recorded bool, err error) {
	if r.batches.failed.Swap(false) {
		// Copies failed on the device, which leaves a stream failed for
		// good: continue on a new one.
		s, err := r.dev.NewStream()
		if err != nil {
			return 0, false, fmt.Errorf("rotary: replacing the failed copy stream: %w", err)
		}
		old := r.copy
		r.copy = s
		// A failed stream may report its failure again on Close: the
		// batch that failed has reported it already.
		if err := old.Close(); err != nil {
			r.log.Debug("rotary: closing the failed copy stream", slog.Any("err", err))
		}
	}
	b.layer, b.waited = ls, false
	if err := r.copy.Record(b.start); err != nil {
		return 0, false, fmt.Errorf("rotary: recording on the copy stream: %w", err)
	}
	for _, w := range waits {
		if err := r.copy.Wait(w); err != nil {
			return 0, false, fmt.Errorf("rotary: making the copy stream wait for a Release event: %w", err)
		}
	}
copies:
	for i, s := range slots {
		src := &srcs[i]
		for _, seg := range src.segs[:src.n] {
			if err = r.copy.CopyHtoD(ls.plane, int64(s)*ls.expertBytes+seg.off, seg.mem); err != nil {
				err = fmt.Errorf("rotary: copying expert %d of layer %d to slot %d: %w", ls.tab.ExpertIn[s], ls.index, s, err)
				break copies
			}
		}
		queued++
	}
	if rerr := r.copy.Record(b.done); rerr != nil {
		return 0, false, errors.Join(err, fmt.Errorf("rotary: recording on the copy stream: %w", rerr))
	}
	return queued, true, err
}

// Prefetch starts copying experts of layer ahead of their Acquire, without
// blocking: into slots no Set holds (as many as there are), from pinned host
// memory. Experts already resident are skipped, and never evicted to make
// room for the others, nor are pinned experts; with the host LRU, experts
// not in pinned memory are read into it in the background instead, ready for
// a later Prefetch or Acquire. Prefetched experts count as used at the
// layer's last Acquire, and are not counted as requests by the policy.
//
// ids is also a prediction of the layer's next Acquire, which Stats.Prefetch
// scores (recall and precision).
func (r *Runtime) Prefetch(layer int, ids []int) error {
	_, err := r.PrefetchN(layer, ids, len(ids))
	return err
}

// PrefetchN is Prefetch copying at most n experts: the first n of ids that
// are not resident. It returns how many it copied, so that a caller can keep
// to a budget of bytes. The prediction it scores is all of ids.
func (r *Runtime) PrefetchN(layer int, ids []int, n int) (int, error) {
	if err := r.enter(); err != nil {
		return 0, err
	}
	defer r.mu.RUnlock()
	ls, err := r.layerFor(layer, ids)
	if err != nil {
		return 0, err
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.onDevice {
		return 0, fmt.Errorf("%w: Prefetch of layer %d", ErrOnDevice, ls.index)
	}
	tab := ls.tab
	tab.Begin()
	ls.predStamp++
	ls.predN = 0
	ls.missIDs, ls.missSlots = ls.missIDs[:0], ls.missSlots[:0]
	for _, id := range ids {
		if !tab.Name(id) {
			continue // named twice
		}
		ls.predicted[id] = ls.predStamp
		ls.predN++
		if tab.SlotOf[id] < 0 && len(ls.missIDs) < n && r.host.prefetch(ls, id) {
			ls.missIDs = append(ls.missIDs, id)
		}
	}
	if len(ls.missIDs) == 0 {
		return 0, nil
	}
	placed := ls.place(ls.missIDs, tab.Tick)
	if placed == 0 {
		return 0, nil // every slot is held
	}
	_, queued, err := r.fill(noWait, ls, ls.missIDs[:placed], ls.missSlots, ls.copyWaits, nil)
	ls.unplace(ls.missIDs, ls.missSlots, queued)
	for _, s := range ls.missSlots[:queued] {
		ls.fetched[s] = true
	}
	ls.wake()
	ls.counts.prefetched += uint64(queued)
	ls.counts.bytes += int64(queued) * ls.expertBytes
	if err != nil && noWait.Err() != nil && errors.Is(err, noWait.Err()) {
		return queued, nil // it would have had to wait
	}
	return queued, err
}

// Repin changes the pinned experts to hot's, keeping each layer's number of
// pinned slots: a layer pins the first of hot's experts for it (as many as
// it has pinned slots), those already pinned staying in place. Each new one
// is copied from pinned host memory into the slot of an expert that leaves,
// after the work reading that slot (Release events), on the copy stream;
// Acquires of it wait for the copy. An expert that is held by a Set, or
// leaves a dynamic slot a Set holds, stays as it is until a later Repin. It
// returns how many experts it moved. A layer hot names no experts for keeps
// its pinned set.
//
// It lets a run re-pin its hot set from a live profile.Recorder instead of
// keeping the one chosen at Open.
func (r *Runtime) Repin(ctx context.Context, hot *profile.HotSet) (int, error) {
	if err := r.enter(); err != nil {
		return 0, err
	}
	defer r.mu.RUnlock()
	if hot == nil || len(hot.Layers) != len(r.layers) {
		return 0, fmt.Errorf("%w: a hot set of %d layers for a model of %d", ErrInvalid, hotLayers(hot), len(r.layers))
	}
	moved := 0
	for _, ls := range r.moe {
		n, err := r.repin(ctx, ls, hot.Layers[ls.index].Experts)
		moved += n
		if err != nil {
			return moved, err
		}
	}
	return moved, nil
}

func hotLayers(h *profile.HotSet) int {
	if h == nil {
		return 0
	}
	return len(h.Layers)
}

func (r *Runtime) repin(ctx context.Context, ls *layerState, want []int) (int, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.onDevice {
		return 0, fmt.Errorf("%w: Repin of layer %d", ErrOnDevice, ls.index)
	}
	for _, e := range want {
		if e < 0 || e >= ls.experts {
			return 0, fmt.Errorf("%w: expert %d of layer %d (%d experts)", ErrExpertRange, e, ls.index, ls.experts)
		}
	}
	tab := ls.tab
	want = want[:min(len(want), tab.Pinned)]
	tab.Begin()
	for _, e := range want {
		tab.Name(e)
	}
	ls.missIDs, ls.missSlots = ls.missIDs[:0], ls.missSlots[:0]
	next := 0 // the next of want to consider
	for s := 0; s < tab.Pinned && next < len(want); s++ {
		if old := tab.ExpertIn[s]; old >= 0 && tab.Named(int(old)) || tab.Held[s] > 0 {
			continue // stays pinned, or in use
		}
		for ; next < len(want); next++ {
			e := want[next]
			d := int(tab.SlotOf[e])
			if d >= 0 && d < tab.Pinned || d >= 0 && tab.Held[d] > 0 {
				continue // pinned already, or held in a dynamic slot
			}
			if d >= 0 { // leaves its dynamic slot, empty now
				tab.Empty(d)
				ls.ready[d], ls.fetched[d] = batchRef{}, false
			}
			break
		}
		if next == len(want) {
			break
		}
		e := want[next]
		next++
		tab.Empty(s)
		tab.Put(s, e)
		ls.missIDs, ls.missSlots = append(ls.missIDs, e), append(ls.missSlots, s)
	}
	if len(ls.missIDs) == 0 {
		return 0, nil
	}
	ls.copyWaits = ls.copyWaits[:0]
	for _, s := range ls.missSlots {
		ls.copyWaits = ls.pending(s, ls.copyWaits)
		tab.Held[s]++
	}
	_, queued, err := r.fill(ctx, ls, ls.missIDs, ls.missSlots, ls.copyWaits, nil)
	for i, s := range ls.missSlots {
		tab.Held[s]--
		if i >= queued { // not copied: the slot is empty
			tab.Empty(s)
			ls.ready[s] = batchRef{}
		}
	}
	ls.wake()
	ls.counts.bytes += int64(queued) * ls.expertBytes
	if err != nil {
		return queued, fmt.Errorf("rotary: re-pinning layer %d: %w", ls.index, err)
	}
	return queued, nil
}

// noWait is a context that is done: calls given it do not block.
var noWait = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Release gives back the experts of s. event, recorded after the work that
// reads them, guards them: their slots are not overwritten before it
// completes (the copy stream waits for it). The runtime keeps the event until
// a later copy into those slots has waited for it, which can be any time
// before Close: the event must outlive the runtime (destroy it after Close),
// and re-recording it only delays reuse. A nil event says the work is
// complete now, as for host code that has finished reading the experts, or a
// caller that synchronized its stream. A set released twice, or never
// acquired, is ErrReleased; a nil set or one of another Runtime, ErrInvalid.
func (r *Runtime) Release(s *Set, event cuda.Event) error {
	switch {
	case s == nil:
		return fmt.Errorf("%w: Release of a nil Set", ErrInvalid)
	case s.rt == nil:
		return fmt.Errorf("%w: the Set holds nothing (it was never acquired)", ErrReleased)
	case s.rt != r:
		return fmt.Errorf("%w: Release of a Set of another Runtime", ErrInvalid)
	}
	if !s.live.CompareAndSwap(true, false) {
		return ErrReleased
	}
	ls := s.ls
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, v := range s.Experts {
		ls.tab.Held[v.Slot]--
		if event != nil {
			ls.fence(v.Slot, event) // pinned slots too: Repin overwrites them
		}
	}
	ls.wake()
	return nil
}

// fence adds a Release event to a slot, dropping completed ones as the list
// grows.
func (ls *layerState) fence(s int, e cuda.Event) {
	fs := ls.fences[s]
	if slices.Contains(fs, e) {
		return // the most recent record of e is the one that counts
	}
	if len(fs) >= 4 {
		fs = slices.DeleteFunc(fs, func(f cuda.Event) bool {
			done, err := f.Query()
			return done || err != nil
		})
	}
	ls.fences[s] = append(fs, e)
}

// Close waits for the runtime's copies and background fills, then frees
// every device and pinned byte it allocated. Calls blocked in Acquire waiting
// for a slot, for host memory or for a copy batch return ErrClosed; waits for
// copies already queued end with the copies. Work the caller queued that
// reads acquired experts must have completed.
func (r *Runtime) Close() error {
	r.bg.cancel() // before the lock, which blocked calls hold
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	r.mu.Unlock()
	r.bg.stop()
	err := r.drain()
	if r.log.Enabled(context.Background(), slog.LevelDebug) {
		r.log.Debug("rotary: closing", slog.Any("stats", r.Stats()))
	}
	return errors.Join(err, r.free())
}

// free releases what open allocated. The copy stream goes first: copies
// still queued on it write into the planes from the host tier's pinned
// memory, so both must outlive them.
func (r *Runtime) free() error {
	errs := []error{r.drain()}
	if r.host != nil {
		errs = append(errs, r.host.close())
	}
	for _, ls := range r.moe {
		if !ls.plane.IsZero() {
			errs = append(errs, r.dev.Free(ls.plane))
		}
	}
	if r.counters.Len() > 0 {
		errs = append(errs, r.dev.FreeHost(r.counters))
		r.counters = cuda.HostBuffer{}
	}
	r.batches.close()
	return errors.Join(errs...)
}

// drain waits for the copies queued on the copy stream, then closes it.
func (r *Runtime) drain() error {
	if r.copy == nil {
		return nil
	}
	err := r.copy.Synchronize(context.Background())
	if err != nil {
		err = fmt.Errorf("rotary: copies failed: %w", err)
	}
	err = errors.Join(err, r.copy.Close())
	r.copy = nil
	return err
}
