package rotary

import (
	"context"
	"fmt"
	"slices"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/internal/residency"
)

// deviceCounters is the number of counters a layer on the device keeps:
// hits, pinned hits, misses, in this order (Handover.Counters).
const deviceCounters = 3

// Handover is a layer whose residency the device decides from now on
// (Runtime.Handover): what its resolve and fill kernels need.
type Handover struct {
	Plane Plane
	// Residency is the tables at the handover; nothing holds a slot.
	Residency Residency
	// Policy is the runtime's eviction policy, LRU or LFU (the policies a
	// device runs); Counts is LFU's requests per expert so far, nil under
	// LRU.
	Policy Policy
	Counts []uint64
	// Sources are the device addresses of expert 0's bytes of each part of
	// Plane.Parts in the model file, registered and mapped into the device:
	// expert e's part i starts at Sources[i] + e·Plane.Parts[i].Size.
	Sources []uint64
	// Counters is host memory mapped into the device where the kernels add
	// the layer's hits, pinned hits and misses (three uint64s from
	// CountersOffset); Stats reads them.
	Counters       cuda.HostBuffer
	CountersOffset int64
}

// Handover gives the residency decisions of layer to the device: it waits
// for the copies the runtime queued (the pinned experts' among them), and
// returns the layer's tables and where its experts lie in mapped memory.
// From then on Acquire, Prefetch and Repin of the layer fail with
// ErrOnDevice, and Stats counts what the device reports. The runtime must
// have been opened WithDeviceResidency, under LRU or LFU, and no Set of the
// layer may be held; a layer is handed over once.
func (r *Runtime) Handover(ctx context.Context, layer int) (Handover, error) {
	if err := r.enter(); err != nil {
		return Handover{}, err
	}
	defer r.mu.RUnlock()
	ls, err := r.layerOf(layer)
	if err != nil {
		return Handover{}, err
	}
	mapped, ok := r.host.(*mappedTier)
	if !ok || r.counters.Len() == 0 {
		return Handover{}, fmt.Errorf("%w: Handover of layer %d by a runtime opened without WithDeviceResidency", ErrInvalid, layer)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	t := ls.tab
	var counts []uint64
	policy := LRU
	switch residency.RuleOf(t.Evictor) {
	case residency.RuleLRU:
	case residency.RuleLFU:
		policy, counts = LFU, slices.Clone(t.Evictor.(*residency.LFU).Counts)
	default:
		return Handover{}, fmt.Errorf("%w: layer %d's eviction policy has no device equivalent (LRU and LFU do)", ErrInvalid, layer)
	}
	switch {
	case ls.onDevice:
		return Handover{}, fmt.Errorf("%w: layer %d was handed over already", ErrOnDevice, layer)
	case slices.ContainsFunc(t.Held, func(n int32) bool { return n != 0 }):
		return Handover{}, fmt.Errorf("%w: Handover of layer %d while a Set holds some of its experts", ErrInvalid, layer)
	}
	r.copyMu.Lock()
	err = r.copy.Synchronize(ctx)
	r.copyMu.Unlock()
	if err != nil {
		return Handover{}, fmt.Errorf("rotary: waiting for layer %d's copies before the handover: %w", layer, err)
	}
	h := Handover{
		Residency: ls.residency(),
		Policy:    policy, Counts: counts,
		Counters: r.counters, CountersOffset: int64(slices.Index(r.moe, ls)) * deviceCounters * 8,
	}
	h.Plane, _ = r.Plane(layer)
	for _, p := range ls.parts {
		addr := mapped.deviceAddr(p.fileOffset, int64(ls.experts)*p.Size)
		if addr == 0 {
			return Handover{}, fmt.Errorf("%w: layer %d's %s experts are not mapped into the device", ErrInvalid, layer, p.Role)
		}
		h.Sources = append(h.Sources, addr)
	}
	ls.device = cuda.View[uint64](r.counters.Bytes()[h.CountersOffset:])[:deviceCounters]
	ls.onDevice = true
	return h, nil
}
