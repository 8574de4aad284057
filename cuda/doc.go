// Package cuda is rotary's access to an NVIDIA GPU, and a host (CPU) backend
// with the same interface, so that everything above it runs and is tested
// without a GPU.
//
// A Device gives device memory (Buffer), page-locked host memory (HostBuffer,
// allocated or registered, including a read-only file mapping), streams,
// events and kernels. Kernels are written once as a Program: CUDA C that NVRTC
// compiles at run time for the GPU's architecture (cached in process and on
// disk, keyed by source, architecture and driver version), and Go functions
// under the same names that the host backend runs. Kernel arguments are a
// typed list (Ptr, PtrAt, HostPtr, I32, U32, I64, U64, F32, F64) that both
// backends take: the CUDA backend packs it into the driver's parameter array,
// the host backend hands it to the Go kernel as a HostLaunch whose pointer
// arguments are the bytes of the buffers.
//
// Open opens a GPU. The CUDA driver (libcuda.so.1) and NVRTC are loaded with
// dlopen on first use, so a binary needs neither the CUDA toolkit to build
// nor a GPU to start: without a driver, Open fails with ErrNoDriver naming
// what it tried, and a build without cgo behaves the same.
//
// NewHost creates the host backend: device memory is Go memory behind
// handles, each stream is a goroutine working through a FIFO queue, events
// are real. It can emulate a card of a given size (WithCapacity), model the
// time transfers and kernels take (WithTiming), run in virtual time for trace
// simulations (WithVirtualClock: operations run as they are queued and are
// placed on a virtual timeline that keeps stream order, event waits and shared
// copy links), keep accounts without bytes (WithoutData), and inject failures
// (WithAllocFault, WithCopyFault, WithAsyncCopyFault).
//
// Options come in three kinds: Option for Open, HostOption for NewHost, and
// SharedOption (WithCapacity, WithLogger, WithAllocFault), which is both. An
// option of one backend handed to the other does not compile; values are
// checked by the constructor (ErrInvalidValue).
//
// Misuse — a freed, foreign or zero handle, a range past a buffer's end, a
// closed stream — is an error matching one of the package's sentinels on both
// backends, never a crash; driver failures are *Error, which matches the
// sentinels by result code.
//
// # Threading
//
// A CUDA context is current per OS thread, and goroutines move between
// threads: a driver call from a goroutine that moved fails with
// CUDA_ERROR_INVALID_CONTEXT. This package makes the device's context current
// inside every C call, before the driver function it wraps, in the same cgo
// crossing, so no goroutine can move in between. That costs one thread-local
// store per call; any goroutine may call any method, and many goroutines use
// streams at once without waiting for each other. The alternative, one
// goroutine that owns the context on a locked OS thread and receives work over
// a channel, costs a hand-off to that thread and back on every call — more
// than a kernel launch itself (4.3 µs through cgo on an H200 machine):
// BenchmarkThreadHop measures 15–30 µs per round trip on a loaded two-core
// machine, and gpucheck measures both on a GPU — and it serializes every
// stream behind one queue. Devices opened on the same ordinal share the GPU's
// primary context.
package cuda
