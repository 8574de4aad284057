package cuda

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The tests in this file hold for every backend: the host backend in real
// and in virtual time, the CUDA backend over a fake driver, and a GPU when
// there is one.

type backend struct {
	name    string
	kernels bool // whether launched kernels run and change memory
	open    func(t *testing.T, opts ...SharedOption) Device
}

var testBackends = []backend{
	{name: "host", kernels: true, open: func(t *testing.T, opts ...SharedOption) Device {
		return openHost(t, hostOptions(opts)...)
	}},
	{name: "host-virtual", kernels: true, open: func(t *testing.T, opts ...SharedOption) Device {
		return openHost(t, append(hostOptions(opts), WithVirtualClock(), WithTiming(TimingH200))...)
	}},
	{name: "cuda-fake", open: func(t *testing.T, opts ...SharedOption) Device {
		d, _, _ := openFake(t, asOptions(opts)...)
		return d
	}},
	{name: "cuda", kernels: true, open: func(t *testing.T, opts ...SharedOption) Device { return openGPU(t, asOptions(opts)...) }},
}

func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range testBackends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// asOptions and hostOptions hand shared options to Open and NewHost.
func asOptions(opts []SharedOption) []Option {
	out := make([]Option, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

func hostOptions(opts []SharedOption) []HostOption {
	out := make([]HostOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

func openHost(t *testing.T, opts ...HostOption) Device {
	d, err := NewHost(opts...)
	require.NoError(t, err)
	return d
}

// openFake opens the CUDA backend over a fake driver and compiler, with the
// kernel cache in a temporary directory, and checks at the end of the test
// that closing the device left nothing behind in the driver.
func openFake(t *testing.T, opts ...Option) (*cudaDevice, *fakeDriver, *fakeCompiler) {
	drv, comp := newFakeDriver(), &fakeCompiler{supports: []int{75, 80, 90}}
	cfg, err := newCUDAConfig(append([]Option{WithCacheDir(t.TempDir())}, opts...))
	require.NoError(t, err)
	d, err := openDevice(drv, func() (compiler, error) { return comp, nil }, 0, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		d.life.RLock()
		closed := d.closed
		d.life.RUnlock()
		if closed {
			assert.Empty(t, drv.leaks(), "driver resources left after Close")
		}
	})
	return d, drv, comp
}

// gpuProbe opens and closes GPU 0 once per test binary, to tell whether the
// GPU tests can run.
var gpuProbe = sync.OnceValues(func() (string, error) {
	d, err := Open(context.Background(), 0)
	if err != nil {
		return "", err
	}
	info := d.Info()
	return info.Name, d.Close()
})

// openGPU opens GPU 0, or skips the test saying why there is none. A driver
// that is there but fails is a test failure, not a reason to skip.
func openGPU(t *testing.T, opts ...Option) Device {
	t.Helper()
	if _, err := gpuProbe(); errors.Is(err, ErrNoDriver) || errors.Is(err, ErrNoDevice) {
		t.Skipf("no GPU to test on: %v", err)
	} else if err != nil {
		t.Fatalf("GPU 0 does not open and close: %v", err)
	}
	d, err := Open(context.Background(), 0, append([]Option{WithCacheDir(t.TempDir())}, opts...)...)
	require.NoError(t, err)
	return d
}

// closeDevice closes d and checks that it let go of everything.
func closeDevice(t *testing.T, d Device) {
	t.Helper()
	require.NoError(t, d.Close())
	assert.Equal(t, Stats{}, d.Stats())
	assert.ErrorIs(t, d.Close(), ErrClosed)
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// mapAnon returns n bytes of page-aligned memory outside the Go heap, as
// registration works on whole pages.
func mapAnon(t *testing.T, n int) []byte {
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Munmap(mem) })
	return mem
}

func TestCopies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		defer closeDevice(t, d)
		ctx := context.Background()
		s, err := d.NewStream()
		require.NoError(t, err)

		const n = 4096
		x, err := d.Alloc(n)
		require.NoError(t, err)
		y, err := d.Alloc(n)
		require.NoError(t, err)
		assert.Equal(t, int64(n), x.Size())
		assert.NotEqual(t, x.Addr(), y.Addr())

		src := pattern(1000, 3)
		require.NoError(t, s.Memset(x, 0, n, 0xab))
		require.NoError(t, s.CopyHtoD(x, 100, src))
		require.NoError(t, s.Memset(y, 0, n, 0))
		require.NoError(t, s.CopyDtoD(y, 2000, x, 100, 1000))
		tail, err := y.Slice(3000, 1096)
		require.NoError(t, err)
		require.NoError(t, s.Memset(tail, 96, 1000, 7))
		gotX, gotY := make([]byte, n), make([]byte, n)
		require.NoError(t, s.CopyDtoH(gotX, x, 0))
		require.NoError(t, s.CopyDtoH(gotY, y, 0))
		require.NoError(t, s.Synchronize(ctx))

		wantX := bytes.Repeat([]byte{0xab}, n)
		copy(wantX[100:], src)
		wantY := make([]byte, n)
		copy(wantY[2000:], src)
		copy(wantY[3096:], bytes.Repeat([]byte{7}, 1000))
		assert.Equal(t, wantX, gotX)
		assert.Equal(t, wantY, gotY)

		part := make([]byte, 10)
		require.NoError(t, s.CopyDtoH(part, x, 95))
		require.NoError(t, s.Synchronize(ctx))
		assert.Equal(t, append(bytes.Repeat([]byte{0xab}, 5), src[:5]...), part)
		done, err := s.Query()
		require.NoError(t, err)
		assert.True(t, done)
	})
}

