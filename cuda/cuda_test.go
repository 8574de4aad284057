package cuda

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the CUDA backend's own logic over the fake driver; conformance
// tests cover the rest.

func TestCUDAOpen(t *testing.T) {
	d, drv, _ := openFake(t)
	assert.Equal(t, Info{Kind: KindCUDA, Name: "Fake GPU", ComputeMajor: 9, TotalMemory: 1 << 30, DriverVersion: 13000}, d.Info())
	assert.Equal(t, 1, drv.retained)
	require.NoError(t, d.Close())
	assert.Equal(t, 0, drv.retained, "Close releases the primary context")

	small, _, _ := openFake(t, WithCapacity(256<<20))
	assert.Equal(t, int64(256<<20), small.Info().TotalMemory)
	require.NoError(t, small.Close())
	large, _, _ := openFake(t, WithCapacity(4<<30))
	assert.Equal(t, int64(1<<30), large.Info().TotalMemory, "a capacity beyond the device is the device")
	require.NoError(t, large.Close())

	cfg, err := newCUDAConfig(nil)
	require.NoError(t, err)
	_, err = openDevice(newFakeDriver(), nil, 1, cfg)
	assert.ErrorIs(t, err, ErrNoDevice)
	var rerr *Error
	require.ErrorAs(t, err, &rerr)
	assert.Equal(t, "cuDeviceGet", rerr.Call)
}

func TestCUDADriverErrors(t *testing.T) {
	d, drv, _ := openFake(t)
	defer d.Close()
	drv.fail["cuMemAlloc_v2"] = resultOutOfMemory
	_, err := d.Alloc(1 << 20)
	assert.ErrorIs(t, err, ErrOutOfMemory)
	var rerr *Error
	require.ErrorAs(t, err, &rerr)
	assert.Equal(t, "cuMemAlloc_v2", rerr.Call)
	assert.Equal(t, "CUDA_ERROR_OUT_OF_MEMORY", rerr.Name)
	assert.Equal(t, int64(0), d.Stats().DeviceBytes, "the failed allocation holds no capacity")
	delete(drv.fail, "cuMemAlloc_v2")

	mem := mapAnon(t, os.Getpagesize())
	drv.fail["cuMemHostGetDevicePointer_v2"] = resultNotSupported
	_, err = d.Register(mem, RegisterDeviceMap)
	assert.ErrorContains(t, err, "CUDA_ERROR_NOT_SUPPORTED")
	assert.Empty(t, drv.registered, "a registration that could not be mapped is undone")
	_, err = d.AllocHost(4096, HostAllocDeviceMap)
	assert.ErrorContains(t, err, "CUDA_ERROR_NOT_SUPPORTED")
	assert.Empty(t, drv.pinned, "an allocation that could not be mapped is freed")
	assert.Equal(t, Stats{}, d.Stats())
	delete(drv.fail, "cuMemHostGetDevicePointer_v2")

	s, err := d.NewStream()
	require.NoError(t, err)
	drv.fail["cuStreamSynchronize"] = resultLaunchFailed
	assert.ErrorIs(t, s.Synchronize(context.Background()), ErrLaunchFailed)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drv.fail["cuStreamQuery"] = resultIllegalAddress
	assert.ErrorIs(t, s.Synchronize(ctx), ErrLaunchFailed, "a failure found by the query")
}

