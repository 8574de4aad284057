package moe_test

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKQuantsNVRTC compiles the test program (every device function of
// kquants.cuh, through the test kernels) with the real NVRTC for each
// architecture the project targets: to a cubin with ptxas's resource report,
// and to PTX, which must hold no double-precision arithmetic, no unresolved
// function and no local memory. NVRTC has no -Werror, so any warning in the
// log fails the test. It skips where NVRTC or a C compiler is missing.
//
// NVRTC is reached by a small C program (built here by the system C
// compiler) that loads libnvrtc with dlopen: the cuda package compiles
// through NVRTC only for a device it has opened.
func TestKQuantsNVRTC(t *testing.T) {
	nvrtc := kqNVRTC(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "kquants_test.cu")
	require.NoError(t, os.WriteFile(src, []byte(kqProgramSource(t)), 0o644))

	entry := regexp.MustCompile(`Compiling entry function '(\w+)' for '(\w+)'`)
	spill := regexp.MustCompile(`(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads`)
	regs := regexp.MustCompile(`Used (\d+) registers`)
	var table strings.Builder
	fmt.Fprintf(&table, "%-18s %-6s %4s %6s %6s\n", "kernel", "arch", "regs", "stack", "spill")
	for _, arch := range []string{"75", "80", "86", "89", "90"} {
		log := nvrtc(t, src, filepath.Join(dir, "out.cubin"), "--gpu-architecture=sm_"+arch,
			"--ptxas-options=-v", "--ptxas-options=--warn-on-local-memory-usage", "--ptxas-options=--warn-on-spills")
		require.Empty(t, kqWarnings(log), "sm_%s", arch)
		kernel, stack, spills := "", "", ""
		n := 0
		for _, line := range strings.Split(log, "\n") {
			if m := entry.FindStringSubmatch(line); m != nil {
				kernel = m[1]
				n++
			}
			if m := spill.FindStringSubmatch(line); m != nil {
				stack, spills = m[1], m[2]+"/"+m[3]
				require.Equal(t, "0", m[1], "%s sm_%s: stack frame", kernel, arch)
				require.Equal(t, []string{"0", "0"}, m[2:], "%s sm_%s: spill stores and loads", kernel, arch)
			}
			if m := regs.FindStringSubmatch(line); m != nil {
				fmt.Fprintf(&table, "%-18s sm_%-3s %4s %6s %6s\n", kernel, arch, m[1], stack, spills)
			}
		}
		require.Equal(t, 12, n, "sm_%s: kernels in ptxas's report", arch)

		ptxPath := filepath.Join(dir, "out.ptx")
		log = nvrtc(t, src, ptxPath, "--gpu-architecture=compute_"+arch)
		require.Empty(t, kqWarnings(log), "compute_%s", arch)
		ptx, err := os.ReadFile(ptxPath)
		require.NoError(t, err)
		for _, bad := range []string{".f64", "%fd", ".extern .func", ".local"} {
			require.NotContains(t, string(ptx), bad, "compute_%s PTX", arch)
		}
	}
	t.Logf("ptxas resources (stack and spill bytes must be 0):\n%s", table.String())
}

// kqWarnings returns the lines of an NVRTC log that warn.
func kqWarnings(log string) []string {
	var w []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(strings.ToLower(line), "warning") {
			w = append(w, line)
		}
	}
	return w
}

// kqNVRTCHelper compiles one file with NVRTC: nvrtc SRC OUT OPTION...
// writes the log to stdout and the PTX (for a compute_ target) or cubin to
// OUT; it exits 3 when no NVRTC can be loaded, 1 when compilation fails.
const kqNVRTCHelper = `#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*create_fn)(void **, const char *, const char *, int, const char *const *, const char *const *);
typedef int (*compile_fn)(void *, int, const char *const *);
typedef int (*size_fn)(void *, size_t *);
typedef int (*get_fn)(void *, char *);

int main(int argc, char **argv) {
	const char *libs[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"};
	void *h = NULL;
	for (int i = 0; i < 4 && !h; i++) h = dlopen(libs[i], RTLD_NOW);
	if (!h) { fprintf(stderr, "no NVRTC\n"); return 3; }
	FILE *f = fopen(argv[1], "rb");
	if (!f) { perror(argv[1]); return 2; }
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *src = malloc(n + 1);
	if (fread(src, 1, n, f) != (size_t)n) { perror(argv[1]); return 2; }
	src[n] = 0;
	fclose(f);

	void *prog;
	if (((create_fn)dlsym(h, "nvrtcCreateProgram"))(&prog, src, "kquants_test.cu", 0, NULL, NULL)) return 2;
	int rc = ((compile_fn)dlsym(h, "nvrtcCompileProgram"))(prog, argc - 3, (const char *const *)(argv + 3));
	size_t size;
	((size_fn)dlsym(h, "nvrtcGetProgramLogSize"))(prog, &size);
	char *log = malloc(size + 1);
	((get_fn)dlsym(h, "nvrtcGetProgramLog"))(prog, log);
	log[size] = 0;
	fputs(log, stdout);
	if (rc) return 1;

	int ptx = strstr(argv[argc - 1], "compute_") != NULL;
	if (((size_fn)dlsym(h, ptx ? "nvrtcGetPTXSize" : "nvrtcGetCUBINSize"))(prog, &size)) return 2;
	char *out = malloc(size);
	if (((get_fn)dlsym(h, ptx ? "nvrtcGetPTX" : "nvrtcGetCUBIN"))(prog, out)) return 2;
	f = fopen(argv[2], "wb");
	fwrite(out, 1, ptx ? strlen(out) : size, f);
	return fclose(f) ? 2 : 0;
}
`

// kqNVRTC builds the helper and returns a function that compiles src into
// out with the given options (the target last) and returns NVRTC's log.
func kqNVRTC(t *testing.T) func(t *testing.T, src, out string, opts ...string) string {
	cc, err := exec.LookPath(cmp.Or(os.Getenv("CC"), "cc"))
	if err != nil {
		t.Skipf("no C compiler for the NVRTC helper: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nvrtc")
	require.NoError(t, os.WriteFile(bin+".c", []byte(kqNVRTCHelper), 0o644))
	msg, err := exec.Command(cc, "-O1", "-Wall", "-o", bin, bin+".c", "-ldl").CombinedOutput()
	require.NoError(t, err, "%s", msg)
	return func(t *testing.T, src, out string, opts ...string) string {
		cmd := exec.Command(bin, append([]string{src, out}, opts...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		log, err := cmd.Output()
		if exit := (*exec.ExitError)(nil); errors.As(err, &exit) && exit.ExitCode() == 3 {
			t.Skip("no NVRTC library (libnvrtc.so.11.2 from Debian's libnvrtc11.2, or a CUDA toolkit's)")
		}
		require.NoError(t, err, "%s%s", log, stderr.String())
		return string(log)
	}
}
