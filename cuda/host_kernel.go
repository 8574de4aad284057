package cuda

import (
	"fmt"
	"math"
	"time"
	"unsafe"
)

// HostKernel is a kernel of the host backend: a Go function run on the
// stream's worker with the launch's configuration and arguments. It does the
// whole grid's work in one call. A returned error, or a panic (such as an index
// out of range, or an accessor of HostLaunch used with the wrong argument),
// fails the launch like a device fault: the stream reports an error matching
// ErrLaunchFailed.
type HostKernel func(l *HostLaunch) error

// HostLaunch is one launch of a HostKernel.
type HostLaunch struct {
	// Kernel is the kernel's name.
	Kernel string
	// Config is the launch's shape, as given to Stream.Launch.
	Config LaunchConfig

	args     []Arg
	mem      [][]byte // the bytes behind each pointer argument (nil under WithoutData)
	noData   bool
	duration time.Duration
}

// NumArgs is the number of arguments.
func (l *HostLaunch) NumArgs() int { return len(l.args) }

// Bytes is the memory a pointer argument (Ptr, PtrAt, HostPtr) points to: from
// its address to the end of the buffer it was made from.
func (l *HostLaunch) Bytes(i int) []byte {
	a := l.arg(i, argBuffer, argHost)
	if l.noData && a.kind == argBuffer {
		panic(fmt.Sprintf("cuda: kernel %s: argument %d: device memory has no bytes under WithoutData", l.Kernel, i))
	}
	return l.mem[i]
}

// Int32 is the value of an I32 argument.
func (l *HostLaunch) Int32(i int) int32 { return int32(l.arg(i, argInt32).bits) }

// Uint32 is the value of a U32 argument.
func (l *HostLaunch) Uint32(i int) uint32 { return uint32(l.arg(i, argUint32).bits) }

// Int64 is the value of an I64 argument.
func (l *HostLaunch) Int64(i int) int64 { return int64(l.arg(i, argInt64).bits) }

// Uint64 is the value of a U64 argument.
func (l *HostLaunch) Uint64(i int) uint64 { return l.arg(i, argUint64).bits }

// Float32 is the value of an F32 argument.
func (l *HostLaunch) Float32(i int) float32 {
	return math.Float32frombits(uint32(l.arg(i, argFloat32).bits))
}

// Float64 is the value of an F64 argument.
func (l *HostLaunch) Float64(i int) float64 { return math.Float64frombits(l.arg(i, argFloat64).bits) }

// SetDuration sets the launch's modeled duration on the device. With
// WithVirtualClock it is how far the launch moves its stream's timeline;
// otherwise the stream sleeps until the launch has taken at least d.
func (l *HostLaunch) SetDuration(d time.Duration) {
	if d < 0 {
		panic(fmt.Sprintf("cuda: kernel %s: negative duration %v", l.Kernel, d))
	}
	l.duration = d
}

func (l *HostLaunch) arg(i int, kinds ...argKind) Arg {
	if i < 0 || i >= len(l.args) {
		panic(fmt.Sprintf("cuda: kernel %s: argument %d of %d", l.Kernel, i, len(l.args)))
	}
	a := l.args[i]
	for _, k := range kinds {
		if a.kind == k {
			return a
		}
	}
	panic(fmt.Sprintf("cuda: kernel %s: argument %d is %s, not %s", l.Kernel, i, a.kind, kinds[0]))
}

// Scalar is an element type View can show bytes as.
type Scalar interface {
	~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~float32 | ~float64
}

// View shows b as a slice of T sharing its memory (in the machine's byte
// order), without the trailing bytes that do not fill a T. It panics if b is
// not aligned for T.
func View[T Scalar](b []byte) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b) < size {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%uintptr(unsafe.Alignof(zero)) != 0 {
		panic(fmt.Sprintf("cuda: View: address %p is not aligned for %T", p, zero))
	}
	return unsafe.Slice((*T)(p), len(b)/size)
}

// Bytes shows v as its bytes, sharing its memory (in the machine's byte
// order): View's inverse, for copying values to and from the device.
func Bytes[T Scalar](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*int(unsafe.Sizeof(v[0])))
}
