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