func TestMisuseIsAnError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		s, err := d.NewStream()
		require.NoError(t, err)
		x, err := d.Alloc(256)
		require.NoError(t, err)
		buf := make([]byte, 16)

		_, err = d.Alloc(0)
		assert.ErrorIs(t, err, ErrInvalidValue)
		_, err = d.Alloc(-1)
		assert.ErrorIs(t, err, ErrInvalidValue)
		_, err = x.Slice(200, 100)
		assert.ErrorIs(t, err, ErrInvalidValue)
		part, err := x.Slice(16, 16)
		require.NoError(t, err)
		assert.ErrorIs(t, d.Free(part), ErrInvalidValue, "free of a slice")
		assert.ErrorIs(t, d.Free(Buffer{}), ErrInvalidHandle)

		assert.ErrorIs(t, s.CopyHtoD(x, 250, buf), ErrInvalidValue, "copy past the end")
		assert.ErrorIs(t, s.CopyHtoD(x, -1, buf), ErrInvalidValue, "negative offset")
		assert.ErrorIs(t, s.CopyDtoH(buf, part, 1), ErrInvalidValue, "past the end of a slice")
		assert.ErrorIs(t, s.CopyDtoD(x, 0, x, 128, 129), ErrInvalidValue)
		assert.ErrorIs(t, s.CopyDtoD(x, 0, x, 0, -1), ErrInvalidValue)
		assert.ErrorIs(t, s.Memset(x, 255, 2, 0), ErrInvalidValue)

		other := b.open(t)
		foreign, err := other.Alloc(256)
		require.NoError(t, err)
		assert.ErrorIs(t, s.CopyHtoD(foreign, 0, buf), ErrInvalidHandle, "another device's buffer")
		assert.ErrorIs(t, d.Free(foreign), ErrInvalidHandle)
		closeDevice(t, other)

		require.NoError(t, d.Free(x))
		assert.ErrorIs(t, d.Free(x), ErrInvalidHandle, "double free")
		assert.ErrorIs(t, s.CopyHtoD(x, 0, buf), ErrInvalidHandle, "use after free")
		assert.ErrorIs(t, s.CopyDtoH(buf, part, 0), ErrInvalidHandle, "slice of a freed buffer")

		_, err = d.NewEvent(0x80)
		assert.ErrorIs(t, err, ErrInvalidValue)
		e, err := d.NewEvent(0)
		require.NoError(t, err)
		require.NoError(t, e.Close())
		assert.ErrorIs(t, e.Close(), ErrClosed)
		assert.ErrorIs(t, s.Record(e), ErrClosed, "record of a closed event")

		y, err := d.Alloc(64)
		require.NoError(t, err)
		require.NoError(t, s.Close())
		assert.ErrorIs(t, s.Close(), ErrClosed)
		assert.ErrorIs(t, s.CopyHtoD(y, 0, buf), ErrClosed, "copy on a closed stream")
		assert.ErrorIs(t, s.Synchronize(context.Background()), ErrClosed)

		closeDevice(t, d)
		_, err = d.Alloc(64)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, d.Free(y), ErrClosed)
		_, err = d.NewStream()
		assert.ErrorIs(t, err, ErrClosed)
		_, _, err = d.MemInfo()
		assert.ErrorIs(t, err, ErrClosed)
	})
}

