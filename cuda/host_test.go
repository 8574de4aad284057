package cuda

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testTiming makes the arithmetic of modeled times easy: 1 MB takes 1 ms
// pinned, 4 ms pageable.
var testTiming = Timing{
	CopyLatency:       10 * time.Microsecond,
	PinnedBandwidth:   1e9,
	PageableBandwidth: 0.25e9,
	DeviceBandwidth:   1e12,
	LaunchLatency:     5 * time.Microsecond,
	CallOverhead:      time.Microsecond,
}

const us = time.Microsecond

func newHost(t *testing.T, opts ...Option) *HostDevice {
	t.Helper()
	h, err := NewHost(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

func mustStream(t *testing.T, d Device) Stream {
	t.Helper()
	s, err := d.NewStream()
	require.NoError(t, err)
	return s
}

func mustEvent(t *testing.T, d Device) Event {
	t.Helper()
	e, err := d.NewEvent(0)
	require.NoError(t, err)
	return e
}

func mustAlloc(t *testing.T, d Device, n int64) Buffer {
	t.Helper()
	b, err := d.Alloc(n)
	require.NoError(t, err)
	return b
}

// hostProgram has Go kernels only, for host backend tests.
func hostProgram(kernels map[string]HostKernel) *Program {
	return &Program{Name: "host-only", Host: kernels}
}

func loadKernel(t *testing.T, d Device, p *Program, name string) Kernel {
	t.Helper()
	m, err := d.Load(context.Background(), p)
	require.NoError(t, err)
	k, err := m.Kernel(name)
	require.NoError(t, err)
	return k
}

func sleepFor(d time.Duration) HostKernel {
	return func(l *HostLaunch) error { l.SetDuration(d); return nil }
}

// TestVirtualClockSchedule checks the virtual timeline to the microsecond:
// copies in one direction share a link, the other direction and kernels
// overlap them, events take their stream's time, and the host's clock moves
// by the call overhead and by waiting.
func TestVirtualClockSchedule(t *testing.T) {
	h := newHost(t, WithVirtualClock(), WithTiming(testTiming))
	ctx := context.Background()
	s1, s2, s3, s4 := mustStream(t, h), mustStream(t, h), mustStream(t, h), mustStream(t, h)
	x, y := mustAlloc(t, h, 1e6), mustAlloc(t, h, 1e6)
	pinned, err := h.AllocHost(1e6, 0)
	require.NoError(t, err)
	pageable := make([]byte, 1e6)
	k := loadKernel(t, h, hostProgram(map[string]HostKernel{"work": sleepFor(2 * time.Millisecond)}), "work")
	e1, e2, e3, e4 := mustEvent(t, h), mustEvent(t, h), mustEvent(t, h), mustEvent(t, h)

	require.NoError(t, s1.CopyHtoD(x, 0, pinned.Bytes()))                               // host 1µs: runs 1–1011µs
	require.NoError(t, s2.CopyHtoD(y, 0, pinned.Bytes()))                               // host 2µs: waits for the link, 1011–2021µs
	require.NoError(t, s3.CopyDtoH(pageable, x, 0))                                     // host 3µs: other link, pageable: 3–4013µs
	require.NoError(t, s4.Launch(k, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}})) // host 4µs: 4–2009µs
	require.NoError(t, s1.Record(e1))                                                   // host 5µs
	require.NoError(t, s2.Record(e2))                                                   // host 6µs
	require.NoError(t, s3.Record(e3))                                                   // host 7µs
	require.NoError(t, s4.Record(e4))                                                   // host 8µs
	assert.Equal(t, 8*us, h.Now())

	_, err = h.EventTime(e2)
	assert.ErrorIs(t, err, ErrNotReady, "virtual time has not reached e2")
	done, err := e1.Query()
	require.NoError(t, err)
	assert.False(t, done)
	assert.Equal(t, 9*us, h.Now(), "a query that finds work pending costs the call overhead")

	require.NoError(t, e2.Synchronize(ctx))
	assert.Equal(t, 2021*us, h.Now(), "waiting moves the host clock to the event")
	for _, c := range []struct {
		e    Event
		want time.Duration
	}{{e1, 1011 * us}, {e2, 2021 * us}, {e4, 2009 * us}} {
		at, err := h.EventTime(c.e)
		require.NoError(t, err)
		assert.Equal(t, c.want, at)
	}
	took, err := e2.Since(e1)
	require.NoError(t, err)
	assert.Equal(t, 1010*us, took)
	_, err = h.EventTime(e3)
	assert.ErrorIs(t, err, ErrNotReady)
	require.NoError(t, h.Synchronize(ctx))
	at, err := h.EventTime(e3)
	require.NoError(t, err)
	assert.Equal(t, 4013*us, at)

	// A stream that waits on an event starts after it, and Advance models
	// host work.
	h.Advance(100 * us)
	now := h.Now()
	require.NoError(t, s4.Record(e4))                                                   // now+1µs
	require.NoError(t, s1.Wait(e4))                                                     // now+2µs
	require.NoError(t, s1.Launch(k, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}})) // now+3µs
	require.NoError(t, s1.Record(e1))                                                   // now+4µs
	require.NoError(t, e1.Synchronize(ctx))
	assert.Equal(t, now+3*us+2005*us, h.Now())
}

