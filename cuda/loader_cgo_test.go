//go:build cgo && linux

package cuda

import (
	"context"
	"errors"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDlopenFirstListsWhatItTried(t *testing.T) {
	_, _, err := dlopenFirst([]string{"librotary-missing.so.9", "/nonexistent/libcuda.so"}, ErrNoDriver)
	assert.ErrorIs(t, err, ErrNoDriver)
	assert.ErrorContains(t, err, "librotary-missing.so.9")
	assert.ErrorContains(t, err, "/nonexistent/libcuda.so")
}

func TestBindSymbols(t *testing.T) {
	h, name, err := dlopenFirst([]string{"libc.so.6"}, errors.New("no libc"))
	require.NoError(t, err)
	assert.Equal(t, "libc.so.6", name)
	found := map[int]unsafe.Pointer{}
	err = bindSymbols(h, [][]string{{"strlen_v9", "strlen"}, {"rotary_missing_v2", "rotary_missing"}, {"memcpy"}},
		func(i int, p unsafe.Pointer) { found[i] = p })
	assert.EqualError(t, err, "missing symbols: rotary_missing_v2 or rotary_missing")
	assert.Len(t, found, 2)
	assert.NotNil(t, found[0], "an older name stands in for a newer")
	assert.NotNil(t, found[2])
	assert.Error(t, bindSymbols(h, [][]string{nil}, func(int, unsafe.Pointer) {}))
}

// TestSymbolTablesComplete catches a C enum entry without a name in the Go
// table, which would otherwise only show on a GPU machine.
func TestSymbolTablesComplete(t *testing.T) {
	for i, names := range driverSymbols {
		assert.NotEmpty(t, names, "driver symbol %d", i)
	}
	for i, names := range nvrtcSymbols {
		assert.NotEmpty(t, names, "NVRTC symbol %d", i)
	}
}

func TestOpenWithoutDriver(t *testing.T) {
	_, err := Open(context.Background(), 0)
	if err == nil || !errors.Is(err, ErrNoDriver) {
		t.Skipf("a driver is installed here (Open: %v)", err)
	}
	assert.ErrorContains(t, err, "libcuda.so.1")
	assert.ErrorContains(t, err, "libcuda.so:")
	t.Log(err)
}

func TestNVRTCLibraries(t *testing.T) {
	libs := nvrtcLibraries()
	assert.Equal(t, nvrtcNames, libs[:len(nvrtcNames)], "the loader's search path first")
	t.Setenv("CUDA_HOME", t.TempDir())
	assert.Equal(t, libs, nvrtcLibraries(), "directories without NVRTC add nothing")
}
