//go:build cgo && linux

package cuda

import (
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	for i, names := range driverOptionalSymbols {
		assert.NotEmpty(t, names, "optional driver symbol %d", i)
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

// TestCgoPathOnFakeLibraries compiles stand-ins for libcuda.so.1 and
// libnvrtc.so (testdata/fakecuda) and runs the tests that want a GPU again in
// a child process that loads them. The trampolines, the symbol table and its
// fallbacks to older names, the context made current on every thread,
// argument packing and NVRTC's calls then all run through cgo as on a GPU;
// only the GPU itself is missing.
func TestCgoPathOnFakeLibraries(t *testing.T) {
	if os.Getenv("ROTARY_FAKE_LIBS") != "" {
		t.Skip("this is the child, running on the fake libraries")
	}
	if _, err := gpuProbe(); err == nil {
		t.Skip("a GPU is here: the tests ran on it")
	}
	cc, err := exec.LookPath(cmp.Or(os.Getenv("CC"), "cc"))
	if err != nil {
		t.Skipf("no C compiler to build the fake libraries: %v", err)
	}
	src := filepath.Join("testdata", "fakecuda")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no %s (the test binary runs outside its package): %v", src, err)
	}
	dir := t.TempDir()
	for lib, file := range map[string]string{"libcuda.so.1": "libcuda.c", "libnvrtc.so": "libnvrtc.c"} {
		out, err := exec.Command(cc, "-shared", "-fPIC", "-o", filepath.Join(dir, lib), filepath.Join(src, file), "-lpthread").CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	gpuTests := []string{"TestCopies", "TestMisuseIsAnError", "TestHostMemory", "TestRegisterReadOnlyMapping",
		"TestEvents", "TestCapacity", "TestAllocFault", "TestCloseFreesEverything", "TestConcurrentUse", "TestKernels", "TestGraphs", "TestGraphTwinLaunches",
		"TestGPUDriverOutOfMemory", "TestGPUCompileErrorHasTheLog", "TestGPUKernelCacheOnDisk", "TestGPUEventsTimeWork"}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.v", "-test.run", "^("+strings.Join(gpuTests, "|")+")$/^cuda$")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+dir, "ROTARY_FAKE_LIBS=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var notRun []string
	for _, name := range gpuTests {
		if !strings.HasPrefix(name, "TestGPU") {
			name += "/cuda"
		}
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			notRun = append(notRun, name)
		}
	}
	if len(notRun) > 0 {
		t.Errorf("did not pass on the fake libraries: %v\n%s", notRun, out)
	}
}
