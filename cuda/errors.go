package cuda

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNoDriver means the CUDA driver library could not be loaded or
	// initialised (or the binary was built without cgo).
	ErrNoDriver = errors.New("cuda: no CUDA driver")
	// ErrNoNVRTC means the NVRTC library could not be loaded, so kernels
	// cannot be compiled.
	ErrNoNVRTC = errors.New("cuda: no NVRTC library")
	// ErrNoDevice means there is no CUDA device with the requested ordinal.
	ErrNoDevice = errors.New("cuda: no such device")
	// ErrOutOfMemory means an allocation did not fit.
	ErrOutOfMemory = errors.New("cuda: out of memory")
	// ErrInvalidValue means an argument out of range: a size, an offset, a
	// copy past the end of a buffer, a flag.
	ErrInvalidValue = errors.New("cuda: invalid value")
	// ErrInvalidHandle means a freed or unknown buffer, or a handle from
	// another device or backend.
	ErrInvalidHandle = errors.New("cuda: invalid handle")
	// ErrClosed means use of a closed device, stream, event or module.
	ErrClosed = errors.New("cuda: use of closed object")
	// ErrNotReady means an event has not completed yet.
	ErrNotReady = errors.New("cuda: not ready")
	// ErrNotFound means a kernel name that the module does not have.
	ErrNotFound = errors.New("cuda: not found")
	// ErrAlreadyRegistered means host memory that overlaps a registration.
	ErrAlreadyRegistered = errors.New("cuda: host memory already registered")
	// ErrNotRegistered means host memory that is not registered.
	ErrNotRegistered = errors.New("cuda: host memory not registered")
	// ErrLaunchFailed means a kernel failed while running (an illegal
	// address, a trap, a host kernel's error or panic).
	ErrLaunchFailed = errors.New("cuda: kernel launch failed")
	// ErrCompile means NVRTC, or the emulator's C++ compiler, rejected a
	// program; the error is a *CompileError.
	ErrCompile = errors.New("cuda: compilation failed")
	// ErrNoEmulator means the host backend cannot run CUDA C: the binary was
	// built without cgo, or there is no C++ compiler.
	ErrNoEmulator = errors.New("cuda: no kernel emulator")
	// ErrNotSupported means the driver lacks a function or a feature (an
	// older driver without CUDA graphs, say).
	ErrNotSupported = errors.New("cuda: not supported")
	// ErrCapture means misuse of stream capture: an operation that cannot be
	// captured or may not run while a stream captures (Query, Synchronize), a
	// capture begun twice or ended without a beginning, or a capture the
	// driver invalidated.
	ErrCapture = errors.New("cuda: stream capture")
)

// Result is a CUDA driver result code (CUresult).
type Result int

// The result codes this package reacts to; see cuda.h for the rest.
const (
	resultSuccess             Result = 0
	resultInvalidValue        Result = 1
	resultOutOfMemory         Result = 2
	resultNotInitialized      Result = 3
	resultDeinitialized       Result = 4
	resultStubLibrary         Result = 34
	resultNoDevice            Result = 100
	resultInvalidDevice       Result = 101
	resultInvalidImage        Result = 200
	resultInvalidContext      Result = 201
	resultNoBinaryForGPU      Result = 209
	resultUnsupportedPTX      Result = 222
	resultInvalidSource       Result = 300
	resultInvalidHandle       Result = 400
	resultNotFound            Result = 500
	resultNotReady            Result = 600
	resultIllegalAddress      Result = 700
	resultLaunchOutOfRes      Result = 701
	resultLaunchTimeout       Result = 702
	resultAlreadyRegistered   Result = 712
	resultNotRegistered       Result = 713
	resultHardwareStackError  Result = 714
	resultIllegalInstruction  Result = 715
	resultMisalignedAddress   Result = 716
	resultInvalidAddressSpace Result = 717
	resultLaunchFailed        Result = 719
	resultNotSupported        Result = 801
	resultCaptureUnsupported  Result = 900
	resultCaptureInvalidated  Result = 901
	resultCaptureMerge        Result = 902
	resultCaptureUnmatched    Result = 903
	resultCaptureUnjoined     Result = 904
	resultCaptureIsolation    Result = 905
	resultCaptureImplicit     Result = 906
	resultCapturedEvent       Result = 907
	resultCaptureWrongThread  Result = 908
	resultUnknown             Result = 999
)

