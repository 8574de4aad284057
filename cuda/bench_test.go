package cuda

import (
	"context"
	"runtime"
	"testing"
)

// BenchmarkThreadHop measures what the threading model in doc.go avoids: a
// call handed to a goroutine that owns a locked OS thread, and its answer
// handed back, against the same call made directly. The call itself is
// trivial here; on a GPU it would be a driver call.
func BenchmarkThreadHop(b *testing.B) {
	var sink int
	call := func() int { sink++; return sink }
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			call()
		}
	})
	b.Run("locked-goroutine", func(b *testing.B) {
		requests, replies := make(chan func() int), make(chan int)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for f := range requests {
				replies <- f()
			}
		}()
		for b.Loop() {
			requests <- call
			<-replies
		}
		close(requests)
	})
}

// BenchmarkVirtualStep is one expert fetch and one kernel of a trace
// simulation under WithVirtualClock: what bounds how fast a trace replays.
func BenchmarkVirtualStep(b *testing.B) {
	h, err := NewHost(WithVirtualClock(), WithTiming(TimingH200), WithoutData(), WithCapacity(1<<40))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	copies, _ := h.NewStream()
	compute, _ := h.NewStream()
	ready, _ := h.NewEvent(0)
	slot, _ := h.Alloc(1 << 20)
	host, _ := h.AllocHost(1<<20, 0)
	mod, err := h.Load(context.Background(), hostProgram(map[string]HostKernel{"k": sleepFor(50 * us)}))
	if err != nil {
		b.Fatal(err)
	}
	k, _ := mod.Kernel("k")
	cfg := LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}}
	for b.Loop() {
		if err := copies.CopyHtoD(slot, 0, host.Bytes()); err != nil {
			b.Fatal(err)
		}
		copies.Record(ready)
		compute.Wait(ready)
		compute.Launch(k, cfg, Ptr(slot))
	}
}

// BenchmarkHostCopy is a 1 MiB copy to device memory and back on the host
// backend without a timing model: its raw cost.
func BenchmarkHostCopy(b *testing.B) {
	h, err := NewHost()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	s, _ := h.NewStream()
	x, _ := h.Alloc(1 << 20)
	src, dst := make([]byte, 1<<20), make([]byte, 1<<20)
	ctx := context.Background()
	b.SetBytes(2 << 20)
	for b.Loop() {
		s.CopyHtoD(x, 0, src)
		s.CopyDtoH(dst, x, 0)
		if err := s.Synchronize(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGraphStep is a step of 64 small launches (addk on 256 ints),
// queued one by one ("launches") or replayed from a graph captured once
// ("graph"), then synchronized: what a graph saves per step. On the host
// backend it is the backend's own cost; with a GPU (BenchmarkGraphStep/cuda)
// the driver's, which is the figure that matters.
func BenchmarkGraphStep(b *testing.B) {
	const launches = 64
	ctx := context.Background()
	for _, bk := range []struct {
		name string
		open func() (Device, error)
	}{
		{"host", func() (Device, error) { return NewHost() }},
		{"cuda", func() (Device, error) { return Open(ctx, 0) }},
	} {
		b.Run(bk.name, func(b *testing.B) {
			d, err := bk.open()
			if err != nil {
				b.Skip(err)
			}
			defer d.Close()
			m, err := d.Load(ctx, testProgram)
			if err != nil {
				b.Fatal(err)
			}
			k, _ := m.Kernel("addk")
			s, _ := d.NewStream()
			x, _ := d.Alloc(4 * 256)
			cfg := LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 256}}
			step := func() error {
				for i := range launches {
					if err := s.Launch(k, cfg, Ptr(x), I32(int32(i)), U64(256)); err != nil {
						return err
					}
				}
				return nil
			}
			b.Run("launches", func(b *testing.B) {
				for b.Loop() {
					if err := step(); err != nil {
						b.Fatal(err)
					}
					if err := s.Synchronize(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("graph", func(b *testing.B) {
				if err := s.BeginCapture(); err != nil {
					b.Fatal(err)
				}
				if err := step(); err != nil {
					b.Fatal(err)
				}
				g, err := s.EndCapture()
				if err != nil {
					b.Fatal(err)
				}
				defer g.Close()
				exec, err := g.Instantiate()
				if err != nil {
					b.Fatal(err)
				}
				defer exec.Close()
				for b.Loop() {
					if err := exec.Launch(s); err != nil {
						b.Fatal(err)
					}
					if err := s.Synchronize(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
