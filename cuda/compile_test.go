package cuda

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompileOverFakeNVRTC(t *testing.T) {
	ctx := context.Background()
	comp := &fakeCompiler{supports: []int{75, 80, 90}}
	load := func() (compiler, error) { return comp, nil }
	p := &Program{Name: "k.cu", Source: `extern "C" __global__ void k() {}`, Options: []string{"--ptxas-options=-v"}}

	c, err := compileWith(ctx, load, p, "sm_80")
	require.NoError(t, err)
	assert.Equal(t, &Compiled{Program: "k.cu", Arch: "sm_80", NVRTC: 13000, PTX: []byte(p.Source), CUBIN: []byte(p.Source)}, c)
	assert.Equal(t, []string{"--gpu-architecture=sm_80", "--ptxas-options=-v"}, comp.options[0], "the architecture first, then the program's options")

	c, err = compileWith(ctx, load, p, "compute_90")
	require.NoError(t, err)
	assert.Nil(t, c.CUBIN, "a virtual architecture gives PTX alone")
	assert.NotEmpty(t, c.PTX)

	for _, arch := range []string{"", "sm90", "sm_", "sm_x", "sm_-75", "sm_075", "compute_", "lto_90"} {
		_, err := compileWith(ctx, load, p, arch)
		assert.ErrorIs(t, err, ErrInvalidValue, "%q", arch)
	}
	_, err = compileWith(ctx, load, p, "sm_86")
	assert.ErrorIs(t, err, ErrNoNVRTC, "an architecture this NVRTC does not know")
	assert.ErrorContains(t, err, "NVRTC 13.0 (fake) compiles for [75 80 90], not sm_86")
	_, err = compileWith(ctx, load, nil, "sm_80")
	assert.ErrorIs(t, err, ErrInvalidValue)
	_, err = compileWith(ctx, load, &Program{Name: "empty.cu"}, "sm_80")
	assert.ErrorIs(t, err, ErrInvalidValue)

	_, err = compileWith(ctx, load, &Program{Name: "bad.cu", Source: "#error no"}, "sm_75")
	var cerr *CompileError
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, "bad.cu", cerr.Program)
	assert.Equal(t, "sm_75", cerr.Arch)
	assert.Contains(t, cerr.Log, "#error no")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	before := comp.compiles
	_, err = compileWith(cancelled, load, p, "sm_80")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, before, comp.compiles, "nothing compiled after cancellation")

	missing := errors.Join(ErrNoNVRTC, errors.New("tried libnvrtc.so"))
	_, err = compileWith(ctx, func() (compiler, error) { return nil, missing }, p, "sm_80")
	assert.ErrorIs(t, err, ErrNoNVRTC)
}

func TestNVRTCInfo(t *testing.T) {
	info := nvrtcInfo(&fakeCompiler{supports: []int{75, 90}})
	assert.Equal(t, NVRTCInfo{Library: "fake", Version: 13000, Archs: []int{75, 90}}, info)
	assert.Equal(t, "NVRTC 11.8 (libnvrtc.so.11.2)", NVRTCInfo{Library: "libnvrtc.so.11.2", Version: 11080}.String())
}

// TestCompileWithNVRTC compiles with the NVRTC on this machine, without a
// driver or GPU; it skips when there is none.
func TestCompileWithNVRTC(t *testing.T) {
	info, err := LoadNVRTC()
	if errors.Is(err, ErrNoNVRTC) {
		t.Skipf("no NVRTC: %v", err)
	}
	require.NoError(t, err)
	assert.Contains(t, info.Archs, 75)
	t.Log(info, info.Archs)

	ctx := context.Background()
	p := &Program{
		Name: "scale.cu",
		Source: Prelude + `
extern "C" __global__ void scale(const u16 *x, float *y, float a, u32 n) {
	u32 i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) y[i] = a * rt_half_to_float(x[i]);
}
`,
		Options: []string{"--ptxas-options=-v"},
	}
	c, err := Compile(ctx, p, "sm_75")
	require.NoError(t, err)
	assert.Equal(t, info.Version, c.NVRTC)
	assert.Contains(t, string(c.PTX), ".visible .entry scale(")
	assert.Equal(t, byte(0), c.PTX[len(c.PTX)-1], "PTX as the driver loads it")
	assert.True(t, strings.HasPrefix(string(c.CUBIN), "\x7fELF"), "a CUBIN is an ELF image")
	assert.Contains(t, c.Log, "Compiling entry function 'scale' for 'sm_75'", "ptxas's report, as the options asked")
	assert.NotContains(t, c.Log, "\x00")

	c, err = Compile(ctx, p, "compute_80")
	require.NoError(t, err)
	assert.Nil(t, c.CUBIN)
	assert.Contains(t, string(c.PTX), ".target sm_80")

	_, err = Compile(ctx, &Program{Name: "broken.cu", Source: `extern "C" __global__ void k(float *x) { x[0] = undefined_name; }`}, "sm_75")
	var cerr *CompileError
	require.ErrorAs(t, err, &cerr)
	assert.Contains(t, cerr.Log, "undefined_name")
}