// resultNames are cuGetErrorName's answers for the codes above, used when the
// driver is not there to ask.
var resultNames = map[Result]string{
	resultSuccess:             "CUDA_SUCCESS",
	resultInvalidValue:        "CUDA_ERROR_INVALID_VALUE",
	resultOutOfMemory:         "CUDA_ERROR_OUT_OF_MEMORY",
	resultNotInitialized:      "CUDA_ERROR_NOT_INITIALIZED",
	resultDeinitialized:       "CUDA_ERROR_DEINITIALIZED",
	resultStubLibrary:         "CUDA_ERROR_STUB_LIBRARY",
	resultNoDevice:            "CUDA_ERROR_NO_DEVICE",
	resultInvalidDevice:       "CUDA_ERROR_INVALID_DEVICE",
	resultInvalidImage:        "CUDA_ERROR_INVALID_IMAGE",
	resultInvalidContext:      "CUDA_ERROR_INVALID_CONTEXT",
	resultNoBinaryForGPU:      "CUDA_ERROR_NO_BINARY_FOR_GPU",
	resultUnsupportedPTX:      "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
	resultInvalidSource:       "CUDA_ERROR_INVALID_SOURCE",
	resultInvalidHandle:       "CUDA_ERROR_INVALID_HANDLE",
	resultNotFound:            "CUDA_ERROR_NOT_FOUND",
	resultNotReady:            "CUDA_ERROR_NOT_READY",
	resultIllegalAddress:      "CUDA_ERROR_ILLEGAL_ADDRESS",
	resultLaunchOutOfRes:      "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
	resultLaunchTimeout:       "CUDA_ERROR_LAUNCH_TIMEOUT",
	resultAlreadyRegistered:   "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
	resultNotRegistered:       "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
	resultHardwareStackError:  "CUDA_ERROR_HARDWARE_STACK_ERROR",
	resultIllegalInstruction:  "CUDA_ERROR_ILLEGAL_INSTRUCTION",
	resultMisalignedAddress:   "CUDA_ERROR_MISALIGNED_ADDRESS",
	resultInvalidAddressSpace: "CUDA_ERROR_INVALID_ADDRESS_SPACE",
	resultLaunchFailed:        "CUDA_ERROR_LAUNCH_FAILED",
	resultNotSupported:        "CUDA_ERROR_NOT_SUPPORTED",
	resultCaptureUnsupported:  "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
	resultCaptureInvalidated:  "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
	resultCaptureMerge:        "CUDA_ERROR_STREAM_CAPTURE_MERGE",
	resultCaptureUnmatched:    "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED",
	resultCaptureUnjoined:     "CUDA_ERROR_STREAM_CAPTURE_UNJOINED",
	resultCaptureIsolation:    "CUDA_ERROR_STREAM_CAPTURE_ISOLATION",
	resultCaptureImplicit:     "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
	resultCapturedEvent:       "CUDA_ERROR_CAPTURED_EVENT",
	resultCaptureWrongThread:  "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
	resultUnknown:             "CUDA_ERROR_UNKNOWN",
}

// String is the code's name, e.g. "CUDA_ERROR_OUT_OF_MEMORY".
func (r Result) String() string {
	if name, ok := resultNames[r]; ok {
		return name
	}
	return fmt.Sprintf("CUresult(%d)", int(r))
}

// sentinel is the package error a result code means, or nil.
func (r Result) sentinel() error {
	switch r {
	case resultOutOfMemory:
		return ErrOutOfMemory
	case resultInvalidValue:
		return ErrInvalidValue
	case resultNotInitialized, resultDeinitialized, resultStubLibrary:
		return ErrNoDriver
	case resultNoDevice, resultInvalidDevice:
		return ErrNoDevice
	case resultInvalidHandle:
		return ErrInvalidHandle
	case resultNotFound:
		return ErrNotFound
	case resultNotReady:
		return ErrNotReady
	case resultAlreadyRegistered:
		return ErrAlreadyRegistered
	case resultNotRegistered:
		return ErrNotRegistered
	case resultNotSupported:
		return ErrNotSupported
	case resultCaptureUnsupported, resultCaptureInvalidated, resultCaptureMerge, resultCaptureUnmatched,
		resultCaptureUnjoined, resultCaptureIsolation, resultCaptureImplicit, resultCapturedEvent,
		resultCaptureWrongThread:
		return ErrCapture
	case resultIllegalAddress, resultLaunchOutOfRes, resultLaunchTimeout,
		resultHardwareStackError, resultIllegalInstruction, resultMisalignedAddress,
		resultInvalidAddressSpace, resultLaunchFailed:
		return ErrLaunchFailed
	}
	return nil
}

// Error is a failed CUDA driver call. errors.Is matches it against the
// package's sentinels by code: CUDA_ERROR_OUT_OF_MEMORY is ErrOutOfMemory, and
// so on.
type Error struct {
	// Call is the driver function that failed, e.g. "cuMemAlloc_v2".
	Call string
	// Code is its result.
	Code Result
	// Name is the code's name from cuGetErrorName.
	Name string
	// Message is cuGetErrorString's description, when the driver gave one.
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cuda: %s: %s (%d)", e.Call, e.Name, int(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is reports whether target is the sentinel that e's code means.
func (e *Error) Is(target error) bool {
	s := e.Code.sentinel()
	return s != nil && s == target
}

// resultError turns a driver result into an error, nil for CUDA_SUCCESS. name
// and message come from the driver when it is loaded; empty ones are filled
// from the package's table.
func resultError(call string, code Result, name, message string) error {
	if code == resultSuccess {
		return nil
	}
	if name == "" {
		name = code.String()
	}
	return &Error{Call: call, Code: code, Name: name, Message: message}
}

// CompileError is NVRTC's (or the emulator's C++ compiler's) rejection of a
// program, with the compiler's log.
type CompileError struct {
	Program string // Program.Name
	Arch    string // the target, e.g. "sm_90", or "host" for the emulator
	Log     string // the compiler's log
	Err     error  // the compiler's failure
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("cuda: compile %s for %s: %v\n%s", e.Program, e.Arch, e.Err, strings.TrimSpace(e.Log))
}

// Unwrap returns the NVRTC failure.
func (e *CompileError) Unwrap() error { return e.Err }

// Is makes every CompileError match ErrCompile.
func (e *CompileError) Is(target error) bool { return target == ErrCompile }

// checkRange checks that [off, off+n) lies within [0, size).
func checkRange(size, off, n int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("range [%d, %d+%d) outside %d bytes: %w", off, off, n, size, ErrInvalidValue)
	}
	return nil
}
