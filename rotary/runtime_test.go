package rotary

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var bg = context.Background()

func TestAcquireCopiesAndHits(t *testing.T) {
	for _, host := range []int64{0, 300 << 10 * 8} { // mapped; an LRU of a few experts per size
		m := openTestModel(t)
		var copies atomic.Int64
		dev := newHost(t, cuda.WithCopyFault(func(c cuda.CopyInfo) error {
			if c.Kind == cuda.CopyHtoD {
				copies.Add(1)
			}
			return nil
		}))
		opts := []Option{WithSlots(6)}
		if host > 0 {
			opts = append(opts, WithHostBudget(host), WithoutWarmup())
		}
		rt := openRuntime(t, m, dev, opts...)
		wantMode := HostMapped
		if host > 0 {
			wantMode = HostLRU
		}
		require.Equal(t, wantMode, rt.Plan().Host.Mode)
		stream, err := dev.NewStream()
		require.NoError(t, err)
		defer stream.Close()
		ev, err := dev.NewEvent(0)
		require.NoError(t, err)
		defer ev.Close()

		ids := []int{9, 3, 15, 0}
		set, err := rt.Acquire(bg, 1, ids, stream)
		require.NoError(t, err)
		require.NoError(t, stream.Synchronize(bg))
		require.Len(t, set.Experts, 4)
		for i, v := range set.Experts {
			assert.Equal(t, ids[i], v.Expert)
			assert.Equal(t, fileBytes(t, m, 1, v.Expert), viewBytes(t, dev, v), "expert %d", v.Expert)
			require.Len(t, v.Parts, 3)
			gate, ok := v.Part(0)
			require.True(t, ok)
			assert.Equal(t, uint64(256), gate.Cols)
		}
		perExpert := int64(3)
		if host > 0 {
			perExpert = 1 // a pinned copy holds the whole expert
		}
		assert.Equal(t, 4*perExpert, copies.Load())
		require.NoError(t, stream.Record(ev))
		require.NoError(t, rt.Release(set, ev))

		// All resident: no copies.
		copies.Store(0)
		set, err = rt.Acquire(bg, 1, []int{0, 15}, stream)
		require.NoError(t, err)
		assert.Zero(t, copies.Load())
		assert.Equal(t, ids[3], set.Experts[0].Expert)
		require.NoError(t, rt.Release(set, nil))

		s := rt.Stats()
		assert.Equal(t, uint64(2), s.VRAM.Hits)
		assert.Equal(t, uint64(4), s.VRAM.Misses)
		assert.Equal(t, 4*m.ExpertBytes(1), s.VRAM.Bytes)
		assert.Equal(t, uint64(2), s.Layers[1].Hits)
		if host > 0 {
			assert.Equal(t, uint64(4), s.Host.Misses)
			assert.Equal(t, 4*m.ExpertBytes(1), s.Host.Bytes)
		} else {
			assert.Equal(t, uint64(4), s.Host.Hits)
		}
		assert.Positive(t, s.TransferTime)
		r := rt.ResetStats()
		assert.Equal(t, s.VRAM, r.VRAM)
		assert.Zero(t, rt.Stats().VRAM)
		checkTables(t, rt, 1, nil)
	}
}

func TestAcquireNilStreamWaits(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t, cuda.WithTiming(cuda.Timing{PinnedBandwidth: 1e9})) // 108 KiB take ~0.1 ms
	rt := openRuntime(t, m, dev, WithSlots(4))
	set, err := rt.Acquire(bg, 0, []int{1, 2}, nil)
	require.NoError(t, err)
	for _, v := range set.Experts { // no synchronization: Acquire waited
		assert.Equal(t, fileBytes(t, m, 0, v.Expert), viewBytes(t, dev, v))
	}
	require.NoError(t, rt.Release(set, nil))
	assert.Positive(t, rt.Stats().HostWait)
}

func TestAcquireBadRequests(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	rt := openRuntime(t, m, dev, WithSlots(4))
	for _, tc := range []struct {
		layer int
		ids   []int
		want  error
	}{
		{0, []int{1, 2, 1}, ErrDuplicate},
		{0, []int{16}, ErrExpertRange},
		{0, []int{-1}, ErrExpertRange},
		{2, []int{0}, ErrNoExperts},
		{-1, []int{0}, ErrNoExperts},
		{0, []int{0, 1, 2, 3, 4}, ErrTooMany},
	} {
		_, err := rt.Acquire(bg, tc.layer, tc.ids, nil)
		assert.ErrorIs(t, err, tc.want, "layer %d ids %v", tc.layer, tc.ids)
		if err := rt.Prefetch(tc.layer, tc.ids); tc.want == ErrDuplicate || tc.want == ErrTooMany {
			assert.NoError(t, err, "Prefetch skips repeats and stops when out of slots")
		} else {
			assert.ErrorIs(t, err, tc.want, "Prefetch layer %d ids %v", tc.layer, tc.ids)
		}
	}
	set, err := rt.Acquire(bg, 0, nil, nil)
	require.NoError(t, err)
	assert.Empty(t, set.Experts)
	require.NoError(t, rt.Release(set, nil))
	assert.ErrorIs(t, rt.Release(set, nil), ErrReleased)
	assert.ErrorIs(t, rt.Release(nil, nil), ErrInvalid)
	assert.ErrorContains(t, rt.Release(nil, nil), "nil Set")
	assert.ErrorIs(t, rt.Release(&Set{}, nil), ErrReleased)
	checkTables(t, rt, 0, nil)
	require.NoError(t, rt.Close())
	_, err = rt.Acquire(bg, 0, []int{1}, nil)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, rt.Close(), ErrClosed)
}

