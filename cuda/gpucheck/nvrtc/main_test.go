package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needNVRTC skips without NVRTC, after checking that the tool then says so
// and exits 3.
func needNVRTC(t *testing.T) {
	t.Helper()
	_, err := cuda.LoadNVRTC()
	if err == nil {
		return
	}
	require.ErrorIs(t, err, cuda.ErrNoNVRTC)
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitCannotRun, check(context.Background(), &stdout, &stderr, options{archs: defaultArchs, workers: 1}))
	assert.Contains(t, stderr.String(), "no NVRTC library")
	t.Skipf("no NVRTC: %v", err)
}

// TestRegistryCompiles is the check as CI runs it, every registered program,
// for the oldest and newest architectures (CI's own run covers all five).
func TestRegistryCompiles(t *testing.T) {
	needNVRTC(t)
	var stdout, stderr bytes.Buffer
	status := check(context.Background(), &stdout, &stderr, options{archs: "sm_75,sm_90", json: true, workers: 2})
	require.Equal(t, 0, status, "%s%s", stdout.String(), stderr.String())
	var rep report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	assert.Empty(t, rep.Problems)
	assert.Equal(t, []string{"sm_75", "sm_90"}, rep.Archs)
	kernels := map[string]int{}
	for _, r := range rep.Results {
		for _, k := range r.Kernels {
			kernels[r.Program+" "+k.Name]++
			assert.Positive(t, k.Registers, "%s %s %s", r.Program, k.Name, r.Arch)
		}
	}
	for name, archs := range kernels {
		assert.Equal(t, 2, archs, "%s on each architecture", name)
	}
	assert.Contains(t, kernels, "preludecheck.cu prelude_check")
	assert.Contains(t, kernels, "kernels.cu vadd")
}

// TestFailures compiles programs made to fail each check with the real
// NVRTC.
func TestFailures(t *testing.T) {
	needNVRTC(t)
	ctx := context.Background()
	spill := &cuda.Program{Name: "spill.cu", Source: readFixture(t, "spill.cu"), Options: []string{"--maxrregcount=32"}}
	r, err := run(ctx, job{src: source{pkg: "test"}, prog: spill, arch: "sm_80"}, true)
	require.NoError(t, err)
	assert.Contains(t, r.Log, "Compiling entry function 'decode_spill' for 'sm_80'", "-v keeps the log")
	assert.Len(t, r.Problems, 1, "the unused variable's warning")
	assert.Contains(t, r.Problems[0], "warning")
	problems := map[string][]string{}
	for _, k := range r.Kernels {
		problems[k.Name] = k.Problems
	}
	assert.Contains(t, problems["decode_spill"], "spills in a decode kernel: 4 B stored, 4 B loaded")
	assert.Len(t, problems["warned"], 1, "a double")
	assert.Equal(t, []string{"--maxrregcount=32"}, spill.Options, "the program is not changed")

	// A call to a device function nothing defines: the CUBIN fails, and
	// the PTX says which.
	missing := &cuda.Program{Name: "missing.cu", Source: `extern "C" __device__ int missing(int);
extern "C" __global__ void k(int *x) { x[0] = missing(x[1]); }`}
	r, err = run(ctx, job{src: source{pkg: "test"}, prog: missing, arch: "sm_75"}, false)
	require.NoError(t, err)
	require.Len(t, r.Problems, 1)
	assert.Contains(t, r.Problems[0], "does not compile (cuda: nvrtcCompileProgram")
	assert.Contains(t, r.Problems[0], "missing")
	require.Len(t, r.Kernels, 1)
	assert.Equal(t, []string{"calls missing, which nothing defines (an intrinsic NVRTC does not link? use the prelude's)"}, r.Kernels[0].Problems)

	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitUsage, check(ctx, &stdout, &stderr, options{archs: "sm_75,90", workers: 1}))
	assert.Contains(t, stderr.String(), `"90" is not sm_NN`)
	stderr.Reset()
	assert.Equal(t, exitCannotRun, check(ctx, &stdout, &stderr, options{archs: "sm_999", workers: 1}))
	assert.Contains(t, stderr.String(), "not sm_999")

	stderr.Reset()
	assert.Equal(t, exitUsage, check(ctx, &stdout, &stderr, options{archs: "sm_75", run: regexp.MustCompile("nothing"), workers: 1}))
	assert.Contains(t, stderr.String(), "-run nothing matches no program")
	stdout.Reset()
	assert.Equal(t, 0, check(ctx, &stdout, &stderr, options{archs: "sm_75", run: regexp.MustCompile("/prelude"), workers: 1}))
	assert.Contains(t, stdout.String(), "ok: 2 programs, 1 kernels, sm_75")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = run(cancelled, job{src: source{pkg: "test"}, prog: spill, arch: "sm_80"}, false)
	assert.True(t, errors.Is(err, context.Canceled))
}

