package rotary

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentResidency runs random Acquire/Release/Prefetch sequences from
// many goroutines on the host backend (real goroutine streams, slowed-down
// copies) and checks that every expert a Set holds has the file's bytes: in a
// kernel that reads the slots on the compute stream after the copies, and on
// the host after the stream is done while the Set is still held. A slot
// evicted while in use, a copy not waited for, or a host buffer reused too
// early shows up as wrong bytes. The budgets are never exceeded, and Close
// frees everything.
func TestConcurrentResidency(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"mapped", []Option{WithSlots(5)}},
		{"pinned-lru", []Option{WithSlots(5), WithHostBudget(10 * 128 << 10), WithHostChunk(400 << 10)}},
		{"pinned+budget", []Option{WithVRAM(2<<20 + 12*128<<10), WithHostBudget(14 * 128 << 10)}},
	} {
		t.Run(tc.name, func(t *testing.T) { testConcurrentResidency(t, tc.opts) })
	}
}

func testConcurrentResidency(t *testing.T, opts []Option) {
	m := openTestModel(t)
	want := map[[2]int][]byte{}
	for _, l := range m.MoELayers() {
		for e := range m.Params.NumExperts {
			want[[2]int{l, e}] = fileBytes(t, m, l, e)
		}
	}
	// A copy takes 10-30 µs: long enough for streams to interleave.
	dev := newHost(t, cuda.WithTiming(cuda.Timing{PinnedBandwidth: 10e9, CopyLatency: 5000}))
	hot := &profile.HotSet{Layers: make([]profile.LayerHotSet, 2)}
	hot.Layers[1].Experts = []int{11}
	rt, err := Open(bg, m, dev, append(opts, WithHotSet(hot))...)
	require.NoError(t, err)
	plan := rt.Plan()

	check := &cuda.Program{Name: "check", Host: map[string]cuda.HostKernel{
		"check": func(l *cuda.HostLaunch) error {
			w := want[[2]int{int(l.Int32(1)), int(l.Int32(2))}]
			if got := l.Bytes(0)[:len(w)]; !bytes.Equal(got, w) {
				return fmt.Errorf("layer %d slot %d should hold expert %d", l.Int32(1), l.Int32(3), l.Int32(2))
			}
			return nil
		},
	}}
	mod, err := dev.Load(bg, check)
	require.NoError(t, err)
	kernel, err := mod.Kernel("check")
	require.NoError(t, err)

	const workers, steps = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	events := make([]int, workers)
	for w := range workers {
		wg.Go(func() {
			errs <- worker(t, rt, dev, kernel, want, uint64(w), steps, &events[w])
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, l := range m.MoELayers() {
		var pinned []int
		if l == 1 {
			pinned = []int{11}
		}
		checkTables(t, rt, l, pinned)
	}
	st := dev.Stats()
	assert.LessOrEqual(t, st.DeviceBytes, plan.VRAM-plan.NonExpert)
	if plan.Host.Mode == HostLRU {
		assert.LessOrEqual(t, st.PinnedBytes, plan.Host.Budget)
	}
	s := rt.Stats()
	assert.Positive(t, s.VRAM.Hits)
	assert.Positive(t, s.VRAM.Misses)
	require.NoError(t, rt.Close())
	require.NoError(t, mod.Close())
	ours := 0
	for _, n := range events {
		ours += n
	}
	assert.Equal(t, cuda.Stats{Events: ours}, dev.Stats(), "everything but the workers' events freed")
}

// worker does random operations on its own stream. It never holds a Set
// while it waits for another (that would wait for itself), but holds some
// while it synchronizes, so that other workers' copies run meanwhile.
func worker(t *testing.T, rt *Runtime, dev *cuda.HostDevice, kernel cuda.Kernel, want map[[2]int][]byte, seed uint64, steps int, events *int) error {
	rng := rand.New(rand.NewPCG(seed, 99))
	stream, err := dev.NewStream()
	if err != nil {
		return err
	}
	defer stream.Close()
	one := cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 1}}
	verify := func(s *Set) error {
		for _, v := range s.Experts {
			if !bytes.Equal(viewBytes(t, dev, v), want[[2]int{s.Layer, v.Expert}]) {
				return fmt.Errorf("held expert %d of layer %d in slot %d was overwritten", v.Expert, s.Layer, v.Slot)
			}
		}
		return nil
	}
	for range steps {
		layer := rng.IntN(2)
		ids := rng.Perm(16)[:1+rng.IntN(3)]
		switch op := rng.IntN(10); {
		case op < 2:
			if err := rt.Prefetch(layer, ids); err != nil {
				return err
			}
		case op < 4: // on the host: Acquire waits for the copies
			s, err := rt.Acquire(bg, layer, ids, nil)
			if err != nil {
				return err
			}
			if err := verify(s); err != nil {
				return err
			}
			if err := rt.Release(s, nil); err != nil {
				return err
			}
		default: // on the stream: a kernel checks the bytes
			s, err := rt.Acquire(bg, layer, ids, stream)
			if err != nil {
				return err
			}
			plane, err := rt.Plane(layer)
			if err != nil {
				return err
			}
			for _, v := range s.Experts {
				slot := cuda.PtrAt(plane.Buf, int64(v.Slot)*plane.SlotBytes)
				if err := stream.Launch(kernel, one, slot, cuda.I32(int32(layer)), cuda.I32(int32(v.Expert)), cuda.I32(int32(v.Slot))); err != nil {
					return err
				}
			}
			if op == 9 { // hold it while the stream drains, then look
				if err := stream.Synchronize(bg); err != nil {
					return err
				}
				if err := verify(s); err != nil {
					return err
				}
			}
			ev, err := dev.NewEvent(0) // stays open until the device closes
			if err != nil {
				return err
			}
			*events++
			if err := stream.Record(ev); err != nil {
				return err
			}
			if err := rt.Release(s, ev); err != nil {
				return err
			}
		}
	}
	return stream.Synchronize(bg)
}
