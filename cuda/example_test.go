package cuda_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/rotary-moe/rotary/cuda"
)

// scale is a program written once: CUDA C for a GPU, Go for the host.
var scale = &cuda.Program{
	Name: "scale.cu",
	Source: `extern "C" __global__ void scale(float *x, float k, unsigned int n) {
	unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) x[i] *= k;
}`,
	Host: map[string]cuda.HostKernel{
		"scale": func(l *cuda.HostLaunch) error {
			x, k := cuda.View[float32](l.Bytes(0)), l.Float32(1)
			for i := range l.Uint32(2) {
				x[i] *= k
			}
			return nil
		},
	},
}

// Copy numbers to the device, scale them with a kernel, and copy them back.
func Example() {
	ctx := context.Background()
	dev, err := cuda.NewHost() // cuda.Open(ctx, 0) on a GPU
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()

	mod, err := dev.Load(ctx, scale)
	if err != nil {
		log.Fatal(err)
	}
	kernel, err := mod.Kernel("scale")
	if err != nil {
		log.Fatal(err)
	}
	stream, err := dev.NewStream()
	if err != nil {
		log.Fatal(err)
	}
	host, err := dev.AllocHost(4*4, 0) // pinned: copies at full speed
	if err != nil {
		log.Fatal(err)
	}
	x := cuda.View[float32](host.Bytes())
	copy(x, []float32{1, 2, 3, 4})
	buf, err := dev.Alloc(4 * 4)
	if err != nil {
		log.Fatal(err)
	}

	cfg := cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 128}}
	if err := errors.Join(
		stream.CopyHtoD(buf, 0, host.Bytes()),
		stream.Launch(kernel, cfg, cuda.Ptr(buf), cuda.F32(2), cuda.U32(4)),
		stream.CopyDtoH(host.Bytes(), buf, 0),
		stream.Synchronize(ctx),
	); err != nil {
		log.Fatal(err)
	}
	fmt.Println(x)
	// Output: [2 4 6 8]
}

// Open a GPU when there is one, and fall back to the host backend.
func ExampleOpen() {
	var dev cuda.Device
	dev, err := cuda.Open(context.Background(), 0)
	if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) {
		dev, err = cuda.NewHost(cuda.WithCapacity(16 << 30))
	}
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	fmt.Println(dev.Info().Kind)
}

// Simulate in virtual time how a copy on one stream overlaps a kernel on
// another: nothing sleeps, and the events report the modeled times.
func ExampleWithVirtualClock() {
	ctx := context.Background()
	dev, err := cuda.NewHost(cuda.WithVirtualClock(), cuda.WithoutData(),
		cuda.WithTiming(cuda.Timing{CopyLatency: 10 * time.Microsecond, PinnedBandwidth: 1e9}))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	mod, err := dev.Load(ctx, &cuda.Program{Name: "model", Host: map[string]cuda.HostKernel{
		"layer": func(l *cuda.HostLaunch) error { l.SetDuration(2 * time.Millisecond); return nil },
	}})
	if err != nil {
		log.Fatal(err)
	}
	layer, _ := mod.Kernel("layer")
	copies, _ := dev.NewStream()
	compute, _ := dev.NewStream()
	copied, _ := dev.NewEvent(0)
	computed, _ := dev.NewEvent(0)
	slot, _ := dev.Alloc(1e6)
	expert, _ := dev.AllocHost(1e6, 0)

	if err := errors.Join(
		copies.CopyHtoD(slot, 0, expert.Bytes()), // 10 µs + 1 MB at 1 GB/s
		copies.Record(copied),
		compute.Launch(layer, cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 1}}),
		compute.Record(computed),
		dev.Synchronize(ctx),
	); err != nil {
		log.Fatal(err)
	}
	c, _ := dev.EventTime(copied)
	k, _ := dev.EventTime(computed)
	fmt.Println("copy done at", c)
	fmt.Println("kernel done at", k)
	fmt.Println("host clock at", dev.Now())
	// Output:
	// copy done at 1.01ms
	// kernel done at 2ms
	// host clock at 2ms
}

// Make the second device allocation fail, to test the code above on an
// out-of-memory path.
func ExampleWithAllocFault() {
	dev, err := cuda.NewHost(cuda.WithAllocFault(func(a cuda.AllocInfo) error {
		if a.Kind == cuda.AllocDevice && a.N == 2 {
			return cuda.ErrOutOfMemory
		}
		return nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	for i := 1; i <= 3; i++ {
		_, err := dev.Alloc(1 << 20)
		fmt.Printf("allocation %d: out of memory: %v\n", i, errors.Is(err, cuda.ErrOutOfMemory))
	}
	fmt.Println("in use:", dev.Stats().DeviceBytes)
	// Output:
	// allocation 1: out of memory: false
	// allocation 2: out of memory: true
	// allocation 3: out of memory: false
	// in use: 2097152
}

// A test reads device memory directly on the host backend.
func ExampleHostDevice_Bytes() {
	dev, err := cuda.NewHost()
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	stream, _ := dev.NewStream()
	buf, _ := dev.Alloc(8)
	if err := errors.Join(stream.Memset(buf, 0, 8, 0), stream.Memset(buf, 2, 4, 0xff), stream.Synchronize(context.Background())); err != nil {
		log.Fatal(err)
	}
	b, _ := dev.Bytes(buf)
	fmt.Println(b)
	// Output: [0 0 255 255 255 255 0 0]
}

// Capture a step once (copy in, scale, copy out) and replay it: each replay
// reads the pinned input as it is then, and SetKernelArgs changes the
// kernel's factor without capturing again.
func ExampleGraph() {
	ctx := context.Background()
	dev, err := cuda.NewHost() // cuda.Open(ctx, 0) on a GPU
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	mod, err := dev.Load(ctx, scale)
	if err != nil {
		log.Fatal(err)
	}
	kernel, err := mod.Kernel("scale")
	if err != nil {
		log.Fatal(err)
	}
	stream, err := dev.NewStream()
	if err != nil {
		log.Fatal(err)
	}
	host, err := dev.AllocHost(4*4, 0) // a captured copy needs pinned memory
	if err != nil {
		log.Fatal(err)
	}
	buf, err := dev.Alloc(4 * 4)
	if err != nil {
		log.Fatal(err)
	}

	if err := stream.BeginCapture(); err != nil {
		log.Fatal(err)
	}
	cfg := cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 32}}
	for _, err := range []error{
		stream.CopyHtoD(buf, 0, host.Bytes()),
		stream.Launch(kernel, cfg, cuda.Ptr(buf), cuda.F32(2), cuda.U32(4)),
		stream.CopyDtoH(host.Bytes(), buf, 0),
	} {
		if err != nil {
			log.Fatal(err)
		}
	}
	graph, err := stream.EndCapture()
	if err != nil {
		log.Fatal(err)
	}
	defer graph.Close()
	step, err := graph.Instantiate()
	if err != nil {
		log.Fatal(err)
	}
	defer step.Close()

	x := cuda.View[float32](host.Bytes())
	copy(x, []float32{1, 2, 3, 4})
	for _, k := range []float32{2, 2, 0.5} {
		if err := step.SetKernelArgs(0, cuda.Ptr(buf), cuda.F32(k), cuda.U32(4)); err != nil {
			log.Fatal(err)
		}
		if err := step.Launch(stream); err != nil {
			log.Fatal(err)
		}
		if err := stream.Synchronize(ctx); err != nil {
			log.Fatal(err)
		}
		fmt.Println(x)
	}
	// Output:
	// [2 4 6 8]
	// [4 8 12 16]
	// [2 4 6 8]
}