func TestHostLRUTooMany(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	// 16 slots, but pinned memory for 5 experts of each size only.
	rt := openRuntime(t, m, dev, WithSlots(16), WithHostBudget(5*m.ExpertBytes(1)+5*m.ExpertBytes(0)), WithoutWarmup())
	_, err := rt.Acquire(bg, 0, []int{0, 1, 2, 3, 4, 5, 6}, nil)
	require.ErrorIs(t, err, ErrTooMany)
	checkTables(t, rt, 0, nil)
	set, err := rt.Acquire(bg, 0, []int{0, 1, 2, 3}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(set, nil))
}

func TestLRUVictims(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	rt := openRuntime(t, m, dev, WithSlots(4))
	acquire := func(ids ...int) {
		set, err := rt.Acquire(bg, 0, ids, nil)
		require.NoError(t, err)
		require.NoError(t, rt.Release(set, nil))
	}
	acquire(3, 1, 2, 0) // slots 0-3, tick 1
	acquire(2)          // tick 2
	acquire(5, 6)       // evicts the least recent, lowest id first: 0 then 1
	r, err := rt.Residency(0)
	require.NoError(t, err)
	assert.Equal(t, []int32{3, 6, 2, 5}, r.ExpertIn)
	acquire(7, 8, 9) // 3 (tick 1), then 2 (tick 2), then 5 (tick 3, lower than 6)
	r, err = rt.Residency(0)
	require.NoError(t, err)
	assert.Equal(t, []int32{7, 6, 8, 9}, r.ExpertIn)
	checkTables(t, rt, 0, nil)
}

func TestPinnedExpertsStay(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	hot := &profile.HotSet{Layers: make([]profile.LayerHotSet, 2)}
	hot.Layers[0].Experts = []int{7, 2}
	rt := openRuntime(t, m, dev, WithSlots(4), WithHotSet(hot))
	require.NoError(t, dev.Synchronize(bg))
	for i := range 40 {
		ids := []int{(i * 3) % 16, (i*5 + 1) % 16, (i*7 + 2) % 16}
		if ids[1] == ids[0] || ids[2] == ids[0] || ids[2] == ids[1] {
			continue
		}
		set, err := rt.Acquire(bg, 0, ids, nil)
		require.NoError(t, err)
		for _, v := range set.Experts {
			assert.Equal(t, fileBytes(t, m, 0, v.Expert), viewBytes(t, dev, v))
			if v.Expert == 7 || v.Expert == 2 {
				assert.Less(t, v.Slot, 2)
			}
		}
		require.NoError(t, rt.Release(set, nil))
		checkTables(t, rt, 0, []int{7, 2})
	}
	s := rt.Stats()
	assert.Positive(t, s.PinnedHits)
	p, err := rt.Plane(0)
	require.NoError(t, err)
	assert.Equal(t, 6, p.Slots)
	assert.Equal(t, 2, p.Pinned)
	assert.Equal(t, m.ExpertBytes(0)*6, p.Buf.Size())
	// Five experts that are not pinned do not fit in four dynamic slots;
	// with two pinned ones they do.
	_, err = rt.Acquire(bg, 0, []int{0, 1, 3, 4, 5}, nil)
	assert.ErrorIs(t, err, ErrTooMany)
	set, err := rt.Acquire(bg, 0, []int{0, 1, 3, 4, 7, 2}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(set, nil))
}