func TestCUDALaunchPacksArguments(t *testing.T) {
	d, drv, _ := openFake(t)
	defer d.Close()
	m, err := d.Load(context.Background(), testProgram)
	require.NoError(t, err)
	k, err := m.Kernel("axpy")
	require.NoError(t, err)
	s, err := d.NewStream()
	require.NoError(t, err)
	x, err := d.Alloc(1024)
	require.NoError(t, err)
	host, err := d.AllocHost(4096, HostAllocDeviceMap)
	require.NoError(t, err)

	require.NoError(t, s.Launch(k, LaunchConfig{Grid: Dim3{X: 4}, Block: Dim3{X: 128, Y: 2}, SharedMem: 512},
		Ptr(x), PtrAt(x, 100), HostPtr(host, 10), I32(-7), U32(7), I64(-1), U64(1<<40), F32(1.5), F64(-0.25)))
	require.Len(t, drv.launches, 1)
	l := drv.launches[0]
	assert.Equal(t, "axpy", l.name)
	assert.Equal(t, LaunchConfig{Grid: Dim3{4, 1, 1}, Block: Dim3{128, 2, 1}, SharedMem: 512}, l.cfg)
	assert.Equal(t, []uint64{
		x.Addr(), x.Addr() + 100, uint64(addrOf(host.Bytes())) + 10,
		0xffff_fff9, 7, math.MaxUint64, 1 << 40,
		uint64(math.Float32bits(1.5)), math.Float64bits(-0.25),
	}, l.params)

	many := make([]Arg, maxKernelArgs+1)
	for i := range many {
		many[i] = U32(uint32(i))
	}
	assert.ErrorIs(t, s.Launch(k, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}}, many...), ErrInvalidValue)
	host2, err := NewHost()
	require.NoError(t, err)
	defer host2.Close()
	hk := loadKernel(t, host2, testProgram, "axpy")
	assert.ErrorIs(t, s.Launch(hk, LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 1}}), ErrInvalidHandle, "another backend's kernel")
	assert.Equal(t, uint64(3), d.Calls().Launches, "every launch counted, refused ones too")
}

func TestCUDAEventsSince(t *testing.T) {
	d, _, _ := openFake(t)
	defer d.Close()
	s, err := d.NewStream()
	require.NoError(t, err)
	a, err := d.NewEvent(0)
	require.NoError(t, err)
	b, err := d.NewEvent(0)
	require.NoError(t, err)
	require.NoError(t, s.Record(a))
	require.NoError(t, s.Record(b))
	require.NoError(t, s.Record(b))
	took, err := b.Since(a)
	require.NoError(t, err)
	assert.Equal(t, 3*time.Millisecond, took, "the driver's 3.0 ms")
	other, _, _ := openFake(t)
	defer other.Close()
	e, err := other.NewEvent(0)
	require.NoError(t, err)
	assert.ErrorIs(t, s.Record(e), ErrInvalidHandle)
	_, err = b.Since(e)
	assert.ErrorIs(t, err, ErrInvalidHandle)
}

