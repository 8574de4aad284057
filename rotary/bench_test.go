package rotary

import (
	"context"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/stretchr/testify/require"
)

// nopStream is a stream that queues nothing: it takes the copies' and
// events' cost out of the Acquire benchmarks, leaving the runtime's own.
type nopStream struct{ cuda.Stream }

func (nopStream) CopyHtoD(cuda.Buffer, int64, []byte) error { return nil }
func (nopStream) Record(cuda.Event) error                   { return nil }
func (nopStream) Wait(cuda.Event) error                     { return nil }
func (nopStream) Query() (bool, error)                      { return true, nil }
func (nopStream) Synchronize(context.Context) error         { return nil }
func (nopStream) Close() error                              { return nil }

// nopEvent is an event that is always complete.
type nopEvent struct{ cuda.Event }

func (nopEvent) Query() (bool, error)                    { return true, nil }
func (nopEvent) Synchronize(context.Context) error       { return nil }
func (nopEvent) Since(cuda.Event) (time.Duration, error) { return 0, nil }
func (nopEvent) Close() error                            { return nil }

// nopDevice is the host backend with nopStreams and nopEvents.
type nopDevice struct{ *cuda.HostDevice }

func (nopDevice) NewStream() (cuda.Stream, error)             { return nopStream{}, nil }
func (nopDevice) NewEvent(cuda.EventFlag) (cuda.Event, error) { return &nopEvent{}, nil }

// benchRuntime opens a shape-only model like Qwen3.5-35B-A3B's layers (256
// experts, top-8) on the host backend without data.
func benchRuntime(b *testing.B, dev cuda.Device, slots int) *Runtime {
	m := shapeModel(b, synth.Shape{Arch: "llama", Layers: 2, Experts: 256, TopK: 8, Embedding: 2048, ExpertFFN: 512})
	return openRuntime(b, m, dev, WithSlots(slots))
}

// BenchmarkAcquireHit is Acquire and Release of 8 resident experts: the cost
// per expert of the all-hit path (target: under 1 µs).
func BenchmarkAcquireHit(b *testing.B) {
	dev := newHost(b, cuda.WithoutData())
	rt := benchRuntime(b, dev, 64)
	stream := nopStream{}
	ids := []int{3, 17, 42, 99, 128, 200, 201, 255}
	set, err := rt.Acquire(bg, 0, ids, nil)
	require.NoError(b, err)
	require.NoError(b, rt.Release(set, nil))
	for b.Loop() {
		set, err := rt.Acquire(bg, 0, ids, stream)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Release(set, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(len(ids)), "ns/expert")
}

// BenchmarkAcquireIntoHit is BenchmarkAcquireHit with AcquireInto reusing
// one Set: the all-hit path without allocations.
func BenchmarkAcquireIntoHit(b *testing.B) {
	dev := newHost(b, cuda.WithoutData())
	rt := benchRuntime(b, dev, 64)
	stream := nopStream{}
	ids := []int{3, 17, 42, 99, 128, 200, 201, 255}
	var set Set
	require.NoError(b, rt.AcquireInto(bg, 0, ids, nil, &set))
	require.NoError(b, rt.Release(&set, nil))
	for b.Loop() {
		if err := rt.AcquireInto(bg, 0, ids, stream, &set); err != nil {
			b.Fatal(err)
		}
		if err := rt.Release(&set, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(len(ids)), "ns/expert")
}

// BenchmarkAcquireMiss is Acquire and Release of 8 experts none of which is
// resident (8 slots, two alternating sets), on a stream and a copy stream
// that queue nothing: the runtime's own cost of a miss, without the copies'
// API calls (3 per expert from the mapping, 3 events per batch).
func BenchmarkAcquireMiss(b *testing.B) {
	dev := nopDevice{newHost(b, cuda.WithoutData())}
	rt := benchRuntime(b, dev, 8)
	sets := [][]int{{3, 17, 42, 99, 128, 200, 201, 255}, {4, 18, 43, 100, 129, 202, 203, 254}}
	i := 0
	for b.Loop() {
		set, err := rt.Acquire(bg, 0, sets[i%2], nopStream{})
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Release(set, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
	require.Equal(b, uint64(0), rt.Stats().VRAM.Hits)
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/8, "ns/expert")
}

// BenchmarkAcquireMissHost is BenchmarkAcquireMiss on the host backend's
// streams in virtual time: with the cost of queueing the copies and events.
func BenchmarkAcquireMissHost(b *testing.B) {
	dev := newHost(b, cuda.WithoutData(), cuda.WithVirtualClock())
	rt := benchRuntime(b, dev, 8)
	stream, err := dev.NewStream()
	require.NoError(b, err)
	sets := [][]int{{3, 17, 42, 99, 128, 200, 201, 255}, {4, 18, 43, 100, 129, 202, 203, 254}}
	i := 0
	for b.Loop() {
		set, err := rt.Acquire(bg, 0, sets[i%2], stream)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Release(set, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/8, "ns/expert")
}