func TestAcquireWaitsForRelease(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	rt := openRuntime(t, m, dev, WithSlots(4))
	held, err := rt.Acquire(bg, 0, []int{0, 1, 2, 3}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	_, err = rt.Acquire(ctx, 0, []int{4}, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// Hits need no slot: they do not wait.
	again, err := rt.Acquire(bg, 0, []int{2, 3}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(again, nil))

	got := make(chan error, 1)
	go func() {
		set, err := rt.Acquire(bg, 0, []int{4, 5}, nil)
		if err == nil {
			err = rt.Release(set, nil)
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Acquire returned %v while every slot was held", err)
	case <-time.After(20 * time.Millisecond):
	}
	require.NoError(t, rt.Release(held, nil))
	require.NoError(t, <-got)
	assert.Positive(t, rt.Stats().HostWait)

	// Close wakes a blocked Acquire (every slot held, never released).
	_, err = rt.Acquire(bg, 0, []int{0, 1, 2, 3}, nil)
	require.NoError(t, err)
	go func() {
		_, err := rt.Acquire(bg, 0, []int{9}, nil)
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, rt.Close())
	require.ErrorIs(t, <-got, ErrClosed)
}

func TestReleaseEventGuardsSlot(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t, cuda.WithVirtualClock(), cuda.WithTiming(cuda.Timing{PinnedBandwidth: 1e9, CallOverhead: time.Microsecond}))
	rt := openRuntime(t, m, dev, WithSlots(4))
	mod, err := dev.Load(bg, sleepProgram)
	require.NoError(t, err)
	k, err := mod.Kernel("compute")
	require.NoError(t, err)
	compute, err := dev.NewStream()
	require.NoError(t, err)
	ev, err := dev.NewEvent(0)
	require.NoError(t, err)
	set, err := rt.Acquire(bg, 0, []int{0, 1, 2, 3}, compute)
	require.NoError(t, err)
	one := cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 1}}
	require.NoError(t, compute.Launch(k, one, cuda.I64(int64(time.Second)))) // reads the slots for a second
	require.NoError(t, compute.Record(ev))
	require.NoError(t, rt.Release(set, ev))
	done, err := dev.EventTime(ev)
	require.ErrorIs(t, err, cuda.ErrNotReady, "%v", done)

	// The new copy waits for the kernel: its batch ends after the event.
	set, err = rt.Acquire(bg, 0, []int{4}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(set, nil))
	evAt, err := dev.EventTime(ev)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, dev.Now(), evAt)
	assert.GreaterOrEqual(t, evAt, time.Second)
	assert.Greater(t, rt.Stats().TransferTime, time.Second, "the copy stream waited for the event")
}

func TestPrefetch(t *testing.T) {
	for _, host := range []int64{0, 300 << 10 * 8} {
		m := openTestModel(t)
		dev := newHost(t)
		opts := []Option{WithSlots(4)}
		if host > 0 {
			opts = append(opts, WithHostBudget(host), WithoutWarmup())
		}
		rt := openRuntime(t, m, dev, opts...)
		require.NoError(t, rt.Prefetch(1, []int{4, 5, 4}))
		if host > 0 {
			// Not in pinned memory yet: read in the background; wait for it.
			require.Eventually(t, func() bool { s, _ := rt.host.stats(); return s.Bytes == 2*m.ExpertBytes(1) }, time.Second, time.Millisecond)
			require.NoError(t, rt.Prefetch(1, []int{4, 5}))
		}
		require.NoError(t, dev.Synchronize(bg))
		set, err := rt.Acquire(bg, 1, []int{5, 4}, nil)
		require.NoError(t, err)
		for _, v := range set.Experts {
			assert.Equal(t, fileBytes(t, m, 1, v.Expert), viewBytes(t, dev, v))
		}
		s := rt.Stats()
		assert.Equal(t, uint64(2), s.VRAM.Hits)
		assert.Equal(t, uint64(2), s.Prefetched)
		// Held slots are not prefetched into; the rest are.
		require.NoError(t, rt.Prefetch(1, []int{6, 7, 8, 9}))
		r, err := rt.Residency(1)
		require.NoError(t, err)
		assert.Equal(t, int32(5), r.ExpertIn[r.SlotOf[5]])
		assert.Equal(t, int32(4), r.ExpertIn[r.SlotOf[4]])
		require.NoError(t, rt.Release(set, nil))
		checkTables(t, rt, 1, nil)
	}
}

// TestPrefetchScoring checks what Stats.Prefetch counts, that PrefetchN keeps
// to its limit, and that a prefetch never evicts an expert it names.
func TestPrefetchScoring(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	rt := openRuntime(t, m, dev, WithSlots(4))
	acquire := func(ids ...int) {
		t.Helper()
		set, err := rt.Acquire(bg, 1, ids, nil)
		require.NoError(t, err)
		require.NoError(t, rt.Release(set, nil))
	}
	acquire(0, 1, 2, 3)
	// LRU's victim would be expert 0 (all four last used together, lowest
	// id first), but the prediction names it: expert 1 goes.
	n, err := rt.PrefetchN(1, []int{0, 9, 10}, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "one copy allowed")
	r, err := rt.Residency(1)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, r.SlotOf[0], int32(0))
	assert.GreaterOrEqual(t, r.SlotOf[9], int32(0))
	assert.Equal(t, int32(-1), r.SlotOf[1])
	assert.Equal(t, int32(-1), r.SlotOf[10], "beyond the limit")
	require.NoError(t, dev.Synchronize(bg))

	acquire(9, 2) // 9 was predicted and prefetched, 2 neither
	p := rt.Stats().Prefetch
	assert.Equal(t, PrefetchStats{Useful: 1, UsefulBytes: m.ExpertBytes(1), Predicted: 3, Requested: 2, Correct: 1}, p)
	assert.InDelta(t, 0.5, p.Recall(), 1e-9)
	assert.InDelta(t, 1.0/3, p.Precision(), 1e-9)

	// Two experts prefetched and evicted unused by the next Acquire's misses;
	// the first prediction is replaced by the second, so only that one counts.
	require.NoError(t, rt.Prefetch(1, []int{11}))
	require.NoError(t, rt.Prefetch(1, []int{12}))
	require.NoError(t, dev.Synchronize(bg))
	acquire(4, 5, 6, 7)
	p = rt.Stats().Prefetch
	assert.Equal(t, uint64(2), p.Wasted)
	assert.Equal(t, 2*m.ExpertBytes(1), p.WastedBytes)
	assert.Equal(t, uint64(4), p.Predicted)
	assert.Equal(t, uint64(6), p.Requested)
	assert.Equal(t, uint64(1), p.Correct)
	assert.Equal(t, uint64(3), rt.Stats().Prefetched)
	checkTables(t, rt, 1, nil)
}

