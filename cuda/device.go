package cuda

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Device is one GPU, or the host backend standing in for one. All methods are
// safe for concurrent use. Work on a Stream is asynchronous: the call returns
// once the work is queued, and host memory handed to an asynchronous copy must
// stay valid and unmodified until the copy has completed (an Event recorded after
// it, or Stream.Synchronize, says when).
type Device interface {
	// Info describes the device.
	Info() Info
	// MemInfo reports free and total device memory in bytes. With WithCapacity,
	// total is the capacity and free what is left of it.
	MemInfo() (free, total int64, err error)

	// Alloc allocates size bytes of device memory; its contents are undefined.
	// Over the capacity it fails with an error matching ErrOutOfMemory.
	Alloc(size int64) (Buffer, error)
	// Free releases a buffer returned by Alloc (not a slice of it).
	Free(b Buffer) error

	// AllocHost allocates size bytes of page-locked host memory, which
	// asynchronous copies move at full bus speed.
	AllocHost(size int64, flags HostAllocFlag) (HostBuffer, error)
	// FreeHost releases memory returned by AllocHost. Its bytes must not be
	// used afterwards.
	FreeHost(h HostBuffer) error
	// Register page-locks existing host memory (a Go slice, or a file mapping
	// with RegisterReadOnly) until Unregister. The memory must outlive the
	// registration.
	Register(mem []byte, flags RegisterFlag) (HostBuffer, error)
	// Unregister undoes Register.
	Unregister(h HostBuffer) error

	// NewStream creates a stream that does not synchronize with other streams.
	NewStream() (Stream, error)
	// NewEvent creates an event.
	NewEvent(flags EventFlag) (Event, error)
	// Load compiles a program for this device (or finds it in the kernel
	// cache) and loads it. On the host backend, it binds the program's Go
	// kernels and compiles the rest for the emulator (HostDevice.Load).
	Load(ctx context.Context, p *Program) (Module, error)

	// Synchronize waits for all work queued on the device's streams.
	Synchronize(ctx context.Context) error
	// Stats reports what the device holds now.
	Stats() Stats
	// Calls counts the driver calls made on the device since it opened.
	Calls() Calls
	// Close waits for queued work, then frees everything the device allocated,
	// registered, created or loaded. Further calls fail with ErrClosed.
	Close() error
}

// Stream is an ordered queue of work on a device. Operations on one stream run
// in the order they were queued; operations on different streams may overlap.
// Arguments are checked when an operation is queued (a bad handle or range is
// returned at once); a failure while the work runs is reported by Synchronize,
// Query and the events recorded after it.
type Stream interface {
	// CopyHtoD queues a copy of src to dst at byte offset dstOff.
	CopyHtoD(dst Buffer, dstOff int64, src []byte) error
	// CopyDtoH queues a copy of len(dst) bytes from src at byte offset srcOff.
	CopyDtoH(dst []byte, src Buffer, srcOff int64) error
	// CopyDtoD queues a copy of n bytes between device buffers.
	CopyDtoD(dst Buffer, dstOff int64, src Buffer, srcOff, n int64) error
	// Memset queues setting n bytes of dst from byte offset off to value.
	Memset(dst Buffer, off, n int64, value byte) error
	// Launch queues a kernel.
	Launch(k Kernel, cfg LaunchConfig, args ...Arg) error
	// Record makes e complete when the work queued on this stream so far has.
	Record(e Event) error
	// Wait makes work queued on this stream from now on wait for the most recent
	// Record of e (no wait if e was never recorded).
	Wait(e Event) error
	// Query reports whether all queued work has completed.
	Query() (bool, error)
	// Synchronize waits for all queued work, or for ctx.
	Synchronize(ctx context.Context) error
	// BeginCapture starts capturing the stream's work into a Graph: what is
	// queued from now on until EndCapture is checked and recorded, not run.
	// While a stream captures, its Query and Synchronize fail with
	// ErrCapture (they would wait for work that is not going to run), and so
	// do the device's Synchronize, Alloc, Free, AllocHost, FreeHost,
	// Register and Unregister, which a GPU forbids on every thread during a
	// capture in global mode (the mode this package uses: see
	// cuda_graph.go).
	BeginCapture() error
	// EndCapture ends the capture and returns the graph of the work queued
	// since BeginCapture.
	EndCapture() (Graph, error)
	// Close releases the stream once its queued work completes; further
	// operations on it fail with ErrClosed. A capture under way is dropped.
	Close() error
}

// Event marks a point in a stream's work.
type Event interface {
	// Query reports whether the most recent Record has completed (true for an
	// event never recorded).
	Query() (bool, error)
	// Synchronize waits for the most recent Record to complete, or for ctx.
	Synchronize(ctx context.Context) error
	// Since returns the time between start and this event, both completed and
	// created without EventDisableTiming.
	Since(start Event) (time.Duration, error)
	// Close releases the event.
	Close() error
}

