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
// what it tried, and a build without cgo behaves the same. Compile runs NVRTC
// alone, with no driver or GPU, for any architecture it knows: PTX, a CUBIN
// and the compiler's log (cuda/gpucheck/nvrtc checks every kernel of the
// project with it).
//
// NewHost creates the host backend: device memory is host memory behind
// handles (mapped outside the Go heap, at the address Buffer.Addr reports;
// HostDevice.Bytes of a buffer is valid until it is freed), each stream is a
// goroutine working through a FIFO queue, events are real. Kernels with a Go
// twin in Program.Host run it; every other extern "C" kernel of Program.Source
// runs in the emulator (see below). It can emulate a card of a given size
// (WithCapacity), model the time transfers and kernels take (WithTiming), run
// in virtual time for trace simulations (WithVirtualClock: operations run as
// they are queued and are placed on a virtual timeline that keeps stream
// order, event waits and shared copy links), keep accounts without bytes
// (WithoutData), and inject failures (WithAllocFault, WithCopyFault,
// WithAsyncCopyFault).
//
// Options come in three kinds: Option for Open, HostOption for NewHost, and
// SharedOption (WithCapacity, WithLogger, WithAllocFault, WithCacheDir),
// which is both. An option of one backend handed to the other does not
// compile; values are checked by the constructor (ErrInvalidValue).
//
// # The emulator
//
// The host backend runs a program's CUDA C itself. Load compiles the source
// with the host's C++ compiler ($CXX, else g++, else c++; C++17, -O2) under
// emulator.h, a header that defines CUDA's qualifiers, built-in variables,
// barriers, warp shuffles and votes (a warp is 32 threads), atomics, bit and
// math intrinsics, and rt_dynamic_shared() (up to 48 KiB a launch, as a GPU
// gives without opting in; it starts as all ones bytes, NaN as floats, so a
// kernel that reads it unwritten shows it). The shared object is cached on
// disk (rotary/cuda/emulator under os.UserCacheDir, or WithCacheDir), keyed by
// the header, the source, the compiler's version and the flags; a process
// compiles a program once however many devices load it. Kernels are found by
// reading the source, so each extern "C" __global__ entry point is written out
// (a macro that declares kernels fails Load with ErrInvalidValue); templates
// are reached through such entry points. For each kernel the header's
// templates generate a trampoline that unpacks a cuLaunchKernel-style
// parameter array and reports each parameter's size and kind, so Launch checks
// every Arg against the real parameter (a wrong size is ErrInvalidValue naming
// the argument). A compile failure is a *CompileError with the compiler's log,
// lines named after the program; without cgo or a C++ compiler Load fails with
// ErrNoEmulator (a program that also has Go twins loads, and only its emulated
// kernels fail). The environment variable ROTARY_EMU_CXXFLAGS adds compiler
// flags, e.g. "-fsanitize=alignment,shift,bounds
// -fsanitize-undefined-trap-on-error", which makes undefined behaviour (a
// misaligned load: silent on x86, a fault on a GPU) fail the launch, or "-O0
// -g" to step through a kernel in a debugger.
//
// Each CUDA thread runs as a fiber with its own 64 KiB stack above a guard
// page; a block's fibers run on one OS thread, which switches between them (a
// hand-written switch of the callee-saved registers on x86-64, tens of
// nanoseconds; glibc's ucontext elsewhere, or with -DRT_EMU_UCONTEXT, which
// costs a system call per switch: BenchmarkEmulatorSwitch) at every
// __syncthreads and warp operation. A warp operation completes when every lane
// its mask names has arrived; a barrier when every thread that has not exited
// has (threads that returned no longer count, as on the hardware). __shared__
// variables are static storage per OS thread, valid because a block runs to
// completion before its thread starts the next. The blocks of a grid are
// shared out between worker threads (WithEmulatorWorkers; default GOMAXPROCS
// up to 8), and a launch is complete when its grid is. WithSchedule sets the
// order in which a block's runnable threads are resumed: forward, reverse or
// seeded random. Run kernel tests under several: code missing a __syncthreads
// or a __syncwarp is often right in one order and wrong in another (package
// cudatest runs a test under each, and on a GPU when there is one).
//
// The emulator fails a launch with ErrLaunchFailed and a message naming the
// file, line, thread and block for: __trap(), a failed assert, threads
// waiting at different __syncthreads, a warp operation whose mask leaves out
// the caller, names a lane that has exited or does not exist, or whose lanes
// wait at different operations, a shuffle reading a lane outside the mask,
// and a deadlock (no thread can run). On x86-64 Linux it also turns a
// thread's hardware fault into a failed launch, as a GPU reports an illegal
// address, naming the thread, the address and the code's offset for
// addr2line: every buffer ends at an inaccessible guard page, so reading or
// writing past its end (beyond the 256-byte rounding) faults at once; so do a
// stack overflow (each thread has 64 KiB) and an integer division by zero.
// A wild pointer into other memory is not caught: build with
// ROTARY_EMU_CXXFLAGS=-fsanitize=address and run the test binary with
// LD_PRELOAD=$(g++ -print-file-name=libasan.so) to check the kernels' own
// memory (their stacks, shared memory); device buffers are mapped memory,
// which only the guard pages watch.
//
// What the emulator cannot show: memory ordering and races between blocks
// (blocks run concurrently on a few threads, not in the GPU's order), the
// lockstep of a warp (lanes of a warp run one after another; __activemask
// is every lane not exited), timing and occupancy, tensor cores, cp.async
// and cooperative groups, and inline PTX (keep it under #ifdef __CUDA_ARCH__
// with a C fallback, as the Prelude does). Arithmetic is the CPU's: the fast
// intrinsics (__expf, __fdividef, ...) are exact and nothing is contracted
// into FMAs, so compare with the GPU under tolerances. Stale __shared__
// values left by an earlier block are whatever that block wrote, not the
// GPU's.
//
// # Graphs
//
// A stream captures its work into a Graph between Stream.BeginCapture and
// Stream.EndCapture: copies, memsets, launches (Go twins and emulated
// kernels alike on the host backend), and event records and waits, checked
// as they are queued and not run. Graph.Instantiate makes a GraphExec,
// which GraphExec.Launch replays on any stream of the device, and whose
// launches' arguments GraphExec.SetKernelArgs replaces, numbered in capture
// order. On a GPU these are the driver's graphs (cuStreamBeginCapture in
// global mode, cuGraphInstantiateWithFlags, cuGraphLaunch,
// cuGraphExecKernelNodeSetParams on nodes found with cuGraphGetNodes); a
// driver without them fails with ErrNotSupported. The host backend records
// each call and queues it again at every replay, running every check again,
// so a graph whose memory was freed fails to launch (on a GPU too: the
// package checks its buffers first). While a stream captures, its Query
// and Synchronize, which would wait for work that is not going to run, fail
// with ErrCapture, as do a copy between the device and pageable host memory,
// which a replay would read or write long after the call, and what a GPU
// forbids on any thread during a capture in global mode: allocating,
// freeing, registering and synchronizing the device. Under
// WithVirtualClock a graph's launch costs the host one call, however many
// operations it replays.
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