func TestCloseFreesEverything(t *testing.T) {
	m := openTestModel(t)
	for _, opts := range [][]Option{
		{WithSlots(4)},
		{WithSlots(4), WithHostBudget(1 << 20), WithHostChunk(300 << 10)},
		{WithVRAM(4 << 20), WithHostBudget(2 << 20)},
	} {
		dev := newHost(t)
		rt, err := Open(bg, m, dev, opts...)
		require.NoError(t, err)
		set, err := rt.Acquire(bg, 0, []int{1, 2, 3}, nil)
		require.NoError(t, err)
		require.NoError(t, rt.Prefetch(1, []int{1, 2, 3}))
		require.NoError(t, rt.Release(set, nil))
		st := dev.Stats()
		assert.LessOrEqual(t, st.DeviceBytes, rt.Plan().VRAM)
		assert.Positive(t, st.PinnedBytes+st.RegisteredBytes)
		require.NoError(t, rt.Close())
		assert.Equal(t, cuda.Stats{}, dev.Stats())
	}
}

func TestOpenAllocationFailures(t *testing.T) {
	m := openTestModel(t)
	injected := errors.New("injected")
	for _, kind := range []cuda.AllocKind{cuda.AllocDevice, cuda.AllocPinned, cuda.AllocRegister} {
		for n := 1; ; n++ {
			dev := newHost(t, cuda.WithAllocFault(func(a cuda.AllocInfo) error {
				if a.Kind == kind && a.N == n {
					return injected
				}
				return nil
			}))
			opts := []Option{WithSlots(4)}
			if kind == cuda.AllocPinned {
				opts = append(opts, WithHostBudget(2<<20), WithHostChunk(200<<10))
			}
			rt, err := Open(bg, m, dev, opts...)
			if err == nil { // fewer allocations of this kind than n
				require.NoError(t, rt.Close())
				require.Greater(t, n, 1, "%v: no allocation to fail", kind)
				break
			}
			require.ErrorIs(t, err, injected)
			assert.Equal(t, cuda.Stats{}, dev.Stats(), "%v %d: leaked", kind, n)
		}
	}
}

func TestCopyFailure(t *testing.T) {
	for _, host := range []int64{0, 2 << 20} {
		m := openTestModel(t)
		injected := errors.New("injected copy fault")
		var fail atomic.Bool
		dev := newHost(t, cuda.WithCopyFault(func(c cuda.CopyInfo) error {
			if fail.Load() && c.Kind == cuda.CopyHtoD {
				return injected
			}
			return nil
		}))
		opts := []Option{WithSlots(4)}
		if host > 0 {
			opts = append(opts, WithHostBudget(host), WithoutWarmup())
		}
		rt := openRuntime(t, m, dev, opts...)
		set, err := rt.Acquire(bg, 0, []int{0, 1}, nil)
		require.NoError(t, err)
		require.NoError(t, rt.Release(set, nil))
		fail.Store(true)
		_, err = rt.Acquire(bg, 0, []int{0, 5, 6}, nil)
		require.ErrorIs(t, err, injected)
		r, err := rt.Residency(0)
		require.NoError(t, err)
		assert.Equal(t, int32(-1), r.SlotOf[5])
		assert.Equal(t, int32(-1), r.SlotOf[6])
		assert.Equal(t, []int32{0, 0, 0, 0}, r.Held)
		checkTables(t, rt, 0, nil)
		fail.Store(false)
		set, err = rt.Acquire(bg, 0, []int{5, 6, 0, 1}, nil)
		require.NoError(t, err)
		for _, v := range set.Experts {
			assert.Equal(t, fileBytes(t, m, 0, v.Expert), viewBytes(t, dev, v))
		}
		require.NoError(t, rt.Release(set, nil))
	}
}