// Module is a loaded Program.
type Module interface {
	// Kernel looks a kernel up by name (the extern "C" name in the source).
	Kernel(name string) (Kernel, error)
	// Close unloads the module; its kernels can no longer be launched.
	Close() error
}

// Kernel is a function of a loaded Module, launched with Stream.Launch.
type Kernel interface {
	Name() string
}

// Program is the source of kernels, written once for both backends: CUDA C
// compiled by NVRTC on a GPU and by the emulator on the host, where Go
// functions under the same names, when given, run instead.
// Kernels in Source must be declared extern "C" so their names survive
// compilation. Source usually comes from a //go:embed'ed .cu file.
type Program struct {
	// Name identifies the program in logs, compiler messages and the cache,
	// e.g. "gemv.cu".
	Name string
	// Source is the CUDA C source.
	Source string
	// Options are extra NVRTC options, e.g. "--use_fast_math"; the target
	// architecture is added by the device.
	Options []string
	// Host holds Go twins of kernels, by name, which the host backend runs
	// instead of emulating the CUDA C (optional).
	Host map[string]HostKernel
}

// Kind says which implementation a Device is: the host backend or a GPU.
type Kind int

const (
	// KindHost is the CPU stand-in created by NewHost.
	KindHost Kind = iota + 1
	// KindCUDA is an NVIDIA GPU opened by Open.
	KindCUDA
)

func (b Kind) String() string {
	switch b {
	case KindHost:
		return "host"
	case KindCUDA:
		return "cuda"
	}
	return fmt.Sprintf("Kind(%d)", int(b))
}

// Info describes a device.
type Info struct {
	Kind Kind
	// Name is the GPU's name, or "host".
	Name string
	// Ordinal is the CUDA device number (0 on the host backend).
	Ordinal int
	// ComputeMajor and ComputeMinor are the compute capability (0.0 on the
	// host backend).
	ComputeMajor, ComputeMinor int
	// TotalMemory is the device memory in bytes (the capacity, when set).
	TotalMemory int64
	// DriverVersion is the CUDA driver's version as 1000*major + 10*minor
	// (e.g. 13000), 0 on the host backend.
	DriverVersion int
}

// Stats is what a device holds at one moment: after Close, all zero.
type Stats struct {
	DeviceBytes     int64 // device memory allocated by Alloc
	DeviceBuffers   int
	PinnedBytes     int64 // host memory allocated by AllocHost
	PinnedBuffers   int
	RegisteredBytes int64 // host memory registered by Register
	Registrations   int
	Streams         int
	Events          int
	Modules         int
	Graphs          int // captured graphs not closed
	GraphExecs      int // instantiated graphs not closed
}

// Buffer is a handle to device memory: an allocation returned by
// Device.Alloc, or a slice of one. It is a small value, comparable, and stays
// safe to use after Free: operations on a freed buffer fail with
// ErrInvalidHandle.
type Buffer struct {
	addr uint64 // device address of the first byte
	size int64
	id   uint64 // identifies the allocation; never reused
}

// Addr is the buffer's device address (a CUdeviceptr on CUDA, a synthetic
// address on the host backend), for kernels that take tables of pointers.
func (b Buffer) Addr() uint64 { return b.addr }

// Size is the buffer's length in bytes.
func (b Buffer) Size() int64 { return b.size }

// IsZero reports whether b is the zero Buffer, which refers to nothing.
func (b Buffer) IsZero() bool { return b.id == 0 }

// Slice returns the n bytes of b from byte offset off, e.g. one slot of a
// plane of slots.
func (b Buffer) Slice(off, n int64) (Buffer, error) {
	if err := checkRange(b.size, off, n); err != nil {
		return Buffer{}, fmt.Errorf("cuda: Buffer.Slice: %w", err)
	}
	return Buffer{addr: b.addr + uint64(off), size: n, id: b.id}, nil
}

func (b Buffer) String() string {
	return fmt.Sprintf("Buffer(%#x, %d bytes)", b.addr, b.size)
}

// HostBuffer is page-locked host memory: allocated by Device.AllocHost or
// registered by Device.Register.
type HostBuffer struct {
	mem     []byte
	id      uint64
	devAddr uint64 // device address of mem, when mapped into the device
}

// Bytes is the memory itself.
func (h HostBuffer) Bytes() []byte { return h.mem }

// Len is len(h.Bytes()).
func (h HostBuffer) Len() int { return len(h.mem) }

// Addr is the device address of the memory, for kernels that take tables of
// pointers, when it was allocated with HostAllocDeviceMap or registered with
// RegisterDeviceMap (cuMemHostGetDevicePointer's answer on a GPU; on the host
// backend, its own address); 0 otherwise. HostPtr passes it as an argument.
func (h HostBuffer) Addr() uint64 { return h.devAddr }

// HostAllocFlag modifies Device.AllocHost (CU_MEMHOSTALLOC_*).
type HostAllocFlag uint32

