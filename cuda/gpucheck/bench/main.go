// Command bench measures what rotary's transfer design rests on, on GPU 0:
// host<->device bandwidth from pinned, pageable and registered memory by
// chunk size, the cost of a launch, of a synchronization and of a driver call,
// NVRTC compile times, and how much of a copy and a kernel on two streams
// overlap. It prints one table. With -host it runs the same measurements on
// the host backend in virtual time under the H200 timing model, as a dry run
// without a GPU: device times are then the model's, host costs the host
// backend's own.
//
// Without a driver or a GPU it says so and exits with status 2.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/rotary-moe/rotary/cuda"
)

//go:embed kernels.cu
var kernelsSource string

// hostClock is the clock rate the host backend's spin assumes (an H200's
// boost clock), cycles per nanosecond.
const hostClock = 1.98

var program = &cuda.Program{
	Name:   "gpucheck.cu",
	Source: kernelsSource,
	Host: map[string]cuda.HostKernel{
		"empty": func(*cuda.HostLaunch) error { return nil },
		"spin": func(l *cuda.HostLaunch) error {
			l.SetDuration(time.Duration(float64(l.Int64(0)) / hostClock))
			return nil
		},
	},
}

var one = cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 32}}

func main() {
	onHost := flag.Bool("host", false, "run on the host backend in virtual time under the H200 timing model (a dry run)")
	reps := flag.Int("reps", 3, "repetitions of each measurement; the table shows medians")
	perPoint := flag.Int64("bytes", 256<<20, "bytes moved per bandwidth measurement")
	flag.Parse()
	if err := run(*onHost, max(*reps, 1), *perPoint); err != nil {
		fmt.Fprintln(os.Stderr, "gpucheck:", err)
		if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type bench struct {
	ctx      context.Context
	dev      cuda.Device
	reps     int
	perPoint int64
	cacheDir string
	onHost   bool
	empty    cuda.Kernel
	spin     cuda.Kernel
}

func run(onHost bool, reps int, perPoint int64) error {
	ctx := context.Background()
	cacheDir, err := os.MkdirTemp("", "gpucheck-kernels-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cacheDir)
	b := &bench{ctx: ctx, reps: reps, perPoint: perPoint, cacheDir: cacheDir, onHost: onHost}
	if b.dev, err = b.open(); err != nil {
		return fmt.Errorf("no GPU to measure: %w", err)
	}
	defer b.dev.Close()

	info := b.dev.Info()
	fmt.Printf("device      %s (%s), compute %d.%d, %.1f GiB, driver %d, Go %s\n", info.Name, info.Kind,
		info.ComputeMajor, info.ComputeMinor, float64(info.TotalMemory)/(1<<30), info.DriverVersion, runtime.Version())
	fmt.Printf("medians of %d runs; bandwidth: %d MiB per point, chunks cycling through a 64 MiB region\n\n", reps, perPoint>>20)

	for _, step := range []func() error{b.compile, b.bandwidth, b.launches, b.overlap} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) open() (cuda.Device, error) {
	if b.onHost {
		return cuda.NewHost(cuda.WithTiming(cuda.TimingH200), cuda.WithVirtualClock(), cuda.WithoutData(), cuda.WithCapacity(1<<30))
	}
	return cuda.Open(b.ctx, 0, cuda.WithCacheDir(b.cacheDir))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// repeat runs measure b.reps times and returns the median.
func (b *bench) repeat(measure func() (time.Duration, error)) (time.Duration, error) {
	var ds []time.Duration
	for range b.reps {
		d, err := measure()
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
	}
	return median(ds), nil
}

// timed queues work on s between two events and returns the device time
// between them.
func (b *bench) timed(s cuda.Stream, work func() error) (time.Duration, error) {
	start, err := b.dev.NewEvent(0)
	if err != nil {
		return 0, err
	}
	defer start.Close()
	end, err := b.dev.NewEvent(0)
	if err != nil {
		return 0, err
	}
	defer end.Close()
	if err := errors.Join(s.Record(start), work(), s.Record(end), end.Synchronize(b.ctx)); err != nil {
		return 0, err
	}
	return end.Since(start)
}

// compile measures NVRTC: the first load (loading NVRTC itself), a program
// not seen before, and the same program from the memory and disk caches.
func (b *bench) compile() error {
	fresh := func(tag string) *cuda.Program {
		p := *program
		p.Source += fmt.Sprintf("\n// %s %d\n", tag, time.Now().UnixNano())
		return &p
	}
	load := func(dev cuda.Device, p *cuda.Program) (cuda.Module, time.Duration, error) {
		start := time.Now()
		m, err := dev.Load(b.ctx, p)
		return m, time.Since(start), err
	}
	m, first, err := load(b.dev, program)
	if err != nil {
		return err
	}
	if b.empty, err = m.Kernel("empty"); err != nil {
		return err
	}
	if b.spin, err = m.Kernel("spin"); err != nil {
		return err
	}
	p := fresh("cold")
	_, cold, err := load(b.dev, p)
	if err != nil {
		return err
	}
	_, memory, err := load(b.dev, p)
	if err != nil {
		return err
	}
	other, err := b.open()
	if err != nil {
		return err
	}
	defer other.Close()
	_, disk, err := load(other, p)
	if err != nil {
		return err
	}
	fmt.Printf("%-43s%s\n", "NVRTC compile + load", "ms")
	fmt.Printf("  %-34s %8.2f\n", "first (loads NVRTC)", ms(first))
	fmt.Printf("  %-34s %8.2f\n", "cold cache", ms(cold))
	fmt.Printf("  %-34s %8.2f\n", "cached in memory", ms(memory))
	fmt.Printf("  %-34s %8.2f\n\n", "cached on disk (another device)", ms(disk))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

const region = 64 << 20

var chunkSizes = []int64{256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20}

func sizeName(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// hostMemory is a region of host memory of one kind for the bandwidth table.
type hostMemory struct {
	name string
	mem  []byte
}

// bandwidth measures copies in both directions from each kind of host
// memory at each chunk size.
func (b *bench) bandwidth() error {
	devBuf, err := b.dev.Alloc(region)
	if err != nil {
		return err
	}
	defer b.dev.Free(devBuf)
	s, err := b.dev.NewStream()
	if err != nil {
		return err
	}
	defer s.Close()

	pinned, err := b.dev.AllocHost(region, 0)
	if err != nil {
		return err
	}
	defer b.dev.FreeHost(pinned)
	pageable := make([]byte, region)
	for i := range pageable {
		pageable[i] = byte(i)
	}
	mapping, unmap, err := mapFile(region)
	if err != nil {
		return err
	}
	defer unmap()
	regFile, err := b.dev.Register(mapping, cuda.RegisterReadOnly)
	if err != nil {
		return fmt.Errorf("register the read-only file mapping: %w", err)
	}
	defer b.dev.Unregister(regFile)
	anon, err := syscall.Mmap(-1, 0, region, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer syscall.Munmap(anon)
	regAnon, err := b.dev.Register(anon, 0)
	if err != nil {
		return err
	}
	defer b.dev.Unregister(regAnon)

	for _, dir := range []struct {
		name  string
		kinds []hostMemory
		copy  func(host []byte, off int64) error
	}{
		{"H2D", []hostMemory{{"pinned", pinned.Bytes()}, {"pageable", pageable}, {"registered file mmap", regFile.Bytes()}},
			func(host []byte, off int64) error { return s.CopyHtoD(devBuf, off, host) }},
		{"D2H", []hostMemory{{"pinned", pinned.Bytes()}, {"pageable", pageable}, {"registered anon mmap", regAnon.Bytes()}},
			func(host []byte, off int64) error { return s.CopyDtoH(host, devBuf, off) }},
	} {
		fmt.Printf("%-3s GB/s                 ", dir.name)
		for _, c := range chunkSizes {
			fmt.Printf("%9s", sizeName(c))
		}
		fmt.Println()
		for _, kind := range dir.kinds {
			fmt.Printf("  %-24s", kind.name)
			for _, chunk := range chunkSizes {
				n := max(b.perPoint/chunk, 1)
				d, err := b.repeat(func() (time.Duration, error) {
					return b.timed(s, func() error {
						for i := range n {
							off := i * chunk % region
							if err := dir.copy(kind.mem[off:off+chunk], off); err != nil {
								return err
							}
						}
						return nil
					})
				})
				if err != nil {
					return fmt.Errorf("%s %s %s: %w", dir.name, kind.name, sizeName(chunk), err)
				}
				fmt.Printf("%9.1f", float64(n*chunk)/d.Seconds()/1e9)
			}
			fmt.Println()
		}
		fmt.Println()
	}
	return nil
}

// mapFile writes n bytes to a temporary file and maps it read-only, its
// pages faulted in, as rotary maps a model file.
func mapFile(n int) ([]byte, func(), error) {
	f, err := os.CreateTemp("", "gpucheck-*.bin")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, n)); err != nil {
		return nil, nil, err
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	// The file is zeros: reading one byte a page faults every page in and,
	// checked, cannot be optimized away.
	var seen byte
	for i := 0; i < n; i += os.Getpagesize() {
		seen |= mem[i]
	}
	if seen != 0 {
		syscall.Munmap(mem)
		return nil, nil, fmt.Errorf("mapping of %s reads back bytes it was not written with", f.Name())
	}
	return mem, func() { syscall.Munmap(mem) }, nil
}

// launches measures the host-side costs of the calls a decode step makes.
func (b *bench) launches() error {
	s, err := b.dev.NewStream()
	if err != nil {
		return err
	}
	defer s.Close()
	small, err := b.dev.Alloc(64)
	if err != nil {
		return err
	}
	defer b.dev.Free(small)
	out := make([]byte, 64)
	done, err := b.dev.NewEvent(0)
	if err != nil {
		return err
	}
	defer done.Close()
	if err := errors.Join(s.Record(done), done.Synchronize(b.ctx)); err != nil {
		return err
	}

	perCall := func(n int, call func() error) (time.Duration, error) {
		return b.repeat(func() (time.Duration, error) {
			start := time.Now()
			for range n {
				if err := call(); err != nil {
					return 0, err
				}
			}
			d := time.Since(start) / time.Duration(n)
			return d, s.Synchronize(b.ctx)
		})
	}
	rows := []struct {
		name string
		n    int
		call func() error
	}{
		{"kernel launch (queued)", 20000, func() error { return s.Launch(b.empty, one) }},
		{"kernel launch + sync", 5000, func() error {
			return errors.Join(s.Launch(b.empty, one), s.Synchronize(b.ctx))
		}},
		{"64 B D2H + sync", 5000, func() error {
			return errors.Join(s.CopyDtoH(out, small, 0), s.Synchronize(b.ctx))
		}},
		{"event query (driver call)", 100000, func() error { _, err := done.Query(); return err }},
		{"event query via a locked goroutine", 20000, hop(func() error { _, err := done.Query(); return err })},
	}
	fmt.Printf("%-43s%s\n", "host cost per call", "µs")
	for _, r := range rows {
		d, err := perCall(r.n, r.call)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		fmt.Printf("  %-34s %8.2f\n", r.name, float64(d)/1e3)
	}
	fmt.Println()
	return nil
}

// hop returns call made through a goroutine that owns a locked OS thread:
// the threading model this package does not use, for comparison.
func hop(call func() error) func() error {
	requests, replies := make(chan struct{}), make(chan error)
	go func() {
		runtime.LockOSThread()
		for range requests {
			replies <- call()
		}
	}()
	return func() error {
		requests <- struct{}{}
		return <-replies
	}
}

// overlap measures a copy on one stream and a kernel of about the same
// length on another, alone and together.
func (b *bench) overlap() error {
	copies, err := b.dev.NewStream()
	if err != nil {
		return err
	}
	defer copies.Close()
	compute, err := b.dev.NewStream()
	if err != nil {
		return err
	}
	defer compute.Close()
	devBuf, err := b.dev.Alloc(region)
	if err != nil {
		return err
	}
	defer b.dev.Free(devBuf)
	pinned, err := b.dev.AllocHost(region, 0)
	if err != nil {
		return err
	}
	defer b.dev.FreeHost(pinned)

	const chunk = 8 << 20
	copyAll := func() error {
		for off := int64(0); off < region; off += chunk {
			if err := copies.CopyHtoD(devBuf, off, pinned.Bytes()[off:off+chunk]); err != nil {
				return err
			}
		}
		return nil
	}
	const probe = 10_000_000
	probeTime, err := b.timed(compute, func() error { return compute.Launch(b.spin, one, cuda.I64(probe)) })
	if err != nil {
		return err
	}
	copyTime, err := b.repeat(func() (time.Duration, error) { return b.timed(copies, copyAll) })
	if err != nil {
		return err
	}
	cycles := int64(float64(probe) * float64(copyTime) / float64(probeTime))
	spin := func() error { return compute.Launch(b.spin, one, cuda.I64(cycles)) }
	kernelTime, err := b.repeat(func() (time.Duration, error) { return b.timed(compute, spin) })
	if err != nil {
		return err
	}
	together, err := b.repeat(func() (time.Duration, error) {
		start, err := b.dev.NewEvent(0)
		if err != nil {
			return 0, err
		}
		defer start.Close()
		var ends [2]cuda.Event
		for i := range ends {
			if ends[i], err = b.dev.NewEvent(0); err != nil {
				return 0, err
			}
			defer ends[i].Close()
		}
		err = errors.Join(copies.Record(start), compute.Wait(start),
			copyAll(), spin(), copies.Record(ends[0]), compute.Record(ends[1]),
			b.dev.Synchronize(b.ctx))
		if err != nil {
			return 0, err
		}
		t0, err0 := ends[0].Since(start)
		t1, err1 := ends[1].Since(start)
		return max(t0, t1), errors.Join(err0, err1)
	})
	if err != nil {
		return err
	}
	hidden := float64(copyTime+kernelTime-together) / float64(min(copyTime, kernelTime)) * 100
	fmt.Printf("%-43s%s\n", "copy/compute overlap on two streams", "ms")
	fmt.Printf("  %-34s %8.2f\n", fmt.Sprintf("H2D %s pinned, %s chunks", sizeName(region), sizeName(chunk)), ms(copyTime))
	fmt.Printf("  %-34s %8.2f\n", "spin kernel", ms(kernelTime))
	fmt.Printf("  %-34s %8.2f   (one after the other: %.2f)\n", "both, on two streams", ms(together), ms(copyTime+kernelTime))
	fmt.Printf("  %-34s %8.0f %%\n", "hidden, of the shorter", hidden)
	return nil
}
