package device

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/internal/residency"
)

// maxExperts is the most experts a layer may have (RTD_MAX_EXPERTS).
const maxExperts = 1024

// threads is the block of both kernels (RTD_THREADS).
const threads = 256

// Resolver keeps the residency of a runtime's MoE layers on the device. Its
// methods queue work on the stream they are given and do not wait (but
// Tables and Misses, which read back); a Resolver is used by one goroutine
// at a time, and a layer's steps must be queued on one stream, in order.
type Resolver struct {
	dev     cuda.Device
	module  cuda.Module
	resolve cuda.Kernel
	fill    cuda.Kernel
	layers  map[int]*layer
}

// layer is one layer's tables and scratch in device memory.
type layer struct {
	h                      rotary.Handover
	experts, slots, pinned int
	lfu                    bool

	mem                                            cuda.Buffer // the tables, then parts, then misses
	slotOf, expertIn, lastUse, counts, named, tick cuda.Buffer
	parts, misses                                  cuda.Buffer
}

// New takes every MoE layer of rt over (rotary.Runtime.Handover): it
// uploads each layer's tables and loads the kernels. rt must have been
// opened WithDeviceResidency on dev, under LRU or LFU. A failure leaves the
// layers handed over so far with the device's tables freed: rt cannot
// decide their residency again.
func New(ctx context.Context, dev cuda.Device, rt *rotary.Runtime) (_ *Resolver, err error) {
	r := &Resolver{dev: dev, layers: map[int]*layer{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	if r.module, err = dev.Load(ctx, Programs()[0]); err != nil {
		return nil, fmt.Errorf("device: loading the resolve kernels: %w", err)
	}
	if r.resolve, err = r.module.Kernel(kResolve); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if r.fill, err = r.module.Kernel(kFill); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	s, err := dev.NewStream()
	if err != nil {
		return nil, fmt.Errorf("device: creating a stream for the tables: %w", err)
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	for _, lp := range rt.Plan().Layers {
		h, err := rt.Handover(ctx, lp.Layer)
		if err != nil {
			return nil, fmt.Errorf("device: %w", err)
		}
		l, err := r.newLayer(s, h)
		if l != nil {
			r.layers[lp.Layer] = l
		}
		if err != nil {
			return nil, err
		}
	}
	if err := s.Synchronize(ctx); err != nil {
		return nil, fmt.Errorf("device: uploading the tables: %w", err)
	}
	return r, nil
}

// newLayer allocates and uploads one layer's tables, queuing the copies
// on s.
func (r *Resolver) newLayer(s cuda.Stream, h rotary.Handover) (*layer, error) {
	res := h.Residency
	l := &layer{h: h, experts: len(res.SlotOf), slots: len(res.ExpertIn), pinned: res.Pinned, lfu: h.Policy == rotary.LFU}
	if l.experts > maxExperts {
		return nil, fmt.Errorf("device: layer %d has %d experts, more than the %d the resolve kernel handles", h.Plane.Layer, l.experts, maxExperts)
	}
	sizes, offs, total := layout(l.experts, l.slots, l.pinned, len(h.Plane.Parts), l.lfu)
	var err error
	if l.mem, err = r.dev.Alloc(total); err != nil {
		return nil, fmt.Errorf("device: allocating layer %d's tables: %w", h.Plane.Layer, err)
	}
	bufs := []*cuda.Buffer{&l.slotOf, &l.expertIn, &l.lastUse, &l.counts, &l.named, &l.tick, &l.parts, &l.misses}
	for i, b := range bufs {
		if sizes[i] == 0 {
			continue
		}
		if *b, err = l.mem.Slice(offs[i], int64(sizes[i])); err != nil {
			return l, fmt.Errorf("device: %w", err)
		}
	}
	parts := make([]int64, 0, 3*len(h.Plane.Parts))
	for i, p := range h.Plane.Parts {
		parts = append(parts, int64(h.Sources[i]), p.Size, p.Offset)
	}
	uploads := []struct {
		dst cuda.Buffer
		src []byte
	}{
		{l.slotOf, cuda.Bytes(res.SlotOf)}, {l.expertIn, cuda.Bytes(res.ExpertIn)}, {l.lastUse, cuda.Bytes(res.LastUse)},
		{l.counts, cuda.Bytes(h.Counts)}, {l.tick, cuda.Bytes([]uint64{res.Tick})}, {l.parts, cuda.Bytes(parts)},
	}
	if err := s.Memset(l.mem, 0, total, 0); err != nil {
		return l, fmt.Errorf("device: clearing layer %d's tables: %w", h.Plane.Layer, err)
	}
	for _, u := range uploads {
		if len(u.src) == 0 {
			continue
		}
		if err := s.CopyHtoD(u.dst, 0, u.src); err != nil {
			return l, fmt.Errorf("device: uploading layer %d's tables: %w", h.Plane.Layer, err)
		}
	}
	return l, nil
}

// layout places a layer's tables and scratch in one allocation, each at an
// 8-byte boundary: slotOf, expertIn, lastUse, counts (LFU only), named,
// tick, parts, misses. It returns their sizes, offsets and the total.
func layout(experts, slots, pinned, parts int, lfu bool) (sizes []int, offs []int64, total int64) {
	countBytes := 0
	if lfu {
		countBytes = 8 * experts
	}
	sizes = []int{4 * experts, 4 * slots, 8 * slots, countBytes, 8 * experts, 8, 24 * parts, 4 * (1 + 3*(slots-pinned))}
	offs = make([]int64, len(sizes))
	for i, n := range sizes {
		offs[i] = total
		total += int64(n+7) &^ 7
	}
	return sizes, offs, total
}

// TableBytes bounds the device memory a Resolver allocates for a model of
// h's shape: its tables when every layer has a slot for each expert. A VRAM
// budget reserves it besides the slots.
func TableBytes(h experts.HParams) int64 {
	_, _, per := layout(h.NumExperts, h.NumExperts, 0, 3, true)
	return int64(h.NumLayers) * per
}

// Resolve queues on s one step of layer: the n routed expert ids in ids
// (int32, each below the layer's number of experts) are resolved to slots,
// written to slotIds (n int32: the slot of each id, in the layer's plane),
// and the misses are copied into their slots. Two launches; the host does
// not wait. Every miss must find a slot: n must be at most the layer's
// dynamic slots, unless those hold every expert that is not pinned
// (rotary.ErrTooMany otherwise).
func (r *Resolver) Resolve(s cuda.Stream, layer int, ids cuda.Buffer, n int, slotIds cuda.Buffer) error {
	l, err := r.layer(layer)
	if err != nil {
		return err
	}
	dynamic := l.slots - l.pinned
	switch {
	case n <= 0 || n > dynamic && dynamic < l.experts-l.pinned:
		return fmt.Errorf("device: %w: %d routed ids for layer %d's %d dynamic slots", rotary.ErrTooMany, n, layer, dynamic)
	case ids.Size() < 4*int64(n) || slotIds.Size() < 4*int64(n):
		return fmt.Errorf("device: %w: %d ids, buffers of %d and %d bytes", rotary.ErrSize, n, ids.Size(), slotIds.Size())
	}
	counts := cuda.U64(0)
	if l.lfu {
		counts = cuda.Ptr(l.counts)
	}
	one := cuda.Dim3{X: 1, Y: 1, Z: 1}
	block := cuda.Dim3{X: threads, Y: 1, Z: 1}
	if err := s.Launch(r.resolve, cuda.LaunchConfig{Grid: one, Block: block},
		cuda.Ptr(l.slotOf), cuda.Ptr(l.expertIn), cuda.Ptr(l.lastUse), counts, cuda.Ptr(l.named), cuda.Ptr(l.tick),
		cuda.Ptr(ids), cuda.I32(int32(n)), cuda.I32(int32(l.experts)), cuda.I32(int32(l.slots)), cuda.I32(int32(l.pinned)),
		cuda.Ptr(slotIds), cuda.Ptr(l.misses), cuda.HostPtr(l.h.Counters, l.h.CountersOffset)); err != nil {
		return fmt.Errorf("device: resolving layer %d: %w", layer, err)
	}
	grid := cuda.Dim3{X: uint32(min(n, dynamic)), Y: uint32(fillShares(l.h.Plane.SlotBytes)), Z: 1}
	if err := s.Launch(r.fill, cuda.LaunchConfig{Grid: grid, Block: block},
		cuda.Ptr(l.h.Plane.Buf), cuda.I64(l.h.Plane.SlotBytes), cuda.Ptr(l.misses), cuda.Ptr(l.parts), cuda.I32(int32(len(l.h.Plane.Parts)))); err != nil {
		return fmt.Errorf("device: filling layer %d's misses: %w", layer, err)
	}
	return nil
}

// fillShares is how many blocks copy one expert of slotBytes: enough for
// the copies of a step's misses to keep many reads in flight over the bus,
// each thread moving a few KiB.
func fillShares(slotBytes int64) int {
	const perBlock = threads * 8 * 16 // 16 eight-byte words a thread
	return int(min(max((slotBytes+perBlock-1)/perBlock, 1), 64))
}

func (r *Resolver) layer(layer int) (*layer, error) {
	l, ok := r.layers[layer]
	if !ok {
		return nil, fmt.Errorf("device: %w: layer %d", rotary.ErrNoExperts, layer)
	}
	return l, nil
}

// Tables reads layer's tables back once the work queued on s has run (it
// waits for s): SlotOf, ExpertIn, LastUse, Pinned and Tick (Held is all
// zeros: nothing holds a slot between steps), and LFU's counts (nil under
// LRU).
func (r *Resolver) Tables(ctx context.Context, s cuda.Stream, layer int) (rotary.Residency, []uint64, error) {
	l, err := r.layer(layer)
	if err != nil {
		return rotary.Residency{}, nil, err
	}
	res := rotary.Residency{
		SlotOf: make([]int32, l.experts), ExpertIn: make([]int32, l.slots), LastUse: make([]uint64, l.slots),
		Held: make([]int32, l.slots), Pinned: l.pinned,
	}
	var counts []uint64
	if l.lfu {
		counts = make([]uint64, l.experts)
	}
	tick := make([]uint64, 1)
	err = r.read(ctx, s, layer, []readback{
		{cuda.Bytes(res.SlotOf), l.slotOf}, {cuda.Bytes(res.ExpertIn), l.expertIn}, {cuda.Bytes(res.LastUse), l.lastUse},
		{cuda.Bytes(counts), l.counts}, {cuda.Bytes(tick), l.tick},
	})
	res.Tick = tick[0]
	return res, counts, err
}

// Miss is an expert a step copied in: into Slot, evicting expert Evicted
// (-1 when the slot was empty). It is the host twin's type, so that tests
// compare the two directly.
type Miss = residency.Miss

// Misses reads back the misses of layer's last step once the work queued
// on s has run (it waits for s), in ascending order of expert.
func (r *Resolver) Misses(ctx context.Context, s cuda.Stream, layer int) ([]Miss, error) {
	l, err := r.layer(layer)
	if err != nil {
		return nil, err
	}
	raw := make([]int32, 1+3*(l.slots-l.pinned))
	if err := r.read(ctx, s, layer, []readback{{cuda.Bytes(raw), l.misses}}); err != nil {
		return nil, err
	}
	out := make([]Miss, 0, raw[0])
	for j := range int(raw[0]) {
		out = append(out, Miss{Expert: int(raw[1+3*j]), Slot: int(raw[2+3*j]), Evicted: int(raw[3+3*j])})
	}
	return out, nil
}

type readback struct {
	dst []byte
	src cuda.Buffer
}

// read queues copies on s and waits for them.
func (r *Resolver) read(ctx context.Context, s cuda.Stream, layer int, rs []readback) error {
	for _, rb := range rs {
		if len(rb.dst) == 0 {
			continue
		}
		if err := s.CopyDtoH(rb.dst, rb.src, 0); err != nil {
			return fmt.Errorf("device: reading layer %d's tables: %w", layer, err)
		}
	}
	if err := s.Synchronize(ctx); err != nil {
		return fmt.Errorf("device: reading layer %d's tables: %w", layer, err)
	}
	return nil
}

// Close frees the tables and unloads the kernels; the work queued with them
// must have completed. The layers stay with the device: their runtime does
// not take them back.
func (r *Resolver) Close() error {
	var errs []error
	for _, l := range r.layers {
		if !l.mem.IsZero() {
			errs = append(errs, r.dev.Free(l.mem))
		}
	}
	r.layers = nil
	if r.module != nil {
		errs = append(errs, r.module.Close())
		r.module = nil
	}
	return errors.Join(errs...)
}
