//go:build cgo && linux

package cuda

/*
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

// Hand-declared from nvrtc.h, so that building needs no CUDA toolkit.
typedef int nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;

typedef const char *(*nvrtcGetErrorString_t)(nvrtcResult);
typedef nvrtcResult (*nvrtcVersion_t)(int *, int *);
typedef nvrtcResult (*nvrtcGetNumSupportedArchs_t)(int *);
typedef nvrtcResult (*nvrtcGetSupportedArchs_t)(int *);
typedef nvrtcResult (*nvrtcCreateProgram_t)(nvrtcProgram *, const char *, const char *, int,
	const char *const *, const char *const *);
typedef nvrtcResult (*nvrtcDestroyProgram_t)(nvrtcProgram *);
typedef nvrtcResult (*nvrtcCompileProgram_t)(nvrtcProgram, int, const char *const *);
typedef nvrtcResult (*nvrtcGetProgramLogSize_t)(nvrtcProgram, size_t *);
typedef nvrtcResult (*nvrtcGetProgramLog_t)(nvrtcProgram, char *);
typedef nvrtcResult (*nvrtcGetCUBINSize_t)(nvrtcProgram, size_t *);
typedef nvrtcResult (*nvrtcGetCUBIN_t)(nvrtcProgram, char *);
typedef nvrtcResult (*nvrtcGetPTXSize_t)(nvrtcProgram, size_t *);
typedef nvrtcResult (*nvrtcGetPTX_t)(nvrtcProgram, char *);

// The function table, filled from Go by nv_set in this order.
enum {
	NV_nvrtcGetErrorString, NV_nvrtcVersion, NV_nvrtcGetNumSupportedArchs, NV_nvrtcGetSupportedArchs,
	NV_nvrtcCreateProgram, NV_nvrtcDestroyProgram, NV_nvrtcCompileProgram,
	NV_nvrtcGetProgramLogSize, NV_nvrtcGetProgramLog,
	NV_nvrtcGetCUBINSize, NV_nvrtcGetCUBIN, NV_nvrtcGetPTXSize, NV_nvrtcGetPTX,
	NV_COUNT
};

static void *nv[NV_COUNT];

static void nv_set(int i, void *p) { nv[i] = p; }

#define NVCALL(f) ((f##_t)nv[NV_##f])

static const char *nv_errorString(nvrtcResult r) { return NVCALL(nvrtcGetErrorString)(r); }
static nvrtcResult nv_version(int *major, int *minor) { return NVCALL(nvrtcVersion)(major, minor); }
static nvrtcResult nv_numArchs(int *n) { return NVCALL(nvrtcGetNumSupportedArchs)(n); }
static nvrtcResult nv_archs(int *archs) { return NVCALL(nvrtcGetSupportedArchs)(archs); }
static nvrtcResult nv_create(uintptr_t *prog, const char *src, const char *name) {
	nvrtcProgram p = NULL;
	nvrtcResult r = NVCALL(nvrtcCreateProgram)(&p, src, name, 0, NULL, NULL);
	*prog = (uintptr_t)p;
	return r;
}
static nvrtcResult nv_destroy(uintptr_t prog) {
	nvrtcProgram p = (nvrtcProgram)prog;
	return NVCALL(nvrtcDestroyProgram)(&p);
}
static nvrtcResult nv_compile(uintptr_t prog, int n, char **options) {
	return NVCALL(nvrtcCompileProgram)((nvrtcProgram)prog, n, (const char *const *)options);
}
static nvrtcResult nv_logSize(uintptr_t prog, size_t *n) { return NVCALL(nvrtcGetProgramLogSize)((nvrtcProgram)prog, n); }
static nvrtcResult nv_log(uintptr_t prog, char *log) { return NVCALL(nvrtcGetProgramLog)((nvrtcProgram)prog, log); }
static nvrtcResult nv_outputSize(uintptr_t prog, int ptx, size_t *n) {
	return ptx ? NVCALL(nvrtcGetPTXSize)((nvrtcProgram)prog, n) : NVCALL(nvrtcGetCUBINSize)((nvrtcProgram)prog, n);
}
static nvrtcResult nv_output(uintptr_t prog, int ptx, char *out) {
	return ptx ? NVCALL(nvrtcGetPTX)((nvrtcProgram)prog, out) : NVCALL(nvrtcGetCUBIN)((nvrtcProgram)prog, out);
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// nvrtcNames are the names NVRTC goes by: unversioned (a toolkit's
// development link), then by major version, newest first.
var nvrtcNames = []string{"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"}

// nvrtcLibraries lists what to dlopen: the names through the loader's search
// path, then the files of those names in the toolkit directories that exist
// ($CUDA_HOME, $CUDA_PATH, /usr/local/cuda, newest /usr/local/cuda-X.Y
// first), since a toolkit's libraries are often not on the search path.
func nvrtcLibraries() []string {
	var dirs []string
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if v := os.Getenv(env); v != "" {
			dirs = append(dirs, filepath.Join(v, "lib64"), filepath.Join(v, "lib"))
		}
	}
	dirs = append(dirs, "/usr/local/cuda/lib64")
	versioned, _ := filepath.Glob("/usr/local/cuda-*/lib64")
	slices.Sort(versioned)
	slices.Reverse(versioned)
	dirs = append(dirs, versioned...)

	libs := slices.Clone(nvrtcNames)
	for _, dir := range dirs {
		for _, name := range nvrtcNames {
			path := filepath.Join(dir, name)
			if _, err := os.Stat(path); err == nil && !slices.Contains(libs, path) {
				libs = append(libs, path)
			}
		}
	}
	return libs
}