func TestCUDALoadCompilesAndCaches(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := &Program{Name: "k.cu", Source: testKernelsSource, Options: []string{"--use_fast_math"}}

	d1, _, comp1 := openFake(t, WithCacheDir(dir))
	defer d1.Close()
	_, err := d1.Load(ctx, p)
	require.NoError(t, err)
	_, err = d1.Load(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, 1, comp1.compiles, "the second load comes from memory")
	assert.Equal(t, [][]string{{"--gpu-architecture=sm_90", "--use_fast_math"}}, comp1.options)

	d2, _, comp2 := openFake(t, WithCacheDir(dir))
	defer d2.Close()
	_, err = d2.Load(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, 0, comp2.compiles, "another device finds it on disk")

	d3, _, comp3 := openFake(t, WithCacheDir(dir))
	defer d3.Close()
	files, err := filepath.Glob(filepath.Join(dir, "*.bin"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.NoError(t, os.WriteFile(files[0], []byte("torn"), 0o644))
	_, err = d3.Load(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, 1, comp3.compiles, "a damaged file is a miss")

	// An image the driver rejects is dropped and compiled afresh.
	d4, _, comp4 := openFake(t, WithCacheDir(dir))
	defer d4.Close()
	key := cacheKey(p, "sm_90", 13000)
	require.NoError(t, newKernelCache(dir).put(key, nil))
	m, err := d4.Load(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, 1, comp4.compiles)
	_, err = m.Kernel("vadd")
	require.NoError(t, err)

	// No NVRTC: a cached program still loads, a new one cannot.
	cfg, err := newCUDAConfig([]Option{WithCacheDir(dir)})
	require.NoError(t, err)
	drv := newFakeDriver()
	d5, err := openDevice(drv, func() (compiler, error) { return nil, ErrNoNVRTC }, 0, cfg)
	require.NoError(t, err)
	defer d5.Close()
	_, err = d5.Load(ctx, p)
	require.NoError(t, err)
	_, err = d5.Load(ctx, &Program{Name: "other.cu", Source: "extern \"C\" __global__ void f() {}"})
	assert.ErrorIs(t, err, ErrNoNVRTC)
	_, err = d5.Load(ctx, &Program{Name: "empty.cu"})
	assert.ErrorIs(t, err, ErrInvalidValue)
}

func TestCUDALoadTargetsAndCompileErrors(t *testing.T) {
	ctx := context.Background()
	d, drv, comp := openFake(t)
	defer d.Close()
	_ = drv
	comp.supports = []int{75, 80, 86} // an NVRTC older than the GPU
	_, err := d.Load(ctx, testProgram)
	require.NoError(t, err)
	assert.Equal(t, "--gpu-architecture=compute_86", comp.options[0][0], "PTX for the newest architecture NVRTC knows")

	_, err = d.Load(ctx, &Program{Name: "bad.cu", Source: "#error nope"})
	assert.ErrorIs(t, err, ErrCompile)
	var cerr *CompileError
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, "bad.cu", cerr.Program)
	assert.Equal(t, "compute_86", cerr.Arch)
	assert.Contains(t, cerr.Log, "bad.cu(1): error: #error nope")
	assert.Contains(t, err.Error(), "bad.cu(1): error", "the log is in the message")

	comp.supports = []int{100, 120}
	_, err = d.Load(ctx, &Program{Name: "new.cu", Source: "x"})
	assert.ErrorIs(t, err, ErrNoNVRTC, "NVRTC knows nothing old enough")
}

func TestChooseTarget(t *testing.T) {
	for _, c := range []struct {
		major, minor int
		supported    []int
		arch         string
		ptx          bool
	}{
		{9, 0, []int{75, 80, 90, 100}, "sm_90", false},
		{12, 0, []int{75, 80, 90}, "compute_90", true},
		{8, 9, []int{75, 80, 86, 90}, "compute_86", true},
	} {
		arch, ptx, err := chooseTarget(c.major, c.minor, c.supported)
		require.NoError(t, err)
		assert.Equal(t, c.arch, arch)
		assert.Equal(t, c.ptx, ptx)
	}
	_, _, err := chooseTarget(7, 0, []int{75})
	assert.ErrorIs(t, err, ErrNoNVRTC)
}

func TestCacheKey(t *testing.T) {
	base := &Program{Name: "a", Source: "s", Options: []string{"-o"}}
	key := cacheKey(base, "sm_90", 13000)
	for _, other := range []string{
		cacheKey(&Program{Name: "b", Source: "s", Options: []string{"-o"}}, "sm_90", 13000),
		cacheKey(&Program{Name: "a", Source: "t", Options: []string{"-o"}}, "sm_90", 13000),
		cacheKey(&Program{Name: "a", Source: "s"}, "sm_90", 13000),
		cacheKey(&Program{Name: "as", Source: "", Options: []string{"-o"}}, "sm_90", 13000),
		cacheKey(base, "sm_80", 13000),
		cacheKey(base, "sm_90", 12080),
	} {
		assert.NotEqual(t, key, other)
	}
	assert.Equal(t, key, cacheKey(&Program{Name: "a", Source: "s", Options: []string{"-o"}, Host: map[string]HostKernel{}}, "sm_90", 13000),
		"Go kernels are not part of the image")
}

func TestKernelCacheWithoutDisk(t *testing.T) {
	c := newKernelCache("")
	require.NoError(t, c.put("k", []byte("image")))
	got, ok := c.get("k")
	assert.True(t, ok)
	assert.Equal(t, []byte("image"), got)
	c.drop("k")
	_, ok = c.get("k")
	assert.False(t, ok)

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	bad := newKernelCache(file)
	assert.Error(t, bad.put("k", []byte("image")), "a cache directory that is a file")
	got, ok = bad.get("k")
	assert.True(t, ok, "the memory entry stays")
	assert.Equal(t, []byte("image"), got)
}

func TestCUDACloseReportsDriverErrors(t *testing.T) {
	d, drv, _ := openFake(t)
	_, err := d.Alloc(64)
	require.NoError(t, err)
	drv.fail["cuCtxSynchronize"] = resultIllegalAddress
	err = d.Close()
	assert.ErrorIs(t, err, ErrLaunchFailed)
	assert.Empty(t, drv.mem, "Close frees memory despite the failure")
	assert.True(t, errors.Is(d.Close(), ErrClosed))
}