func TestHostMemory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		defer closeDevice(t, d)
		ctx := context.Background()
		s, err := d.NewStream()
		require.NoError(t, err)
		dev, err := d.Alloc(8192)
		require.NoError(t, err)

		pinned, err := d.AllocHost(8192, 0)
		require.NoError(t, err)
		assert.Equal(t, 8192, pinned.Len())
		copy(pinned.Bytes(), pattern(8192, 1))
		require.NoError(t, s.CopyHtoD(dev, 0, pinned.Bytes()))

		page := os.Getpagesize()
		mem := mapAnon(t, 2*page)
		reg, err := d.Register(mem, RegisterPortable)
		require.NoError(t, err)
		_, err = d.Register(mem[page:], 0)
		assert.ErrorIs(t, err, ErrAlreadyRegistered, "overlapping registration")
		require.NoError(t, s.CopyDtoH(reg.Bytes(), dev, 0))
		require.NoError(t, s.Synchronize(ctx))
		assert.Equal(t, pinned.Bytes()[:2*page], reg.Bytes())

		st := d.Stats()
		assert.Equal(t, Stats{DeviceBytes: 8192, DeviceBuffers: 1, PinnedBytes: 8192, PinnedBuffers: 1,
			RegisteredBytes: int64(2 * page), Registrations: 1, Streams: 1}, st)

		assert.ErrorIs(t, d.FreeHost(reg), ErrInvalidValue, "FreeHost of registered memory")
		assert.ErrorIs(t, d.Unregister(pinned), ErrInvalidValue, "Unregister of allocated memory")
		require.NoError(t, d.Unregister(reg))
		assert.ErrorIs(t, d.Unregister(reg), ErrNotRegistered)
		require.NoError(t, d.FreeHost(pinned))
		assert.ErrorIs(t, d.FreeHost(pinned), ErrInvalidHandle)
		assert.ErrorIs(t, d.FreeHost(HostBuffer{}), ErrInvalidHandle)
		_, err = d.AllocHost(0, 0)
		assert.ErrorIs(t, err, ErrInvalidValue)
		_, err = d.AllocHost(64, 0x100)
		assert.ErrorIs(t, err, ErrInvalidValue)
		_, err = d.Register(nil, 0)
		assert.ErrorIs(t, err, ErrInvalidValue)
	})
}

// TestRegisterReadOnlyMapping copies from a read-only mapping of a file, the
// way rotary serves experts straight from the model file.
func TestRegisterReadOnlyMapping(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		defer closeDevice(t, d)
		want := pattern(3*os.Getpagesize()+100, 9)
		path := filepath.Join(t.TempDir(), "model.bin")
		require.NoError(t, os.WriteFile(path, want, 0o644))
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		mapping, err := syscall.Mmap(int(f.Fd()), 0, len(want), syscall.PROT_READ, syscall.MAP_SHARED)
		require.NoError(t, err)
		defer syscall.Munmap(mapping)

		reg, err := d.Register(mapping, RegisterReadOnly)
		require.NoError(t, err)
		s, err := d.NewStream()
		require.NoError(t, err)
		dev, err := d.Alloc(int64(len(want)))
		require.NoError(t, err)
		require.NoError(t, s.CopyHtoD(dev, 0, reg.Bytes()))
		got := make([]byte, len(want))
		require.NoError(t, s.CopyDtoH(got, dev, 0))
		require.NoError(t, s.Synchronize(context.Background()))
		assert.Equal(t, want, got)
		require.NoError(t, d.Unregister(reg))
	})
}

func TestEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		defer closeDevice(t, d)
		ctx := context.Background()
		producer, err := d.NewStream()
		require.NoError(t, err)
		consumer, err := d.NewStream()
		require.NoError(t, err)
		start, err := d.NewEvent(0)
		require.NoError(t, err)
		ready, err := d.NewEvent(0)
		require.NoError(t, err)
		untimed, err := d.NewEvent(EventDisableTiming | EventBlockingSync)
		require.NoError(t, err)

		done, err := ready.Query()
		require.NoError(t, err)
		assert.True(t, done, "an event never recorded has completed")
		require.NoError(t, ready.Synchronize(ctx))
		_, err = ready.Since(start)
		assert.Error(t, err, "Since of events never recorded")
		require.NoError(t, consumer.Wait(ready), "waiting on an event never recorded waits for nothing")

		const n = 1 << 20
		x, err := d.Alloc(n)
		require.NoError(t, err)
		y, err := d.Alloc(n)
		require.NoError(t, err)
		want := pattern(n, 5)
		require.NoError(t, producer.Record(start))
		require.NoError(t, producer.CopyHtoD(x, 0, want))
		require.NoError(t, producer.Record(ready))
		require.NoError(t, producer.Record(untimed))
		require.NoError(t, consumer.Wait(ready))
		require.NoError(t, consumer.CopyDtoD(y, 0, x, 0, n))
		got := make([]byte, n)
		require.NoError(t, consumer.CopyDtoH(got, y, 0))
		require.NoError(t, consumer.Synchronize(ctx))
		assert.Equal(t, want, got, "the consumer waited for the producer's copy")

		require.NoError(t, ready.Synchronize(ctx))
		done, err = ready.Query()
		require.NoError(t, err)
		assert.True(t, done)
		took, err := ready.Since(start)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, took, time.Duration(0))
		_, err = untimed.Since(start)
		assert.ErrorIs(t, err, ErrInvalidHandle, "Since with an event without timing")
		require.NoError(t, d.Synchronize(ctx))
	})
}

func TestCapacity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t, WithCapacity(1<<20))
		defer closeDevice(t, d)
		assert.Equal(t, int64(1<<20), d.Info().TotalMemory)
		x, err := d.Alloc(600 << 10)
		require.NoError(t, err)
		free, total, err := d.MemInfo()
		require.NoError(t, err)
		assert.Equal(t, int64(1<<20), total)
		assert.LessOrEqual(t, free, int64(424<<10))
		_, err = d.Alloc(600 << 10)
		assert.ErrorIs(t, err, ErrOutOfMemory)
		require.NoError(t, d.Free(x))
		_, err = d.Alloc(600 << 10)
		require.NoError(t, err)
	})
}

func TestAllocFault(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		var seen []AllocInfo
		d := b.open(t, WithAllocFault(func(a AllocInfo) error {
			seen = append(seen, a)
			if a.Kind == AllocDevice && a.N == 2 {
				return ErrOutOfMemory
			}
			if a.Kind == AllocPinned {
				return errors.New("no pinned memory today")
			}
			return nil
		}))
		defer closeDevice(t, d)
		_, err := d.Alloc(100)
		require.NoError(t, err)
		_, err = d.Alloc(200)
		assert.ErrorIs(t, err, ErrOutOfMemory)
		assert.ErrorContains(t, err, "injected")
		_, err = d.Alloc(300)
		require.NoError(t, err)
		_, err = d.AllocHost(64, 0)
		assert.ErrorContains(t, err, "no pinned memory today")
		assert.Equal(t, []AllocInfo{{AllocDevice, 1, 100}, {AllocDevice, 2, 200}, {AllocDevice, 3, 300}, {AllocPinned, 1, 64}}, seen)
		assert.Equal(t, int64(400), d.Stats().DeviceBytes, "a failed allocation holds no capacity")
	})
}

