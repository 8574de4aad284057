package cuda

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests that need a real GPU, driver and NVRTC; they skip without one. The
// conformance tests run on the GPU as well.

func TestGPUDriverOutOfMemory(t *testing.T) {
	d := openGPU(t)
	defer closeDevice(t, d)
	// The capacity is the device's memory, so the ledger lets this through
	// and the driver, which keeps some for itself, refuses it.
	_, err := d.Alloc(d.Info().TotalMemory)
	assert.ErrorIs(t, err, ErrOutOfMemory)
	var rerr *Error
	require.ErrorAs(t, err, &rerr)
	assert.Equal(t, "CUDA_ERROR_OUT_OF_MEMORY", rerr.Name)
	assert.Equal(t, int64(0), d.Stats().DeviceBytes)
}

func TestGPUCompileErrorHasTheLog(t *testing.T) {
	d := openGPU(t)
	defer closeDevice(t, d)
	_, err := d.Load(context.Background(), &Program{Name: "broken.cu", Source: `extern "C" __global__ void k(float *x) { x[0] = undefined_name; }`})
	assert.ErrorIs(t, err, ErrCompile)
	var cerr *CompileError
	require.ErrorAs(t, err, &cerr)
	assert.Contains(t, cerr.Log, "undefined_name")
	assert.Regexp(t, `^(sm|compute)_\d+$`, cerr.Arch)
	t.Log(err)
}

func TestGPUKernelCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for range 2 {
		d := openGPU(t, WithCacheDir(dir))
		m, err := d.Load(ctx, testProgram)
		require.NoError(t, err)
		_, err = m.Kernel("vadd")
		require.NoError(t, err)
		closeDevice(t, d)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.bin"))
	require.NoError(t, err)
	assert.Len(t, files, 1)
	info, err := os.Stat(files[0])
	require.NoError(t, err)
	assert.Greater(t, info.Size(), int64(100), "a compiled image")
}

func TestGPUEventsTimeWork(t *testing.T) {
	d := openGPU(t)
	defer closeDevice(t, d)
	s := mustStream(t, d)
	start, end := mustEvent(t, d), mustEvent(t, d)
	x := mustAlloc(t, d, 64<<20)
	host, err := d.AllocHost(64<<20, 0)
	require.NoError(t, err)
	require.NoError(t, s.Record(start))
	require.NoError(t, s.CopyHtoD(x, 0, host.Bytes()))
	require.NoError(t, s.Record(end))
	require.NoError(t, end.Synchronize(context.Background()))
	took, err := end.Since(start)
	require.NoError(t, err)
	assert.Positive(t, took)
	t.Logf("64 MiB from pinned memory in %v: %.1f GB/s", took, float64(64<<20)/took.Seconds()/1e9)
}