func TestVirtualClockSimulatesLongTraces(t *testing.T) {
	h := newHost(t, WithVirtualClock(), WithTiming(TimingH200), WithoutData(), WithCapacity(1<<40))
	copyStream, compute := mustStream(t, h), mustStream(t, h)
	const expert = 864 << 10
	slots := mustAlloc(t, h, 64*expert)
	host, err := h.AllocHost(64*expert, 0)
	require.NoError(t, err)
	k := loadKernel(t, h, hostProgram(map[string]HostKernel{"layer": sleepFor(50 * us)}), "layer")
	ready := mustEvent(t, h)
	steps := 5000
	if testing.Short() {
		steps = 500
	}
	for i := range steps {
		slot, err := slots.Slice(int64(i%64)*expert, expert)
		require.NoError(t, err)
		src := host.Bytes()[(i%64)*expert : (i%64+1)*expert]
		require.NoError(t, copyStream.CopyHtoD(slot, 0, src))
		require.NoError(t, copyStream.Record(ready))
		require.NoError(t, compute.Wait(ready))
		require.NoError(t, compute.Launch(k, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}}, Ptr(slot)))
	}
	require.NoError(t, h.Synchronize(context.Background()))
	// Each copy overlaps the previous kernel, which takes longer, so the trace
	// takes one copy and then one kernel after another.
	copyTime := h.copyCost(CopyHtoD, expert, true)
	kernelTime := TimingH200.LaunchLatency + 50*us
	require.Greater(t, kernelTime, copyTime)
	assert.InDelta(t, float64(copyTime+time.Duration(steps)*kernelTime), float64(h.Now()), float64(10*TimingH200.CallOverhead))
}

func TestRealTimeTiming(t *testing.T) {
	h := newHost(t, WithTiming(Timing{PinnedBandwidth: 100e6}))
	ctx := context.Background()
	s1, s2 := mustStream(t, h), mustStream(t, h)
	x, y := mustAlloc(t, h, 1e6), mustAlloc(t, h, 1e6)
	src, err := h.AllocHost(1e6, 0)
	require.NoError(t, err)
	start, e1, e2 := mustEvent(t, h), mustEvent(t, h), mustEvent(t, h)
	require.NoError(t, s1.Record(start))
	require.NoError(t, s2.Wait(start))
	require.NoError(t, s1.CopyHtoD(x, 0, src.Bytes()))
	require.NoError(t, s2.CopyHtoD(y, 0, src.Bytes()))
	require.NoError(t, s1.Record(e1))
	require.NoError(t, s2.Record(e2))
	require.NoError(t, h.Synchronize(ctx))
	t1, err := e1.Since(start)
	require.NoError(t, err)
	t2, err := e2.Since(start)
	require.NoError(t, err)
	// 1 MB at 100 MB/s is 10 ms; the two copies share the link, so the
	// later one ends 20 ms after the start at the earliest.
	assert.GreaterOrEqual(t, min(t1, t2), 10*time.Millisecond)
	assert.GreaterOrEqual(t, max(t1, t2), 20*time.Millisecond)
}

func TestPageableCopiesAreSlower(t *testing.T) {
	h := newHost(t, WithVirtualClock(), WithTiming(testTiming))
	s := mustStream(t, h)
	x := mustAlloc(t, h, 1e6)
	pinned, err := h.AllocHost(1e6, 0)
	require.NoError(t, err)
	registered := mapAnon(t, 1<<20)
	reg, err := h.Register(registered, RegisterReadOnly)
	require.NoError(t, err)
	pageable := make([]byte, 1e6)
	measure := func(src []byte) time.Duration {
		a, b := mustEvent(t, h), mustEvent(t, h)
		require.NoError(t, s.Record(a))
		require.NoError(t, s.CopyHtoD(x, 0, src))
		require.NoError(t, s.Record(b))
		require.NoError(t, b.Synchronize(context.Background()))
		d, err := b.Since(a)
		require.NoError(t, err)
		return d
	}
	// Each measure includes the 1 µs call that queues the copy after the
	// first event.
	assert.Equal(t, 1011*us, measure(pinned.Bytes()))
	assert.Equal(t, 1011*us, measure(reg.Bytes()[:1e6]))
	assert.Equal(t, 4011*us, measure(pageable))
	assert.Equal(t, 1010990*time.Nanosecond, measure(pinned.Bytes()[5:1e6-5]), "a part of pinned memory is pinned")
}

