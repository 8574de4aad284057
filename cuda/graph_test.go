package cuda

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// captureStep captures: x = in + 1 (addk), a memset and
// a device copy, y = x + k (addk), out = y, and an event record.
func captureStep(t *testing.T, d Device, s Stream, addk Kernel, in, out HostBuffer, x, y Buffer, done Event, n int) Graph {
	t.Helper()
	cfg := LaunchConfig{Grid: Dim3{X: uint32(n+127) / 128}, Block: Dim3{X: 128}}
	require.NoError(t, s.BeginCapture())
	assert.ErrorIs(t, s.BeginCapture(), ErrCapture, "a capture begun twice")
	_, err := s.Query()
	assert.ErrorIs(t, err, ErrCapture, "Query while capturing")
	assert.ErrorIs(t, s.Synchronize(context.Background()), ErrCapture, "Synchronize while capturing")
	assert.ErrorIs(t, d.Synchronize(context.Background()), ErrCapture, "the device's Synchronize while a stream captures")
	_, err = d.Alloc(64)
	assert.ErrorIs(t, err, ErrCapture, "an allocation while a stream captures")
	assert.ErrorIs(t, d.Free(x), ErrCapture, "a free while a stream captures")
	_, err = d.AllocHost(64, 0)
	assert.ErrorIs(t, err, ErrCapture)
	assert.ErrorIs(t, d.FreeHost(in), ErrCapture)
	_, err = d.Register(make([]byte, 64), 0)
	assert.ErrorIs(t, err, ErrCapture)
	assert.ErrorIs(t, s.CopyHtoD(x, 0, make([]byte, 4)), ErrCapture, "a copy from pageable memory")
	assert.ErrorIs(t, s.CopyDtoH(make([]byte, 4), x, 0), ErrCapture, "a copy to pageable memory")
	assert.ErrorIs(t, s.CopyHtoD(x, 1, in.Bytes()), ErrInvalidValue, "checked when captured")

	require.NoError(t, s.CopyHtoD(x, 0, in.Bytes()))
	require.NoError(t, s.Launch(addk, cfg, Ptr(x), I32(1), U64(uint64(n))))
	require.NoError(t, s.Memset(y, 0, y.Size(), 0xff))
	require.NoError(t, s.CopyDtoD(y, 0, x, 0, x.Size()))
	require.NoError(t, s.Launch(addk, cfg, Ptr(y), I32(10), U64(uint64(n))))
	require.NoError(t, s.CopyDtoH(out.Bytes(), y, 0))
	require.NoError(t, s.Record(done))
	g, err := s.EndCapture()
	require.NoError(t, err)
	_, err = s.EndCapture()
	assert.ErrorIs(t, err, ErrCapture, "a capture ended twice")
	return g
}