func TestAsyncCopyFailure(t *testing.T) {
	m := openTestModel(t)
	injected := errors.New("injected device fault")
	var fail atomic.Bool
	dev := newHost(t, cuda.WithAsyncCopyFault(func(c cuda.CopyInfo) error {
		if fail.Load() && c.Kind == cuda.CopyHtoD {
			return injected
		}
		return nil
	}))
	rt := openRuntime(t, m, dev, WithSlots(4))
	fail.Store(true)
	_, err := rt.Acquire(bg, 0, []int{3}, nil)
	require.ErrorIs(t, err, injected)
	fail.Store(false)
	// The failed copy is noticed and redone, on a new copy stream.
	set, err := rt.Acquire(bg, 0, []int{3, 4}, nil)
	require.NoError(t, err)
	for _, v := range set.Experts {
		assert.Equal(t, fileBytes(t, m, 0, v.Expert), viewBytes(t, dev, v))
	}
	require.NoError(t, rt.Release(set, nil))
	checkTables(t, rt, 0, nil)
}

// busyFreeDevice is the host backend counting the frees made while a stream
// still has work queued.
type busyFreeDevice struct {
	*cuda.HostDevice
	mu      sync.Mutex
	streams []cuda.Stream
	early   int
}

func (d *busyFreeDevice) NewStream() (cuda.Stream, error) {
	s, err := d.HostDevice.NewStream()
	if err == nil {
		d.mu.Lock()
		d.streams = append(d.streams, s)
		d.mu.Unlock()
	}
	return s, err
}

// note counts a free made while a stream is busy (a closed stream is idle).
func (d *busyFreeDevice) note() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.streams {
		if done, err := s.Query(); err == nil && !done {
			d.early++
			return
		}
	}
}

func (d *busyFreeDevice) Free(b cuda.Buffer) error { d.note(); return d.HostDevice.Free(b) }
func (d *busyFreeDevice) FreeHost(h cuda.HostBuffer) error {
	d.note()
	return d.HostDevice.FreeHost(h)
}
func (d *busyFreeDevice) Unregister(h cuda.HostBuffer) error {
	d.note()
	return d.HostDevice.Unregister(h)
}

// TestOpenFailureWaitsForCopies fails Open on the pinned experts of the
// second layer while the first layer's are still being copied: nothing may be
// freed before those copies complete.
func TestOpenFailureWaitsForCopies(t *testing.T) {
	m := openTestModel(t)
	injected := errors.New("injected")
	for _, tc := range []struct {
		host      int64
		perExpert int64 // copies: one per part from the mapping, one from a pinned copy
	}{{0, 3}, {2 << 20, 1}} {
		var copies atomic.Int64
		dev := &busyFreeDevice{HostDevice: newHost(t,
			cuda.WithTiming(cuda.Timing{PinnedBandwidth: 200e6}), // ~0.6 ms per expert
			cuda.WithCopyFault(func(c cuda.CopyInfo) error {
				if c.Kind == cuda.CopyHtoD && copies.Add(1) > 8*tc.perExpert { // past layer 0's 8 experts
					return injected
				}
				return nil
			}))}
		hot := &profile.HotSet{Layers: make([]profile.LayerHotSet, 2)}
		hot.Layers[0].Experts = []int{0, 1, 2, 3, 4, 5, 6, 7}
		hot.Layers[1].Experts = []int{0}
		opts := []Option{WithSlots(4), WithHotSet(hot), WithoutWarmup()}
		if tc.host > 0 {
			opts = append(opts, WithHostBudget(tc.host))
		}
		_, err := Open(bg, m, dev, opts...)
		require.ErrorIs(t, err, injected)
		assert.Zero(t, dev.early, "host budget %d: memory freed under queued copies", tc.host)
		assert.Equal(t, cuda.Stats{}, dev.Stats())
	}
}

func TestAcquireInto(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	rt := openRuntime(t, m, dev, WithSlots(4))
	var set Set
	require.NoError(t, rt.AcquireInto(bg, 0, []int{3, 1, 2}, nil, &set))
	assert.Equal(t, 0, set.Layer)
	require.Len(t, set.Experts, 3)
	for i, e := range []int{3, 1, 2} {
		assert.Equal(t, e, set.Experts[i].Expert)
		assert.Equal(t, fileBytes(t, m, 0, e), viewBytes(t, dev, set.Experts[i]))
	}
	assert.ErrorIs(t, rt.AcquireInto(bg, 1, []int{0}, nil, &set), ErrInvalid, "still held")
	assert.ErrorIs(t, rt.AcquireInto(bg, 1, []int{0}, nil, nil), ErrInvalid)
	require.NoError(t, rt.Release(&set, nil))
	assert.ErrorIs(t, rt.Release(&set, nil), ErrReleased)

	// Reused for another layer; a failed Acquire leaves it empty and not held.
	require.NoError(t, rt.AcquireInto(bg, 1, []int{5}, nil, &set))
	assert.Equal(t, 1, set.Layer)
	require.Len(t, set.Experts, 1)
	assert.Equal(t, fileBytes(t, m, 1, 5), viewBytes(t, dev, set.Experts[0]))
	require.NoError(t, rt.Release(&set, nil))
	require.ErrorIs(t, rt.AcquireInto(bg, 1, []int{5, 5}, nil, &set), ErrDuplicate)
	assert.Empty(t, set.Experts)
	assert.ErrorIs(t, rt.Release(&set, nil), ErrReleased)
	checkTables(t, rt, 0, nil)
	checkTables(t, rt, 1, nil)
	r, err := rt.Residency(1)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 0, 0, 0}, r.Held)

	if !raceEnabled {
		allocs := testing.AllocsPerRun(100, func() {
			if err := rt.AcquireInto(bg, 1, []int{5}, nil, &set); err != nil {
				t.Fatal(err)
			}
			if err := rt.Release(&set, nil); err != nil {
				t.Fatal(err)
			}
		})
		assert.Zero(t, allocs, "AcquireInto and Release of a resident expert")
	}
}