func TestCloseFreesEverything(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		for range 3 {
			_, err := d.Alloc(1000)
			require.NoError(t, err)
		}
		_, err := d.AllocHost(4096, HostAllocPortable)
		require.NoError(t, err)
		_, err = d.Register(mapAnon(t, os.Getpagesize()), 0)
		require.NoError(t, err)
		s, err := d.NewStream()
		require.NoError(t, err)
		x, err := d.Alloc(1 << 16)
		require.NoError(t, err)
		require.NoError(t, s.Memset(x, 0, 1<<16, 1))
		_, err = d.NewEvent(0)
		require.NoError(t, err)
		if b.kernels {
			_, err = d.Load(context.Background(), testProgram)
			require.NoError(t, err)
		}
		st := d.Stats()
		assert.Equal(t, 4, st.DeviceBuffers)
		assert.Equal(t, 1, st.Registrations)
		closeDevice(t, d)
	})
}

// TestConcurrentUse has many goroutines, each on its own OS thread that
// ends with it, allocate, copy, launch and free through shared and private
// streams: on CUDA, every one of those threads must find the context
// current.
func TestConcurrentUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		d := b.open(t)
		defer closeDevice(t, d)
		ctx := context.Background()
		var k Kernel
		if b.kernels {
			m, err := d.Load(ctx, testProgram)
			require.NoError(t, err)
			k, err = m.Kernel("addk")
			require.NoError(t, err)
		}
		shared, err := d.NewStream()
		require.NoError(t, err)

		const workers, rounds, n = 16, 20, 1024
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
				errs <- func() error {
					s := shared
					if w%2 == 1 {
						own, err := d.NewStream()
						if err != nil {
							return err
						}
						defer own.Close()
						s = own
					}
					host, back := make([]byte, 4*n), make([]byte, 4*n)
					for r := range rounds {
						x, err := d.Alloc(4 * n)
						if err != nil {
							return err
						}
						vals := View[int32](host)
						for i := range vals {
							vals[i] = int32(w*1000 + r)
						}
						if err := s.CopyHtoD(x, 0, host); err != nil {
							return err
						}
						want := int32(w*1000 + r)
						if k != nil {
							if err := s.Launch(k, LaunchConfig{Grid: Dim3{X: n / 256}, Block: Dim3{X: 256}}, Ptr(x), I32(-7), U64(n)); err != nil {
								return err
							}
							want -= 7
						}
						if err := s.CopyDtoH(back, x, 0); err != nil {
							return err
						}
						if err := s.Synchronize(ctx); err != nil {
							return err
						}
						for i, v := range View[int32](back) {
							if v != want {
								return fmt.Errorf("worker %d round %d: element %d is %d, want %d", w, r, i, v, want)
							}
						}
						if err := d.Free(x); err != nil {
							return err
						}
					}
					return nil
				}()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err)
		}
	})
}

