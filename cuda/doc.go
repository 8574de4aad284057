// Package cuda is rotary's access to an NVIDIA GPU, and a host (CPU) backend
// with the same interface, so that everything above it runs and is tested
// without a GPU.
//
// A Device gives device memory (Buffer), page-locked host memory (HostBuffer,
// allocated or registered, including a read-only file mapping), streams,
// events and kernels. Kernels are written once as a Program: CUDA C that NVRTC
// compiles at run time for the GPU's architecture (cached in process and on
// disk), and Go functions under the same names that the host backend runs.
// Kernel arguments are a typed list (Ptr, PtrAt, HostPtr, I32, U32, I64, U64,
// F32, F64) that both backends accept.
//
// Open opens a GPU. The CUDA driver (libcuda.so.1) and NVRTC are loaded with
// dlopen on first use, so a binary built here needs neither the CUDA toolkit
// to build nor a GPU to start: without a driver, Open fails with ErrNoDriver,
// and a build without cgo behaves the same. NewHost creates the host backend,
// which can emulate a card of a given size, model transfer times, run in
// virtual time for trace simulations, and inject failures.
//
// # Threading
//
// A CUDA context is current per OS thread, and goroutines move between
// threads: a call from a goroutine that moved fails with
// CUDA_ERROR_INVALID_CONTEXT. This package makes the device's context current
// inside every C call, before the driver function it wraps, in the same cgo
// crossing: one thread-local store per call, so any goroutine may call any
// method, streams are used from many goroutines at once, and no call waits for
// another. The alternative, one goroutine that owns the context on a locked
// thread and receives work over a channel, costs a goroutine hand-off to
// another thread (and back) per call, comparable to a kernel launch itself
// (4.3 µs through cgo), and serializes every stream behind one queue.
// BenchmarkThreadHop measures the hand-off here; gpucheck measures both on a
// GPU.
package cuda