// blockedEvent records an event on a new stream of dev behind a kernel that
// runs until unblock is called.
func blockedEvent(t *testing.T, dev cuda.Device) (ev cuda.Event, unblock func()) {
	t.Helper()
	gate := make(chan struct{})
	mod, err := dev.Load(bg, &cuda.Program{Name: "gate", Host: map[string]cuda.HostKernel{
		"wait": func(*cuda.HostLaunch) error { <-gate; return nil },
	}})
	require.NoError(t, err)
	k, err := mod.Kernel("wait")
	require.NoError(t, err)
	s, err := dev.NewStream()
	require.NoError(t, err)
	ev, err = dev.NewEvent(0)
	require.NoError(t, err)
	require.NoError(t, s.Launch(k, cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 1}}))
	require.NoError(t, s.Record(ev))
	var once sync.Once
	unblock = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(unblock)
	return ev, unblock
}

// TestCloseWakesHostWait blocks an Acquire waiting for host LRU entries that
// another Acquire holds (while it waits for the copies out of them, which
// wait for a Release event), and closes the runtime: the blocked Acquire
// returns ErrClosed at once.
func TestCloseWakesHostWait(t *testing.T) {
	// Two layers of one expert size share one host class of 4 entries.
	m := shapeModel(t, synth.Shape{Arch: "llama", Layers: 2, Experts: 16, TopK: 4, Embedding: 256, ExpertFFN: 256})
	dev := newHost(t, cuda.WithoutData())
	rt, err := Open(bg, m, dev, WithSlots(4), WithHostBudget(4*m.ExpertBytes(0)), WithoutWarmup())
	require.NoError(t, err)
	other, err := dev.NewStream()
	require.NoError(t, err)
	ev, unblock := blockedEvent(t, dev)

	a, err := rt.Acquire(bg, 0, []int{0, 1, 2, 3}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(a, ev))
	// b's copies wait for ev: the host entries they read from stay fenced.
	b, err := rt.Acquire(bg, 0, []int{4, 5, 6, 7}, other)
	require.NoError(t, err)
	require.NoError(t, rt.Release(b, nil))

	results := make(chan error, 2)
	acquire := func(layer int, ids ...int) {
		go func() {
			_, err := rt.Acquire(bg, layer, ids, other)
			results <- err
		}()
	}
	acquire(0, 8, 9, 10, 11) // holds all 4 entries, waiting for b's copies
	require.Eventually(t, func() bool { s, _ := rt.host.stats(); return s.Misses == 12 }, time.Second, time.Millisecond)
	acquire(1, 0, 1, 2, 3) // waits for entries
	time.Sleep(10 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- rt.Close() }()
	select {
	case err := <-results:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		unblock()
		t.Fatal("an Acquire waiting for host memory did not return on Close")
	}
	unblock()
	require.NoError(t, <-results, "the Acquire waiting for copies completes")
	require.NoError(t, <-closed)
	require.NoError(t, other.Close())
}

// gatedDevice is the host backend with streams that queue nothing and
// events that complete once gate is closed.
type gatedDevice struct {
	*cuda.HostDevice
	gate chan struct{}
}

func (d gatedDevice) NewStream() (cuda.Stream, error) { return nopStream{}, nil }
func (d gatedDevice) NewEvent(cuda.EventFlag) (cuda.Event, error) {
	return &gatedEvent{gate: d.gate}, nil
}

type gatedEvent struct {
	cuda.Event
	gate chan struct{}
}

func (e *gatedEvent) Query() (bool, error) {
	select {
	case <-e.gate:
		return true, nil
	default:
		return false, nil
	}
}