func TestWithoutData(t *testing.T) {
	h := newHost(t, WithoutData(), WithCapacity(1<<40))
	s := mustStream(t, h)
	big := mustAlloc(t, h, 100<<30) // accounted, never backed
	assert.Equal(t, int64(100<<30), h.Stats().DeviceBytes)
	require.NoError(t, s.CopyHtoD(big, 1<<30, make([]byte, 1000)))
	assert.ErrorIs(t, s.CopyHtoD(big, 100<<30, make([]byte, 1)), ErrInvalidValue)
	_, err := h.Bytes(big)
	assert.ErrorIs(t, err, ErrInvalidValue)
	reads := loadKernel(t, h, hostProgram(map[string]HostKernel{"reads": func(l *HostLaunch) error {
		_ = l.Bytes(0)
		return nil
	}}), "reads")
	require.NoError(t, s.Launch(reads, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}}, Ptr(big)))
	err = s.Synchronize(context.Background())
	assert.ErrorIs(t, err, ErrLaunchFailed)
	assert.ErrorContains(t, err, "WithoutData")
}

func TestCopyFaults(t *testing.T) {
	boom := errors.New("link down")
	var infos []CopyInfo
	h := newHost(t,
		WithCopyFault(func(c CopyInfo) error {
			infos = append(infos, c)
			if c.N == 2 {
				return boom
			}
			return nil
		}),
		WithAsyncCopyFault(func(c CopyInfo) error {
			if c.Kind == CopyDtoH {
				return boom
			}
			return nil
		}))
	ctx := context.Background()
	s, other := mustStream(t, h), mustStream(t, h)
	x := mustAlloc(t, h, 64)
	src, dst := pattern(64, 1), make([]byte, 64)

	require.NoError(t, s.CopyHtoD(x, 0, src))
	err := s.CopyHtoD(x, 0, src)
	assert.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "injected")
	assert.Equal(t, CopyInfo{Kind: CopyHtoD, N: 2, Stream: 1, Size: 64, Dst: x}, infos[1])
	require.NoError(t, s.Synchronize(ctx), "a refused copy does not fail the stream")

	e := mustEvent(t, h)
	require.NoError(t, s.CopyDtoH(dst, x, 0), "an asynchronous fault is accepted")
	require.NoError(t, s.Record(e))
	require.NoError(t, other.Wait(e))
	require.NoError(t, s.Memset(x, 0, 64, 0))
	assert.ErrorIs(t, s.Synchronize(ctx), boom)
	assert.ErrorIs(t, e.Synchronize(ctx), boom)
	assert.ErrorIs(t, other.Synchronize(ctx), boom, "a stream waiting on a failed event fails")
	assert.Equal(t, make([]byte, 64), dst, "the failed copy moved nothing")
	got, err := h.Bytes(x)
	require.NoError(t, err)
	assert.Equal(t, src, got, "work after the failure is skipped")
	_, err = s.Query()
	assert.ErrorIs(t, err, boom)
}

func TestHostKernelFailures(t *testing.T) {
	for _, virtual := range []bool{false, true} {
		var opts []Option
		if virtual {
			opts = append(opts, WithVirtualClock())
		}
		h := newHost(t, opts...)
		ctx := context.Background()
		p := hostProgram(map[string]HostKernel{
			"fails":  func(*HostLaunch) error { return errors.New("bad input") },
			"panics": func(l *HostLaunch) error { _ = l.Bytes(0)[1<<20]; return nil },
			"misuse": func(l *HostLaunch) error { _ = l.Float32(0); return nil },
		})
		x := mustAlloc(t, h, 16)
		for name, why := range map[string]string{"fails": "bad input", "panics": "index out of range", "misuse": "argument 0 is Ptr, not F32"} {
			s := mustStream(t, h)
			k := loadKernel(t, h, p, name)
			require.NoError(t, s.Launch(k, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}}, Ptr(x)))
			err := s.Synchronize(ctx)
			assert.ErrorIs(t, err, ErrLaunchFailed, name)
			assert.ErrorContains(t, err, why)
			assert.ErrorIs(t, s.Synchronize(ctx), ErrLaunchFailed, "the stream stays failed")
		}
	}
}