func TestKernels(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		if !b.kernels {
			t.Skip("kernels do not run on this backend")
		}
		d := b.open(t)
		defer closeDevice(t, d)
		ctx := context.Background()
		m, err := d.Load(ctx, testProgram)
		require.NoError(t, err)
		s, err := d.NewStream()
		require.NoError(t, err)
		kernel := func(name string) Kernel {
			k, err := m.Kernel(name)
			require.NoError(t, err)
			assert.Equal(t, name, k.Name())
			return k
		}

		const n = 1000
		a, bb, c := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], bb[i] = float32(i), 0.5*float32(i)
		}
		da, err := d.Alloc(4 * n)
		require.NoError(t, err)
		db, err := d.Alloc(4 * n)
		require.NoError(t, err)
		dc, err := d.Alloc(4 * n)
		require.NoError(t, err)
		require.NoError(t, s.CopyHtoD(da, 0, asBytes(a)))
		require.NoError(t, s.CopyHtoD(db, 0, asBytes(bb)))
		cfg := LaunchConfig{Grid: Dim3{X: (n + 255) / 256}, Block: Dim3{X: 256}}
		require.NoError(t, s.Launch(kernel("vadd"), cfg, Ptr(da), Ptr(db), Ptr(dc), U32(n)))
		require.NoError(t, s.CopyDtoH(asBytes(c), dc, 0))

		x, y := []float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}
		dx, err := d.Alloc(32)
		require.NoError(t, err)
		dy, err := d.Alloc(32)
		require.NoError(t, err)
		require.NoError(t, s.CopyHtoD(dx, 0, asBytes(x)))
		require.NoError(t, s.CopyHtoD(dy, 0, asBytes(y)))
		// Only elements 1 and 2: a pointer with an offset and a count.
		require.NoError(t, s.Launch(kernel("axpy"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 32}},
			F64(-2), PtrAt(dx, 8), PtrAt(dy, 8), I64(2)))
		require.NoError(t, s.CopyDtoH(asBytes(y), dy, 0))

		pinned, err := d.AllocHost(300, HostAllocDeviceMap)
		require.NoError(t, err)
		for i := range pinned.Bytes() {
			pinned.Bytes()[i] = byte(i)
		}
		sum, err := d.Alloc(4)
		require.NoError(t, err)
		require.NoError(t, s.Memset(sum, 0, 4, 0))
		require.NoError(t, s.Launch(kernel("bytesum"), LaunchConfig{Grid: Dim3{X: 2}, Block: Dim3{X: 128}},
			HostPtr(pinned, 10), Ptr(sum), U32(200)))
		gotSum := make([]uint32, 1)
		require.NoError(t, s.CopyDtoH(asBytes(gotSum), sum, 0))
		require.NoError(t, s.Synchronize(ctx))

		for i := range c {
			require.Equal(t, a[i]+bb[i], c[i], "vadd at %d", i)
		}
		assert.Equal(t, []float64{10, 16, 24, 40}, y)
		want := uint32(0)
		for i := 10; i < 210; i++ {
			want += uint32(i % 256)
		}
		assert.Equal(t, want, gotSum[0])

		// Misuse.
		_, err = m.Kernel("nope")
		assert.ErrorIs(t, err, ErrNotFound)
		vadd := kernel("vadd")
		assert.ErrorIs(t, s.Launch(vadd, LaunchConfig{Block: Dim3{X: 1}}, Ptr(da), Ptr(db), Ptr(dc), U32(0)),
			ErrInvalidValue, "empty grid")
		assert.ErrorIs(t, s.Launch(vadd, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 2048}}, Ptr(da), Ptr(db), Ptr(dc), U32(0)),
			ErrInvalidValue, "block too large")
		assert.ErrorIs(t, s.Launch(vadd, cfg, Ptr(da), Arg{}, Ptr(dc), U32(0)), ErrInvalidValue, "zero Arg")
		assert.ErrorIs(t, s.Launch(vadd, cfg, Ptr(da), PtrAt(db, 4*n+1), Ptr(dc), U32(0)), ErrInvalidValue, "pointer past the end")
		assert.ErrorIs(t, s.Launch(kernel("bytesum"), cfg, HostPtr(HostBuffer{}, 0), Ptr(sum), U32(0)), ErrInvalidHandle)
		unmapped, err := d.AllocHost(64, 0)
		require.NoError(t, err)
		assert.Zero(t, unmapped.Addr(), "unmapped host memory has no device address")
		assert.NotZero(t, pinned.Addr(), "mapped host memory has a device address")
		assert.ErrorIs(t, s.Launch(kernel("bytesum"), cfg, HostPtr(unmapped, 0), Ptr(sum), U32(0)), ErrInvalidValue, "host memory not mapped")
		require.NoError(t, d.Free(dc))
		assert.ErrorIs(t, s.Launch(vadd, cfg, Ptr(da), Ptr(db), Ptr(dc), U32(n)), ErrInvalidHandle, "launch on freed memory")
		require.NoError(t, m.Close())
		assert.ErrorIs(t, s.Launch(vadd, cfg, Ptr(da), Ptr(db), Ptr(da), U32(n)), ErrClosed, "launch from an unloaded module")
		_, err = m.Kernel("vadd")
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, m.Close(), ErrClosed)
		require.NoError(t, s.Synchronize(ctx))
	})
}

// asBytes shows a slice of numbers as its bytes.
func asBytes[T Scalar](v []T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*int(unsafe.Sizeof(v[0])))
}