func TestParseArchs(t *testing.T) {
	archs, err := parseArchs(context.Background(), " sm_75,sm_90,sm_75")
	require.NoError(t, err)
	assert.Equal(t, []string{"sm_75", "sm_90"}, archs)
	for _, bad := range []string{"", "sm_", "sm_075", "compute_90", "sm_9x", "sm_75,", "sm_99999999999999999999"} {
		_, err := parseArchs(context.Background(), bad)
		assert.ErrorIs(t, err, errUsage, "%q", bad)
	}
}

func TestTable(t *testing.T) {
	rep := report{
		NVRTC: nvrtcInfo{Library: "libnvrtc.so.11.2", Version: 11080},
		Archs: []string{"sm_75", "sm_90"}, Seconds: 1.25,
		Results: []result{
			{Package: "cuda", Program: "prelude.cuh", Arch: "sm_75", Seconds: 0.5},
			{Package: "cuda", Program: "prelude.cuh", Arch: "sm_90", Seconds: 0.5},
			{Package: "moe", Program: "gemv.cu", Arch: "sm_75", Seconds: 0.5, Kernels: []kernel{
				{Name: "gemv_decode", Entry: true, Decode: true, resources: resources{Registers: 40, Shared: 512}},
				{Name: "helper", resources: resources{Stack: 16}, PTXLocal: 16},
			}},
			{Package: "moe", Program: "gemv.cu", Arch: "sm_90", Seconds: 0.5, Kernels: []kernel{
				{Name: "gemv_decode", Entry: true, Decode: true, resources: resources{Registers: 128, SpillStores: 8, SpillLoads: 12, Shared: 512},
					Problems: []string{"spills in a decode kernel: 8 B stored, 12 B loaded"}},
			}},
		},
	}
	rep.Problems = problems([]string{"moe: two programs named x.cu"}, rep.Results)
	var out bytes.Buffer
	require.NoError(t, rep.writeTable(&out))
	assert.Equal(t, `NVRTC 11.8 (libnvrtc.so.11.2): 4 compiles (PTX and CUBIN) in 1.2 s, 2.0 s of NVRTC
sizes in bytes; stack and spills are local memory; decode kernels must not spill

program           kernel        kind    arch   regs  spill st  spill ld  smem  stack  PTX .local  f64
cuda/prelude.cuh  (no kernels)          all                                                            ok
moe/gemv.cu       gemv_decode   decode  sm_75    40         0         0   512      0           0    0  ok
                                decode  sm_90   128         8        12   512      0           0    0  FAIL
                  helper        func    sm_75     -         0         0     0     16          16    0  ok
                                        sm_90                                                          ok

FAIL: 2 problem(s)
  moe: two programs named x.cu
  moe gemv.cu sm_90 gemv_decode: spills in a decode kernel: 8 B stored, 12 B loaded
`, out.String())

	out.Reset()
	require.NoError(t, rep.writeJSON(&out))
	var back report
	require.NoError(t, json.Unmarshal(out.Bytes(), &back))
	assert.Equal(t, rep, back)
}