const (
	// HostAllocPortable makes the memory page-locked for every context.
	HostAllocPortable HostAllocFlag = 0x01
	// HostAllocDeviceMap maps the memory into the device address space, so
	// kernels can read it through HostPtr arguments.
	HostAllocDeviceMap HostAllocFlag = 0x02
	// HostAllocWriteCombined makes host writes and device reads faster and
	// host reads very slow.
	HostAllocWriteCombined HostAllocFlag = 0x04
)

func (f HostAllocFlag) check() error {
	if f&^(HostAllocPortable|HostAllocDeviceMap|HostAllocWriteCombined) != 0 {
		return fmt.Errorf("cuda: AllocHost: flags %#x: %w", uint32(f), ErrInvalidValue)
	}
	return nil
}

// RegisterFlag modifies Device.Register (CU_MEMHOSTREGISTER_*).
type RegisterFlag uint32

const (
	// RegisterPortable makes the memory page-locked for every context.
	RegisterPortable RegisterFlag = 0x01
	// RegisterDeviceMap maps the memory into the device address space.
	RegisterDeviceMap RegisterFlag = 0x02
	// RegisterReadOnly is required for memory the process cannot write, such
	// as a read-only file mapping; the device only reads it.
	RegisterReadOnly RegisterFlag = 0x08
)

func (f RegisterFlag) check() error {
	if f&^(RegisterPortable|RegisterDeviceMap|RegisterReadOnly) != 0 {
		return fmt.Errorf("cuda: Register: flags %#x: %w", uint32(f), ErrInvalidValue)
	}
	return nil
}

// EventFlag modifies Device.NewEvent (CU_EVENT_*).
type EventFlag uint32

const (
	// EventBlockingSync makes Synchronize sleep instead of spinning.
	EventBlockingSync EventFlag = 0x01
	// EventDisableTiming makes the event cheaper; Since then fails.
	EventDisableTiming EventFlag = 0x02
)

func (f EventFlag) check() error {
	if f&^(EventBlockingSync|EventDisableTiming) != 0 {
		return fmt.Errorf("cuda: NewEvent: flags %#x: %w", uint32(f), ErrInvalidValue)
	}
	return nil
}

// Dim3 is a grid or block shape. A zero Y or Z means 1.
type Dim3 struct{ X, Y, Z uint32 }

// LaunchConfig is the shape of a kernel launch.
type LaunchConfig struct {
	Grid, Block Dim3
	// SharedMem is the dynamic shared memory per block in bytes.
	SharedMem uint32
}

// argKind says what an Arg holds.
type argKind uint8

const (
	argInt32 argKind = iota + 1
	argUint32
	argInt64
	argUint64
	argFloat32
	argFloat64
	argBuffer
	argHost
)

// Arg is one kernel argument: a device pointer (Ptr, PtrAt, HostPtr) or a
// scalar (I32, U32, I64, U64, F32, F64). The constructors' order and types
// must match the kernel's parameters, as in CUDA C.
type Arg struct {
	kind argKind
	bits uint64 // scalar value, as the kernel's parameter bits
	buf  Buffer // argBuffer: the buffer, with off
	host HostBuffer
	off  int64
}

// Ptr passes the device address of b.
func Ptr(b Buffer) Arg { return Arg{kind: argBuffer, buf: b} }

// PtrAt passes the device address of byte off of b.
func PtrAt(b Buffer, off int64) Arg { return Arg{kind: argBuffer, buf: b, off: off} }

// HostPtr passes the device address of byte off of host memory allocated with
// HostAllocDeviceMap or registered with RegisterDeviceMap.
func HostPtr(h HostBuffer, off int64) Arg { return Arg{kind: argHost, host: h, off: off} }

// I32 passes an int.
func I32(v int32) Arg { return Arg{kind: argInt32, bits: uint64(uint32(v))} }

// U32 passes an unsigned int.
func U32(v uint32) Arg { return Arg{kind: argUint32, bits: uint64(v)} }

// I64 passes a long long.
func I64(v int64) Arg { return Arg{kind: argInt64, bits: uint64(v)} }

// U64 passes an unsigned long long (or a size_t).
func U64(v uint64) Arg { return Arg{kind: argUint64, bits: v} }

// F32 passes a float.
func F32(v float32) Arg { return Arg{kind: argFloat32, bits: uint64(math.Float32bits(v))} }

// F64 passes a double.
func F64(v float64) Arg { return Arg{kind: argFloat64, bits: math.Float64bits(v)} }

func (k argKind) String() string {
	switch k {
	case argInt32:
		return "I32"
	case argUint32:
		return "U32"
	case argInt64:
		return "I64"
	case argUint64:
		return "U64"
	case argFloat32:
		return "F32"
	case argFloat64:
		return "F64"
	case argBuffer:
		return "Ptr"
	case argHost:
		return "HostPtr"
	}
	return "invalid"
}