var nvrtcSymbols = [C.NV_COUNT][]string{
	C.NV_nvrtcGetErrorString:       {"nvrtcGetErrorString"},
	C.NV_nvrtcVersion:              {"nvrtcVersion"},
	C.NV_nvrtcGetNumSupportedArchs: {"nvrtcGetNumSupportedArchs"},
	C.NV_nvrtcGetSupportedArchs:    {"nvrtcGetSupportedArchs"},
	C.NV_nvrtcCreateProgram:        {"nvrtcCreateProgram"},
	C.NV_nvrtcDestroyProgram:       {"nvrtcDestroyProgram"},
	C.NV_nvrtcCompileProgram:       {"nvrtcCompileProgram"},
	C.NV_nvrtcGetProgramLogSize:    {"nvrtcGetProgramLogSize"},
	C.NV_nvrtcGetProgramLog:        {"nvrtcGetProgramLog"},
	C.NV_nvrtcGetCUBINSize:         {"nvrtcGetCUBINSize"},
	C.NV_nvrtcGetCUBIN:             {"nvrtcGetCUBIN"},
	C.NV_nvrtcGetPTXSize:           {"nvrtcGetPTXSize"},
	C.NV_nvrtcGetPTX:               {"nvrtcGetPTX"},
}

// cgoNVRTC is NVRTC loaded with dlopen.
type cgoNVRTC struct {
	lib       string
	ver       int
	supported []int
}

var loadNVRTCOnce = sync.OnceValues(func() (compiler, error) {
	h, lib, err := dlopenFirst(nvrtcLibraries(), ErrNoNVRTC)
	if err != nil {
		return nil, err
	}
	if err := bindSymbols(h, nvrtcSymbols[:], func(i int, p unsafe.Pointer) { C.nv_set(C.int(i), p) }); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoNVRTC, lib, err)
	}
	n := &cgoNVRTC{lib: lib}
	var major, minor, count C.int
	if err := n.check("nvrtcVersion", C.nv_version(&major, &minor)); err != nil {
		return nil, err
	}
	n.ver = 1000*int(major) + 10*int(minor)
	if err := n.check("nvrtcGetNumSupportedArchs", C.nv_numArchs(&count)); err != nil {
		return nil, err
	}
	if count > 0 {
		archs := make([]C.int, count)
		if err := n.check("nvrtcGetSupportedArchs", C.nv_archs(&archs[0])); err != nil {
			return nil, err
		}
		for _, a := range archs {
			n.supported = append(n.supported, int(a))
		}
	}
	return n, nil
})

// loadNVRTC loads NVRTC on first use.
func loadNVRTC() (compiler, error) { return loadNVRTCOnce() }

func (n *cgoNVRTC) check(call string, r C.nvrtcResult) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("cuda: %s (%s): %s (%d)", call, n.lib, C.GoString(C.nv_errorString(r)), int(r))
}

func (n *cgoNVRTC) version() int { return n.ver }
func (n *cgoNVRTC) archs() []int { return n.supported }

func (n *cgoNVRTC) library() string { return n.lib }

func (n *cgoNVRTC) compile(name, source string, options []string, cubin bool) (ptx, image []byte, log string, err error) {
	csrc, cname := C.CString(source), C.CString(name)
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cname))
	var prog C.uintptr_t
	if err := n.check("nvrtcCreateProgram", C.nv_create(&prog, csrc, cname)); err != nil {
		return nil, nil, "", err
	}
	defer C.nv_destroy(prog)

	copts := (**C.char)(C.malloc(C.size_t(max(len(options), 1)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	defer C.free(unsafe.Pointer(copts))
	opts := unsafe.Slice(copts, max(len(options), 1))
	for i, o := range options {
		opts[i] = C.CString(o)
		defer C.free(unsafe.Pointer(opts[i]))
	}
	compileErr := n.check("nvrtcCompileProgram", C.nv_compile(prog, C.int(len(options)), copts))

	var size C.size_t
	if C.nv_logSize(prog, &size) == 0 && size > 1 {
		buf := make([]byte, size)
		if C.nv_log(prog, (*C.char)(unsafe.Pointer(&buf[0]))) == 0 {
			// NVRTC 11.8 counts a NUL of its own ahead of the terminator.
			log, _, _ = strings.Cut(string(buf), "\x00")
		}
	}
	if compileErr != nil {
		return nil, nil, log, compileErr
	}
	if ptx, err = n.output(prog, true); err != nil {
		return nil, nil, log, err
	}
	// PTX comes with every compile; a CUBIN only for a real architecture.
	if cubin {
		if image, err = n.output(prog, false); err != nil {
			return nil, nil, log, err
		}
	}
	return ptx, image, log, nil
}

// output copies a compiled program's PTX (ptx set) or CUBIN.
func (n *cgoNVRTC) output(prog C.uintptr_t, ptx bool) ([]byte, error) {
	isPTX, sizeCall, getCall := C.int(0), "nvrtcGetCUBINSize", "nvrtcGetCUBIN"
	if ptx {
		isPTX, sizeCall, getCall = 1, "nvrtcGetPTXSize", "nvrtcGetPTX"
	}
	var size C.size_t
	if err := n.check(sizeCall, C.nv_outputSize(prog, isPTX, &size)); err != nil {
		return nil, err
	}
	out := make([]byte, size)
	if size > 0 {
		if err := n.check(getCall, C.nv_output(prog, isPTX, (*C.char)(unsafe.Pointer(&out[0])))); err != nil {
			return nil, err
		}
	}
	return out, nil
}