func (e *gatedEvent) Synchronize(ctx context.Context) error {
	select {
	case <-e.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *gatedEvent) Since(cuda.Event) (time.Duration, error) { return 0, nil }
func (e *gatedEvent) Close() error                            { return nil }

// TestCloseWakesBatchWait keeps every copy batch in flight: once the pool
// is full, an Acquire waits for the oldest batch, and Close makes it return
// ErrClosed.
func TestCloseWakesBatchWait(t *testing.T) {
	m := shapeModel(t, synth.Shape{Arch: "llama", Layers: 2, Experts: 16, TopK: 4, Embedding: 256, ExpertFFN: 256})
	dev := gatedDevice{newHost(t, cuda.WithoutData()), make(chan struct{})}
	rt, err := Open(bg, m, dev, WithSlots(4))
	require.NoError(t, err)
	var n atomic.Int64
	result := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			first := 4 * (i % 4) // all misses
			set, err := rt.Acquire(bg, 0, []int{first, first + 1, first + 2, first + 3}, nopStream{})
			if err != nil {
				result <- err
				return
			}
			n.Add(1)
			if err := rt.Release(set, nil); err != nil {
				result <- err
				return
			}
		}
	}()
	require.Eventually(t, func() bool { return n.Load() == maxInflight }, 5*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- rt.Close() }()
	select {
	case err := <-result:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		close(dev.gate)
		t.Fatal("an Acquire waiting for a copy batch did not return on Close")
	}
	assert.Equal(t, int64(maxInflight), n.Load())
	require.NoError(t, <-closed)
}

func TestCloseLogsStats(t *testing.T) {
	m := openTestModel(t)
	log, logs := recordLogs(slog.LevelDebug)
	rt, err := Open(bg, m, newHost(t), WithSlots(4), WithLogger(log))
	require.NoError(t, err)
	set, err := rt.Acquire(bg, 0, []int{1, 2}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(set, nil))
	require.NoError(t, rt.Close())
	closing := logs("rotary: closing")
	require.Len(t, closing, 1)
	stats, ok := closing[0]["stats"].(map[string]any)
	require.True(t, ok, "%v", closing[0])
	assert.EqualValues(t, 2, stats["vram_misses"])
	assert.EqualValues(t, 2*m.ExpertBytes(0), stats["bytes_to_device"])
}

// TestOpenCancelled cancels Open while it pins host memory: it stops at the
// next allocation and frees what it allocated.
func TestOpenCancelled(t *testing.T) {
	m := openTestModel(t)
	for _, kind := range []cuda.AllocKind{cuda.AllocDevice, cuda.AllocPinned, cuda.AllocRegister} {
		ctx, cancel := context.WithCancel(bg)
		allocs := 0
		dev := newHost(t, cuda.WithAllocFault(func(a cuda.AllocInfo) error {
			if a.Kind == kind {
				if allocs++; allocs == 1 {
					cancel()
				}
			}
			return nil
		}))
		opts := []Option{WithSlots(4)}
		if kind == cuda.AllocPinned {
			opts = append(opts, WithHostBudget(2<<20), WithHostChunk(200<<10))
		}
		_, err := Open(ctx, m, dev, opts...)
		require.ErrorIs(t, err, context.Canceled, "%v", kind)
		assert.Equal(t, 1, allocs, "%v: allocations after the cancellation", kind)
		assert.Equal(t, cuda.Stats{}, dev.Stats(), "%v: leaked", kind)
	}

	// Cancelled while the first top-k of 8 pinned experts are queued: the
	// next ones are not.
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	var copies atomic.Int64
	dev := newHost(t, cuda.WithCopyFault(func(c cuda.CopyInfo) error {
		copies.Add(1)
		cancel()
		return nil
	}))
	hot := &profile.HotSet{Layers: make([]profile.LayerHotSet, 2)}
	hot.Layers[0].Experts = []int{0, 1, 2, 3, 4, 5, 6, 7}
	_, err := Open(ctx, m, dev, WithSlots(4), WithHotSet(hot))
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int64(4*3), copies.Load(), "4 experts of 3 parts")
	assert.Equal(t, cuda.Stats{}, dev.Stats())
}

// TestRepin changes the pinned experts of a running runtime: one moves from
// a dynamic slot into a pinned one with its bytes, one stays, a held one
// waits for a later Repin.
func TestRepin(t *testing.T) {
	m := openTestModel(t)
	dev := newHost(t)
	hot := &profile.HotSet{Mode: profile.PerLayer, Layers: []profile.LayerHotSet{{}, {Experts: []int{0, 1}}}}
	rt := openRuntime(t, m, dev, WithSlots(4), WithHotSet(hot))
	set, err := rt.Acquire(bg, 1, []int{2, 3}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(set, nil))

	again := &profile.HotSet{Mode: profile.PerLayer, Layers: []profile.LayerHotSet{{}, {Experts: []int{3, 0, 7}}}}
	n, err := rt.Repin(bg, again)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "3 replaces 1; 0 stays; 7 is one too many")
	r, err := rt.Residency(1)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 3}, r.ExpertIn[:2])
	assert.Equal(t, int32(-1), r.SlotOf[1])
	assert.Equal(t, int32(-1), r.SlotOf[7])
	checkTables(t, rt, 1, []int{0, 3})
	require.NoError(t, dev.Synchronize(bg))
	set, err = rt.Acquire(bg, 1, []int{3}, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, set.Experts[0].Slot)
	assert.Equal(t, fileBytes(t, m, 1, 3), viewBytes(t, dev, set.Experts[0]))

	// 3 is held: 5 cannot take its slot yet.
	back := &profile.HotSet{Mode: profile.PerLayer, Layers: []profile.LayerHotSet{{}, {Experts: []int{0, 5}}}}
	n, err = rt.Repin(bg, back)
	require.NoError(t, err)
	assert.Zero(t, n)
	require.NoError(t, rt.Release(set, nil))
	n, err = rt.Repin(bg, back)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	checkTables(t, rt, 1, []int{0, 5})

	_, err = rt.Repin(bg, &profile.HotSet{Layers: []profile.LayerHotSet{{}}})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = rt.Repin(bg, &profile.HotSet{Layers: []profile.LayerHotSet{{}, {Experts: []int{99}}}})
	assert.ErrorIs(t, err, ErrExpertRange)
}