func TestSynchronizeHonoursContext(t *testing.T) {
	h := newHost(t)
	release := make(chan struct{})
	k := loadKernel(t, h, hostProgram(map[string]HostKernel{"block": func(*HostLaunch) error {
		<-release
		return nil
	}}), "block")
	s := mustStream(t, h)
	e := mustEvent(t, h)
	require.NoError(t, s.Launch(k, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}}))
	require.NoError(t, s.Record(e))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Synchronize(ctx), context.DeadlineExceeded)
	assert.ErrorIs(t, e.Synchronize(ctx), context.DeadlineExceeded)
	done, err := s.Query()
	require.NoError(t, err)
	assert.False(t, done)
	close(release)
	require.NoError(t, s.Synchronize(context.Background()))
}

func TestHostLoadChecksNames(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	// shift is not extern "C": no GPU module exports it by name, so the
	// emulator does not run it either.
	src := `extern "C" __global__ void __launch_bounds__(256) scale(float *x, float k, int n) {}
__global__ void shift(float *x) {}`
	ok := func(*HostLaunch) error { return nil }

	_, err := h.Load(ctx, &Program{Name: "p", Source: src, Host: map[string]HostKernel{"scale": ok, "scal": ok}})
	assert.ErrorIs(t, err, ErrNotFound, "a Go kernel the source does not declare")
	_, err = h.Load(ctx, &Program{Name: "p"})
	assert.ErrorIs(t, err, ErrInvalidValue, "no kernels at all")
	_, err = h.Load(ctx, &Program{Name: "p", Source: "__global__ void shift(float *x) {}"})
	assert.ErrorIs(t, err, ErrInvalidValue, "no extern \"C\" kernel to emulate")
	_, err = h.Load(ctx, nil)
	assert.ErrorIs(t, err, ErrInvalidValue)
	_, err = h.Load(ctx, &Program{Name: "p", Host: map[string]HostKernel{"x": nil}})
	assert.ErrorIs(t, err, ErrInvalidValue)

	m, err := h.Load(ctx, &Program{Name: "p", Source: src, Host: map[string]HostKernel{"scale": ok}})
	require.NoError(t, err)
	_, err = m.Kernel("shift")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorContains(t, err, "not extern \"C\"")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = h.Load(cancelled, testProgram)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestHostBytesAndClock(t *testing.T) {
	h := newHost(t)
	s := mustStream(t, h)
	x := mustAlloc(t, h, 8)
	require.NoError(t, s.CopyHtoD(x, 0, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	require.NoError(t, s.Synchronize(context.Background()))
	part, err := x.Slice(2, 3)
	require.NoError(t, err)
	b, err := h.Bytes(part)
	require.NoError(t, err)
	assert.Equal(t, []byte{3, 4, 5}, b)
	assert.Equal(t, 3, cap(b), "the view cannot reach past its buffer")
	require.NoError(t, h.Free(x))
	_, err = h.Bytes(x)
	assert.ErrorIs(t, err, ErrInvalidHandle)

	before := h.Now()
	h.Advance(2 * time.Millisecond)
	assert.GreaterOrEqual(t, h.Now()-before, 2*time.Millisecond, "Advance sleeps in real time")
	_, err = h.EventTime(mustEvent(t, h))
	assert.ErrorIs(t, err, ErrInvalidHandle, "an event never recorded has no time")
}

func TestOptionsApplyToTheirBackend(t *testing.T) {
	for _, o := range []Option{WithVirtualClock(), WithTiming(testTiming), WithoutData(), WithCopyFault(nil), WithAsyncCopyFault(nil),
		WithSchedule(ScheduleReverse), WithEmulatorWorkers(2)} {
		_, err := Open(context.Background(), 0, o)
		assert.ErrorIs(t, err, ErrInvalidValue, o.name())
		assert.ErrorContains(t, err, o.name())
	}
	_, err := NewHost(WithCapacity(-1))
	assert.ErrorIs(t, err, ErrInvalidValue)
	_, err = NewHost(WithEmulatorWorkers(-1))
	assert.ErrorIs(t, err, ErrInvalidValue)
	_, err = NewHost(WithTiming(Timing{CopyLatency: -1}))
	assert.ErrorIs(t, err, ErrInvalidValue)
	h, err := NewHost(nil, WithLogger(nil))
	require.NoError(t, err)
	assert.Equal(t, Info{Backend: BackendHost, Name: "host", TotalMemory: defaultHostCapacity}, h.Info())
	require.NoError(t, h.Close())
}

func TestView(t *testing.T) {
	b := asBytes(make([]uint64, 2))[:10] // 8-aligned
	f := View[uint32](b)
	assert.Len(t, f, 2)
	f[1] = 0x01020304
	assert.Equal(t, byte(0x04), b[4], "little-endian machine")
	assert.Nil(t, View[uint64](b[:7]))
	assert.Panics(t, func() { View[uint32](b[1:]) })
}