func TestGraphs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		defer closeDevice(t, d)
		ctx := context.Background()
		m, err := d.Load(ctx, testProgram)
		require.NoError(t, err)
		addk, err := m.Kernel("addk")
		require.NoError(t, err)
		s, err := d.NewStream()
		require.NoError(t, err)
		const n = 300
		in, err := d.AllocHost(4*n, 0)
		require.NoError(t, err)
		out, err := d.AllocHost(4*n, 0)
		require.NoError(t, err)
		x, err := d.Alloc(4 * n)
		require.NoError(t, err)
		y, err := d.Alloc(4 * n)
		require.NoError(t, err)
		done, err := d.NewEvent(0)
		require.NoError(t, err)
		copy(out.Bytes(), pattern(4*n, 3))

		g := captureStep(t, d, s, addk, in, out, x, y, done, n)
		assert.Equal(t, 2, g.Launches())
		assert.Equal(t, 1, d.Stats().Graphs)
		require.NoError(t, s.Synchronize(ctx))
		assert.Equal(t, pattern(4*n, 3), out.Bytes(), "captured work does not run")

		exec, err := g.Instantiate()
		require.NoError(t, err)
		require.NoError(t, g.Close(), "a GraphExec outlives its graph")
		assert.ErrorIs(t, g.Close(), ErrClosed)
		_, err = g.Instantiate()
		assert.ErrorIs(t, err, ErrClosed)

		// Each replay reads the input as it is then; SetKernelArgs changes
		// the second launch's constant from then on.
		for _, tc := range []struct {
			seed int32
			k    int32
		}{{seed: 5, k: 10}, {seed: -7, k: 10}, {seed: 100, k: -1000}} {
			if tc.k != 10 {
				require.NoError(t, exec.SetKernelArgs(1, Ptr(y), I32(tc.k), U64(n)))
			}
			v := View[int32](in.Bytes())
			for i := range v {
				v[i] = tc.seed * int32(i)
			}
			require.NoError(t, exec.Launch(s))
			require.NoError(t, done.Synchronize(ctx), "the captured Record completes at each replay")
			got := View[int32](out.Bytes())
			for i := range got {
				want := tc.seed * int32(i)
				if b.kernels {
					want += 1 + tc.k
				}
				require.Equal(t, want, got[i], "seed %d, k %d, element %d", tc.seed, tc.k, i)
			}
		}

		assert.ErrorIs(t, exec.SetKernelArgs(2, Ptr(y), I32(1), U64(n)), ErrInvalidValue, "no launch 2")
		assert.ErrorIs(t, exec.SetKernelArgs(-1, Ptr(y), I32(1), U64(n)), ErrInvalidValue)
		assert.ErrorIs(t, exec.SetKernelArgs(0, Ptr(y), I32(1)), ErrInvalidValue, "too few arguments")
		assert.ErrorIs(t, exec.SetKernelArgs(0, Ptr(y), F32(1), U64(n)), ErrInvalidValue, "a float for an int")
		assert.ErrorIs(t, exec.SetKernelArgs(0, Ptr(Buffer{}), I32(1), U64(n)), ErrInvalidHandle)

		other, err := d.NewStream()
		require.NoError(t, err)
		require.NoError(t, other.BeginCapture())
		assert.ErrorIs(t, exec.Launch(other), ErrCapture, "a graph launched into a capture")
		require.NoError(t, other.Close(), "Close drops a capture")
		require.NoError(t, d.Synchronize(ctx), "no stream captures any more")

		// The event is recorded last: the copy to out, before it, does not
		// run either.
		copy(out.Bytes(), pattern(4*n, 9))
		require.NoError(t, done.Close())
		assert.ErrorIs(t, exec.Launch(s), ErrClosed, "a graph whose event was closed")
		require.NoError(t, s.Synchronize(ctx))
		assert.Equal(t, pattern(4*n, 9), out.Bytes(), "a graph that fails to launch runs none of its work")
		require.NoError(t, d.Free(y))
		assert.ErrorIs(t, exec.Launch(s), ErrInvalidHandle, "a graph whose memory was freed")
		require.NoError(t, s.Synchronize(ctx))
		assert.Equal(t, 1, d.Stats().GraphExecs)
		require.NoError(t, exec.Close())
		assert.ErrorIs(t, exec.Close(), ErrClosed)
		assert.ErrorIs(t, exec.Launch(s), ErrClosed)
		assert.Equal(t, 0, d.Stats().GraphExecs+d.Stats().Graphs)

		// Close frees graphs and GraphExecs left open, and a capture under
		// way (closeDevice checks the stats; the fake driver, its handles).
		done2, err := d.NewEvent(0)
		require.NoError(t, err)
		g2 := captureStep(t, d, s, addk, in, out, x, x, done2, n)
		exec2, err := g2.Instantiate()
		require.NoError(t, err)
		require.NoError(t, d.FreeHost(out))
		assert.ErrorIs(t, exec2.Launch(s), ErrInvalidHandle, "a graph whose host memory was freed")
		require.NoError(t, s.BeginCapture())
	})
}