func TestOpenWithPlan(t *testing.T) {
	m := openTestModel(t)
	plan, err := NewPlan(m, WithVRAM(4<<20), WithHostBudget(2<<20), WithHostChunk(200<<10))
	require.NoError(t, err)
	dev := newHost(t, cuda.WithCapacity(64<<20))
	rt := openRuntime(t, m, dev, WithPlan(plan), WithPolicy(LFU), WithoutWarmup())
	assert.Same(t, plan, rt.Plan(), "Open follows the plan it is given")
	set, err := rt.Acquire(context.Background(), m.MoELayers()[0], []int{1, 2, 3, 4}, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Release(set, nil))

	// A plan excludes the options that plan, and must be NewPlan's, for the
	// same model.
	for _, o := range []Option{WithVRAM(4 << 20), WithSlots(4), WithHostBudget(0), WithReserve(0), WithHotSet(nil), WithHostChunk(1 << 20)} {
		_, err := Open(context.Background(), m, dev, WithPlan(plan), o)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "the plan already holds the budgets")
	}
	_, err = Open(context.Background(), m, dev, WithPlan(nil))
	assert.ErrorIs(t, err, ErrInvalid)
	decoded := *plan
	decoded.Host = HostPlan{Mode: plan.Host.Mode, Budget: plan.Host.Budget}
	_, err = Open(context.Background(), m, dev, WithPlan(&decoded))
	assert.ErrorContains(t, err, "not made by NewPlan")
	other := *plan
	other.TotalExpert++
	_, err = Open(context.Background(), m, dev, WithPlan(&other))
	assert.ErrorContains(t, err, "the plan is for model")
}

func TestWarmupFailureReachesStats(t *testing.T) {
	// A copy of the model that shrinks once mapped: the warm-up's reads of
	// the experts past the new end fail (experts.ErrFault).
	path := filepath.Join(t.TempDir(), "shrinks.gguf")
	data, err := os.ReadFile(testModelPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	m, err := experts.OpenModel(path)
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, os.Truncate(path, m.ExpertTensors()[0].Offset))

	log, logs := recordLogs(slog.LevelWarn)
	rt := openRuntime(t, m, newHost(t), WithSlots(4), WithHostBudget(8*m.ExpertBytes(1)), WithLogger(log))
	require.Eventually(t, func() bool { return rt.Stats().WarmupErr != nil }, 10*time.Second, time.Millisecond)
	assert.ErrorIs(t, rt.Stats().WarmupErr, experts.ErrFault)
	assert.Len(t, logs("rotary: the host LRU's warm-up stopped; misses read the file themselves"), 1)
}

// TestWaitWarmup waits for the host LRU's warm-up: it holds the first
// experts in layer order, the same ones every time, and the bytes it read
// are counted as read ahead, so Host.Bytes adds up.
func TestWaitWarmup(t *testing.T) {
	var first []expertKey
	for range 3 {
		m := openTestModel(t)
		entries := 10
		rt := openRuntime(t, m, newHost(t), WithSlots(4), WithHostBudget(int64(entries)*m.ExpertBytes(1)))
		var calls int
		require.NoError(t, rt.WaitWarmup(bg, func(done, total int64) { calls++; assert.LessOrEqual(t, done, total) }))
		assert.Positive(t, calls, "the end is reported")
		s := rt.Stats()
		assert.Zero(t, s.Host.Misses+s.Host.Hits, "the warm-up is no demand")
		assert.Positive(t, s.HostAhead)
		var ahead int64
		lt := rt.host.(*lruTier)
		var keys []expertKey
		lt.mu.Lock()
		for _, size := range slices.Sorted(maps.Keys(lt.classes)) {
			cl := lt.classes[size]
			ahead += int64(cl.lru.Len()) * size
			keys = append(keys, cl.lru.Keys()...)
		}
		lt.mu.Unlock()
		assert.Equal(t, s.Host.Bytes, ahead, "every byte read is an entry the warm-up filled")
		if first == nil {
			first = keys
		}
		assert.Equal(t, first, keys, "the same experts in the same order")
	}

	// Without a warm-up there is nothing to wait for.
	m := openTestModel(t)
	rt := openRuntime(t, m, newHost(t), WithSlots(4))
	require.NoError(t, rt.WaitWarmup(bg, nil))
}
