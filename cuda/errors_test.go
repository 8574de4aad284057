package cuda

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResultErrors(t *testing.T) {
	assert.NoError(t, resultError("cuInit", resultSuccess, "", ""))
	for code, sentinel := range map[Result]error{
		resultOutOfMemory:        ErrOutOfMemory,
		resultInvalidValue:       ErrInvalidValue,
		resultStubLibrary:        ErrNoDriver,
		resultNotInitialized:     ErrNoDriver,
		resultNoDevice:           ErrNoDevice,
		resultInvalidDevice:      ErrNoDevice,
		resultInvalidHandle:      ErrInvalidHandle,
		resultNotFound:           ErrNotFound,
		resultNotReady:           ErrNotReady,
		resultAlreadyRegistered:  ErrAlreadyRegistered,
		resultNotRegistered:      ErrNotRegistered,
		resultIllegalAddress:     ErrLaunchFailed,
		resultLaunchFailed:       ErrLaunchFailed,
		resultNotSupported:       ErrNotSupported,
		resultCaptureUnsupported: ErrCapture,
		resultCaptureInvalidated: ErrCapture,
		resultCaptureIsolation:   ErrCapture,
	} {
		err := fmt.Errorf("wrapped: %w", resultError("cuCall", code, "", ""))
		assert.ErrorIs(t, err, sentinel, code.String())
		assert.NotErrorIs(t, err, ErrClosed)
	}
	err := resultError("cuCtxSetCurrent", resultInvalidContext, "", "")
	for _, s := range []error{ErrOutOfMemory, ErrInvalidValue, ErrInvalidHandle, ErrLaunchFailed, ErrNoDriver} {
		assert.NotErrorIs(t, err, s, "CUDA_ERROR_INVALID_CONTEXT means none of them")
	}
	assert.EqualError(t, err, "cuda: cuCtxSetCurrent: CUDA_ERROR_INVALID_CONTEXT (201)")

	err = resultError("cuMemAlloc_v2", resultOutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory")
	assert.EqualError(t, err, "cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory")
	var rerr *Error
	require.ErrorAs(t, err, &rerr)
	assert.Equal(t, Error{Call: "cuMemAlloc_v2", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY", Message: "out of memory"}, *rerr)
	assert.Equal(t, "CUresult(12345)", Result(12345).String())
	assert.EqualError(t, resultError("cuX", 12345, "", ""), "cuda: cuX: CUresult(12345) (12345)")
}

func TestCompileError(t *testing.T) {
	nvrtc := errors.New("cuda: nvrtcCompileProgram: NVRTC_ERROR_COMPILATION (6)")
	err := fmt.Errorf("load: %w", &CompileError{Program: "k.cu", Arch: "sm_90", Log: "k.cu(3): error: identifier \"x\" is undefined\n\n", Err: nvrtc})
	assert.ErrorIs(t, err, ErrCompile)
	assert.ErrorIs(t, err, nvrtc)
	assert.EqualError(t, err, "load: cuda: compile k.cu for sm_90: cuda: nvrtcCompileProgram: NVRTC_ERROR_COMPILATION (6)\n"+
		"k.cu(3): error: identifier \"x\" is undefined")
}

func TestCheckRange(t *testing.T) {
	for _, c := range []struct {
		size, off, n int64
		ok           bool
	}{
		{10, 0, 10, true},
		{10, 10, 0, true},
		{10, 0, 0, true},
		{10, 5, 6, false},
		{10, 11, 0, false},
		{10, -1, 1, false},
		{10, 1, -1, false},
		{10, 1, 1<<63 - 1, false}, // off+n would overflow
	} {
		err := checkRange(c.size, c.off, c.n)
		if c.ok {
			assert.NoError(t, err, "%+v", c)
		} else {
			assert.ErrorIs(t, err, ErrInvalidValue, "%+v", c)
		}
	}
}

func TestBackendString(t *testing.T) {
	assert.Equal(t, "host", KindHost.String())
	assert.Equal(t, "cuda", KindCUDA.String())
	assert.Equal(t, "Kind(7)", Kind(7).String())
}