// TestGraphReplaysEmulatedKernels captures a kernel that only the emulator
// runs (no Go twin) on the host backend.
func TestGraphReplaysEmulatedKernels(t *testing.T) {
	d := openHost(t)
	defer closeDevice(t, d)
	ctx := context.Background()
	m, err := d.Load(ctx, &Program{Name: "kernels.cu", Source: testKernelsSource})
	if errors.Is(err, ErrNoEmulator) && os.Getenv("ROTARY_REQUIRE_EMULATOR") != "1" {
		t.Skip(err)
	}
	require.NoError(t, err)
	addk, err := m.Kernel("addk")
	require.NoError(t, err)
	s, err := d.NewStream()
	require.NoError(t, err)
	const n = 1000
	in, err := d.AllocHost(4*n, 0)
	require.NoError(t, err)
	out, err := d.AllocHost(4*n, 0)
	require.NoError(t, err)
	x, err := d.Alloc(4 * n)
	require.NoError(t, err)
	y, err := d.Alloc(4 * n)
	require.NoError(t, err)
	done, err := d.NewEvent(0)
	require.NoError(t, err)
	g := captureStep(t, d, s, addk, in, out, x, y, done, n)
	exec, err := g.Instantiate()
	require.NoError(t, err)
	assert.ErrorIs(t, exec.SetKernelArgs(0, Ptr(x), I64(1), U64(n)), ErrInvalidValue, "an argument of the wrong kind")
	require.NoError(t, exec.SetKernelArgs(1, Ptr(y), I32(3), U64(n)))
	v := View[int32](in.Bytes())
	for i := range v {
		v[i] = int32(i)
	}
	require.NoError(t, exec.Launch(s))
	require.NoError(t, s.Synchronize(ctx))
	for i, v := range View[int32](out.Bytes()) {
		require.Equal(t, int32(i)+1+3, v, "element %d", i)
	}
}

func TestGraphTwinLaunches(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		defer closeDevice(t, d)
		ctx := context.Background()
		m, err := d.Load(ctx, testProgram)
		require.NoError(t, err)
		addk, err := m.Kernel("addk")
		require.NoError(t, err)
		s, err := d.NewStream()
		require.NoError(t, err)
		x, err := d.Alloc(64)
		require.NoError(t, err)
		require.NoError(t, s.Memset(x, 0, 64, 0))
		cfg := LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 16}}
		require.NoError(t, s.BeginCapture())
		require.NoError(t, s.Launch(addk, cfg, Ptr(x), I32(1), U64(16)))
		require.NoError(t, s.Launch(addk, cfg, Ptr(x), I32(2), U64(16)))
		require.NoError(t, s.Launch(addk, cfg, Ptr(x), I32(1), U64(16)))
		g, err := s.EndCapture()
		require.NoError(t, err)
		defer g.Close()
		exec, err := g.Instantiate()
		require.NoError(t, err)
		defer exec.Close()
		assert.ErrorIs(t, exec.SetKernelArgs(0, Ptr(x), I32(5), U64(16)), ErrInvalidValue, "launch 0 has a twin, launch 2")
		assert.ErrorIs(t, exec.SetKernelArgs(2, Ptr(x), I32(5), U64(16)), ErrInvalidValue, "launch 2 has a twin, launch 0")
		require.NoError(t, exec.SetKernelArgs(1, Ptr(x), I32(40), U64(16)))
		require.NoError(t, exec.Launch(s))
		got := make([]int32, 16)
		require.NoError(t, s.CopyDtoH(asBytes(got), x, 0))
		require.NoError(t, s.Synchronize(ctx))
		if b.kernels {
			assert.Equal(t, int32(42), got[15])
		}
	})
}

// TestCUDAGraphNodes checks, on the fake driver, which lists a graph's
// nodes last first, that each launch finds its own node, and that a driver
// without the graph API says so.
func TestCUDAGraphNodes(t *testing.T) {
	d, drv, _ := openFake(t)
	defer closeDevice(t, d)
	ctx := context.Background()
	m, err := d.Load(ctx, testProgram)
	require.NoError(t, err)
	addk, err := m.Kernel("addk")
	require.NoError(t, err)
	vadd, err := m.Kernel("vadd")
	require.NoError(t, err)
	s, err := d.NewStream()
	require.NoError(t, err)
	x, err := d.Alloc(64)
	require.NoError(t, err)
	cfg := LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 16}}
	require.NoError(t, s.BeginCapture())
	require.NoError(t, s.Launch(addk, cfg, Ptr(x), I32(1), U64(16)))
	require.NoError(t, s.Launch(vadd, cfg, Ptr(x), Ptr(x), Ptr(x), U32(16)))
	// Launch 0 again but for its grid: a node of its own.
	require.NoError(t, s.Launch(addk, LaunchConfig{Grid: Dim3{X: 2}, Block: Dim3{X: 16}}, Ptr(x), I32(1), U64(16)))
	require.NoError(t, s.Launch(addk, cfg, PtrAt(x, 4), I32(-1), U64(15)))
	assert.Empty(t, drv.launches, "captured launches do not run")
	g, err := s.EndCapture()
	require.NoError(t, err)
	exec, err := g.Instantiate()
	require.NoError(t, err)
	require.NoError(t, exec.SetKernelArgs(3, Ptr(x), I32(7), U64(3)))
	require.NoError(t, exec.SetKernelArgs(0, PtrAt(x, 8), I32(9), U64(2)))
	require.NoError(t, exec.Launch(s))
	require.Len(t, drv.launches, 4)
	addr := x.Addr()
	assert.Equal(t, []uint64{addr + 8, 9, 2}, drv.launches[0].params)
	assert.Equal(t, "vadd", drv.launches[1].name)
	assert.Equal(t, uint32(2), drv.launches[2].cfg.Grid.X)
	assert.Equal(t, []uint64{addr, 1, 16}, drv.launches[2].params)
	assert.Equal(t, []uint64{addr, 7, 3}, drv.launches[3].params)
	require.NoError(t, exec.Close())
	require.NoError(t, g.Close())

	drv.fail["cuStreamBeginCapture_v2"] = resultNotSupported
	assert.ErrorIs(t, s.BeginCapture(), ErrNotSupported)
	delete(drv.fail, "cuStreamBeginCapture_v2")
	drv.fail["cuStreamEndCapture"] = resultCaptureInvalidated
	require.NoError(t, s.BeginCapture())
	_, err = s.EndCapture()
	assert.ErrorIs(t, err, ErrCapture, "an invalidated capture")
	delete(drv.fail, "cuStreamEndCapture")
	drv.mu.Lock()
	delete(drv.capturing, cuStream(s.(*cudaStream).h)) // the driver ended the invalidated capture
	drv.mu.Unlock()
}

// TestGraphCostsOneCall checks that under a virtual clock a graph's launch
// costs the host one call, however many operations it replays.
func TestGraphCostsOneCall(t *testing.T) {
	h, err := NewHost(WithVirtualClock(), WithTiming(Timing{CallOverhead: time.Microsecond}))
	require.NoError(t, err)
	defer closeDevice(t, h)
	m, err := h.Load(context.Background(), testProgram)
	require.NoError(t, err)
	addk, err := m.Kernel("addk")
	require.NoError(t, err)
	s, err := h.NewStream()
	require.NoError(t, err)
	x, err := h.Alloc(64)
	require.NoError(t, err)
	cfg := LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 16}}
	require.NoError(t, s.BeginCapture())
	for i := range 10 {
		require.NoError(t, s.Launch(addk, cfg, Ptr(x), I32(int32(i)), U64(16)))
	}
	g, err := s.EndCapture()
	require.NoError(t, err)
	defer g.Close()
	exec, err := g.Instantiate()
	require.NoError(t, err)
	defer exec.Close()
	start := h.Now()
	require.NoError(t, exec.Launch(s))
	assert.Equal(t, time.Microsecond, h.Now()-start)
	require.NoError(t, s.Launch(addk, cfg, Ptr(x), I32(1), U64(16)))
	assert.Equal(t, 2*time.Microsecond, h.Now()-start, "a launch after the graph costs a call again")
	got := make([]int32, 16)
	require.NoError(t, s.CopyDtoH(asBytes(got), x, 0))
	assert.Equal(t, int32(45+1), got[0], "the graph's launches ran")
}
