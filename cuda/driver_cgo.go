//go:build cgo && linux

package cuda

/*
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Hand-declared from cuda.h, so that building needs no CUDA toolkit.
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUgraphNode_st *CUgraphNode;

// CUDA_KERNEL_NODE_PARAMS_v2; the v1 functions read and write its prefix.
typedef struct {
	CUfunction func;
	unsigned int gridDimX, gridDimY, gridDimZ;
	unsigned int blockDimX, blockDimY, blockDimZ;
	unsigned int sharedMemBytes;
	void **kernelParams;
	void **extra;
	void *kern;
	CUcontext ctx;
} KernelNodeParams;

typedef CUresult (*cuInit_t)(unsigned int);
typedef CUresult (*cuDriverGetVersion_t)(int *);
typedef CUresult (*cuGetErrorName_t)(CUresult, const char **);
typedef CUresult (*cuGetErrorString_t)(CUresult, const char **);
typedef CUresult (*cuDeviceGet_t)(CUdevice *, int);
typedef CUresult (*cuDeviceGetName_t)(char *, int, CUdevice);
typedef CUresult (*cuDeviceGetAttribute_t)(int *, int, CUdevice);
typedef CUresult (*cuDeviceTotalMem_t)(size_t *, CUdevice);
typedef CUresult (*cuDevicePrimaryCtxRetain_t)(CUcontext *, CUdevice);
typedef CUresult (*cuDevicePrimaryCtxRelease_t)(CUdevice);
typedef CUresult (*cuCtxSetCurrent_t)(CUcontext);
typedef CUresult (*cuCtxSynchronize_t)(void);
typedef CUresult (*cuMemGetInfo_t)(size_t *, size_t *);
typedef CUresult (*cuMemAlloc_t)(CUdeviceptr *, size_t);
typedef CUresult (*cuMemFree_t)(CUdeviceptr);
typedef CUresult (*cuMemHostAlloc_t)(void **, size_t, unsigned int);
typedef CUresult (*cuMemFreeHost_t)(void *);
typedef CUresult (*cuMemHostRegister_t)(void *, size_t, unsigned int);
typedef CUresult (*cuMemHostUnregister_t)(void *);
typedef CUresult (*cuMemHostGetDevicePointer_t)(CUdeviceptr *, void *, unsigned int);
typedef CUresult (*cuMemsetD8Async_t)(CUdeviceptr, unsigned char, size_t, CUstream);
typedef CUresult (*cuMemcpyHtoDAsync_t)(CUdeviceptr, const void *, size_t, CUstream);
typedef CUresult (*cuMemcpyDtoHAsync_t)(void *, CUdeviceptr, size_t, CUstream);
typedef CUresult (*cuMemcpyDtoDAsync_t)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
typedef CUresult (*cuStreamCreate_t)(CUstream *, unsigned int);
typedef CUresult (*cuStreamDestroy_t)(CUstream);
typedef CUresult (*cuStreamQuery_t)(CUstream);
typedef CUresult (*cuStreamSynchronize_t)(CUstream);
typedef CUresult (*cuStreamWaitEvent_t)(CUstream, CUevent, unsigned int);
typedef CUresult (*cuEventCreate_t)(CUevent *, unsigned int);
typedef CUresult (*cuEventDestroy_t)(CUevent);
typedef CUresult (*cuEventRecord_t)(CUevent, CUstream);
typedef CUresult (*cuEventQuery_t)(CUevent);
typedef CUresult (*cuEventSynchronize_t)(CUevent);
typedef CUresult (*cuEventElapsedTime_t)(float *, CUevent, CUevent);
typedef CUresult (*cuModuleLoadData_t)(CUmodule *, const void *);
typedef CUresult (*cuModuleUnload_t)(CUmodule);
typedef CUresult (*cuModuleGetFunction_t)(CUfunction *, CUmodule, const char *);
typedef CUresult (*cuLaunchKernel_t)(CUfunction, unsigned int, unsigned int, unsigned int,
	unsigned int, unsigned int, unsigned int, unsigned int, CUstream, void **, void **);
typedef CUresult (*cuStreamBeginCapture_t)(CUstream, int);
typedef CUresult (*cuStreamEndCapture_t)(CUstream, CUgraph *);
typedef CUresult (*cuGraphDestroy_t)(CUgraph);
typedef CUresult (*cuGraphGetNodes_t)(CUgraph, CUgraphNode *, size_t *);
typedef CUresult (*cuGraphNodeGetType_t)(CUgraphNode, int *);
typedef CUresult (*cuGraphKernelNodeGetParams_t)(CUgraphNode, KernelNodeParams *);
typedef CUresult (*cuGraphInstantiateWithFlags_t)(CUgraphExec *, CUgraph, unsigned long long);
typedef CUresult (*cuGraphExecDestroy_t)(CUgraphExec);
typedef CUresult (*cuGraphLaunch_t)(CUgraphExec, CUstream);
typedef CUresult (*cuGraphExecKernelNodeSetParams_t)(CUgraphExec, CUgraphNode, const KernelNodeParams *);
typedef CUresult (*cuEventRecordWithFlags_t)(CUevent, CUstream, unsigned int);

// The function table, filled from Go by drv_set in this order.
enum {
	DRV_cuInit, DRV_cuDriverGetVersion, DRV_cuGetErrorName, DRV_cuGetErrorString,
	DRV_cuDeviceGet, DRV_cuDeviceGetName, DRV_cuDeviceGetAttribute, DRV_cuDeviceTotalMem,
	DRV_cuDevicePrimaryCtxRetain, DRV_cuDevicePrimaryCtxRelease,
	DRV_cuCtxSetCurrent, DRV_cuCtxSynchronize,
	DRV_cuMemGetInfo, DRV_cuMemAlloc, DRV_cuMemFree, DRV_cuMemHostAlloc, DRV_cuMemFreeHost,
	DRV_cuMemHostRegister, DRV_cuMemHostUnregister, DRV_cuMemHostGetDevicePointer,
	DRV_cuMemsetD8Async, DRV_cuMemcpyHtoDAsync, DRV_cuMemcpyDtoHAsync, DRV_cuMemcpyDtoDAsync,
	DRV_cuStreamCreate, DRV_cuStreamDestroy, DRV_cuStreamQuery, DRV_cuStreamSynchronize,
	DRV_cuStreamWaitEvent,
	DRV_cuEventCreate, DRV_cuEventDestroy, DRV_cuEventRecord, DRV_cuEventQuery,
	DRV_cuEventSynchronize, DRV_cuEventElapsedTime,
	DRV_cuModuleLoadData, DRV_cuModuleUnload, DRV_cuModuleGetFunction, DRV_cuLaunchKernel,
	DRV_COUNT
};

static void *drv[DRV_COUNT];

static void drv_set(int i, void *p) { drv[i] = p; }

#define CALL(f) ((f##_t)drv[DRV_##f])

// The optional functions, filled by opt_set; a driver may lack them.
enum {
	OPT_cuStreamBeginCapture, OPT_cuStreamEndCapture, OPT_cuGraphDestroy, OPT_cuGraphGetNodes,
	OPT_cuGraphNodeGetType, OPT_cuGraphKernelNodeGetParams, OPT_cuGraphInstantiateWithFlags,
	OPT_cuGraphExecDestroy, OPT_cuGraphLaunch, OPT_cuGraphExecKernelNodeSetParams,
	OPT_cuEventRecordWithFlags,
	OPT_COUNT
};

static void *opt[OPT_COUNT];

static void opt_set(int i, void *p) { opt[i] = p; }

#define NOT_SUPPORTED 801 // CUDA_ERROR_NOT_SUPPORTED

// OPT calls an optional function, or returns NOT_SUPPORTED without one.
#define OPT(f, ...) (opt[OPT_##f] ? ((f##_t)opt[OPT_##f])(__VA_ARGS__) : NOT_SUPPORTED)

// Every call on a context first makes it current on this thread, in the same
// C call, so the goroutine cannot move between the two.
#define CURRENT(ctx) do { \
	CUresult r_ = CALL(cuCtxSetCurrent)((CUcontext)(ctx)); \
	if (r_ != 0) return r_; \
} while (0)

static CUresult tr_init(void) { return CALL(cuInit)(0); }
static CUresult tr_driverGetVersion(int *v) { return CALL(cuDriverGetVersion)(v); }
static const char *tr_errorName(CUresult r) {
	const char *s = NULL;
	return CALL(cuGetErrorName)(r, &s) == 0 ? s : NULL;
}
static const char *tr_errorString(CUresult r) {
	const char *s = NULL;
	return CALL(cuGetErrorString)(r, &s) == 0 ? s : NULL;
}
static CUresult tr_deviceGet(CUdevice *d, int ordinal) { return CALL(cuDeviceGet)(d, ordinal); }
static CUresult tr_deviceGetName(char *name, int n, CUdevice d) { return CALL(cuDeviceGetName)(name, n, d); }
static CUresult tr_deviceGetAttribute(int *v, int attr, CUdevice d) { return CALL(cuDeviceGetAttribute)(v, attr, d); }
static CUresult tr_deviceTotalMem(size_t *n, CUdevice d) { return CALL(cuDeviceTotalMem)(n, d); }
static CUresult tr_primaryCtxRetain(uintptr_t *ctx, CUdevice d) {
	CUcontext c = NULL;
	CUresult r = CALL(cuDevicePrimaryCtxRetain)(&c, d);
	*ctx = (uintptr_t)c;
	return r;
}
static CUresult tr_primaryCtxRelease(CUdevice d) { return CALL(cuDevicePrimaryCtxRelease)(d); }

static CUresult tr_ctxSynchronize(uintptr_t ctx) { CURRENT(ctx); return CALL(cuCtxSynchronize)(); }
static CUresult tr_memGetInfo(uintptr_t ctx, size_t *free, size_t *total) {
	CURRENT(ctx);
	return CALL(cuMemGetInfo)(free, total);
}
static CUresult tr_memAlloc(uintptr_t ctx, CUdeviceptr *p, size_t n) { CURRENT(ctx); return CALL(cuMemAlloc)(p, n); }
static CUresult tr_memFree(uintptr_t ctx, CUdeviceptr p) { CURRENT(ctx); return CALL(cuMemFree)(p); }
static CUresult tr_memHostAlloc(uintptr_t ctx, void **p, size_t n, unsigned int flags) {
	CURRENT(ctx);
	return CALL(cuMemHostAlloc)(p, n, flags);
}
static CUresult tr_memFreeHost(uintptr_t ctx, void *p) { CURRENT(ctx); return CALL(cuMemFreeHost)(p); }
static CUresult tr_memHostRegister(uintptr_t ctx, void *p, size_t n, unsigned int flags) {
	CURRENT(ctx);
	return CALL(cuMemHostRegister)(p, n, flags);
}
static CUresult tr_memHostUnregister(uintptr_t ctx, void *p) { CURRENT(ctx); return CALL(cuMemHostUnregister)(p); }
static CUresult tr_memHostGetDevicePointer(uintptr_t ctx, CUdeviceptr *d, void *p) {
	CURRENT(ctx);
	return CALL(cuMemHostGetDevicePointer)(d, p, 0);
}
static CUresult tr_memsetD8Async(uintptr_t ctx, CUdeviceptr p, unsigned char v, size_t n, uintptr_t s) {
	CURRENT(ctx);
	return CALL(cuMemsetD8Async)(p, v, n, (CUstream)s);
}
static CUresult tr_memcpyHtoDAsync(uintptr_t ctx, CUdeviceptr dst, const void *src, size_t n, uintptr_t s) {
	CURRENT(ctx);
	return CALL(cuMemcpyHtoDAsync)(dst, src, n, (CUstream)s);
}
static CUresult tr_memcpyDtoHAsync(uintptr_t ctx, void *dst, CUdeviceptr src, size_t n, uintptr_t s) {
	CURRENT(ctx);
	return CALL(cuMemcpyDtoHAsync)(dst, src, n, (CUstream)s);
}
static CUresult tr_memcpyDtoDAsync(uintptr_t ctx, CUdeviceptr dst, CUdeviceptr src, size_t n, uintptr_t s) {
	CURRENT(ctx);
	return CALL(cuMemcpyDtoDAsync)(dst, src, n, (CUstream)s);
}
static CUresult tr_streamCreate(uintptr_t ctx, uintptr_t *s, unsigned int flags) {
	CURRENT(ctx);
	CUstream h = NULL;
	CUresult r = CALL(cuStreamCreate)(&h, flags);
	*s = (uintptr_t)h;
	return r;
}
static CUresult tr_streamDestroy(uintptr_t ctx, uintptr_t s) { CURRENT(ctx); return CALL(cuStreamDestroy)((CUstream)s); }
static CUresult tr_streamQuery(uintptr_t ctx, uintptr_t s) { CURRENT(ctx); return CALL(cuStreamQuery)((CUstream)s); }
static CUresult tr_streamSynchronize(uintptr_t ctx, uintptr_t s) {
	CURRENT(ctx);
	return CALL(cuStreamSynchronize)((CUstream)s);
}
static CUresult tr_streamWaitEvent(uintptr_t ctx, uintptr_t s, uintptr_t e, unsigned int flags) {
	CURRENT(ctx);
	return CALL(cuStreamWaitEvent)((CUstream)s, (CUevent)e, flags);
}
static CUresult tr_eventCreate(uintptr_t ctx, uintptr_t *e, unsigned int flags) {
	CURRENT(ctx);
	CUevent h = NULL;
	CUresult r = CALL(cuEventCreate)(&h, flags);
	*e = (uintptr_t)h;
	return r;
}
static CUresult tr_eventDestroy(uintptr_t ctx, uintptr_t e) { CURRENT(ctx); return CALL(cuEventDestroy)((CUevent)e); }
static CUresult tr_eventRecord(uintptr_t ctx, uintptr_t e, uintptr_t s) {
	CURRENT(ctx);
	return CALL(cuEventRecord)((CUevent)e, (CUstream)s);
}
static CUresult tr_eventRecordWithFlags(uintptr_t ctx, uintptr_t e, uintptr_t s, unsigned int flags) {
	CURRENT(ctx);
	return OPT(cuEventRecordWithFlags, (CUevent)e, (CUstream)s, flags);
}
static CUresult tr_eventQuery(uintptr_t ctx, uintptr_t e) { CURRENT(ctx); return CALL(cuEventQuery)((CUevent)e); }
static CUresult tr_eventSynchronize(uintptr_t ctx, uintptr_t e) {
	CURRENT(ctx);
	return CALL(cuEventSynchronize)((CUevent)e);
}
static CUresult tr_eventElapsedTime(uintptr_t ctx, float *ms, uintptr_t start, uintptr_t end) {
	CURRENT(ctx);
	return CALL(cuEventElapsedTime)(ms, (CUevent)start, (CUevent)end);
}
static CUresult tr_moduleLoadData(uintptr_t ctx, uintptr_t *m, const void *image) {
	CURRENT(ctx);
	CUmodule h = NULL;
	CUresult r = CALL(cuModuleLoadData)(&h, image);
	*m = (uintptr_t)h;
	return r;
}
static CUresult tr_moduleUnload(uintptr_t ctx, uintptr_t m) { CURRENT(ctx); return CALL(cuModuleUnload)((CUmodule)m); }
static CUresult tr_moduleGetFunction(uintptr_t ctx, uintptr_t *f, uintptr_t m, const char *name) {
	CURRENT(ctx);
	CUfunction h = NULL;
	CUresult r = CALL(cuModuleGetFunction)(&h, (CUmodule)m, name);
	*f = (uintptr_t)h;
	return r;
}

// tr_launchKernel passes the driver a pointer to each 8-byte argument slot.
static CUresult tr_launchKernel(uintptr_t ctx, uintptr_t f,
		unsigned int gx, unsigned int gy, unsigned int gz,
		unsigned int bx, unsigned int by, unsigned int bz,
		unsigned int shared, uintptr_t s, unsigned long long *args, int nargs) {
	void *params[64];
	if (nargs > 64) return 1; // CUDA_ERROR_INVALID_VALUE
	for (int i = 0; i < nargs; i++) params[i] = &args[i];
	CURRENT(ctx);
	return CALL(cuLaunchKernel)((CUfunction)f, gx, gy, gz, bx, by, bz, shared, (CUstream)s,
		nargs > 0 ? params : NULL, NULL);
}

#define CAPTURE_MODE_GLOBAL 0 // CU_STREAM_CAPTURE_MODE_GLOBAL: see cuda_graph.go
#define NODE_KERNEL 0         // CU_GRAPH_NODE_TYPE_KERNEL

static CUresult tr_streamBeginCapture(uintptr_t ctx, uintptr_t s) {
	CURRENT(ctx);
	return OPT(cuStreamBeginCapture, (CUstream)s, CAPTURE_MODE_GLOBAL);
}
static CUresult tr_streamEndCapture(uintptr_t ctx, uintptr_t s, uintptr_t *g) {
	CURRENT(ctx);
	CUgraph h = NULL;
	CUresult r = OPT(cuStreamEndCapture, (CUstream)s, &h);
	*g = (uintptr_t)h;
	return r;
}
static CUresult tr_graphDestroy(uintptr_t ctx, uintptr_t g) { CURRENT(ctx); return OPT(cuGraphDestroy, (CUgraph)g); }

// tr_knode is a kernel node as Go reads it.
typedef struct {
	uintptr_t node, func;
	unsigned int dim[7]; // grid x, y, z, block x, y, z, shared memory
	void **params;
} tr_knode;

// tr_graphKernelNodes sets *n to the number of nodes of g when out is NULL,
// and otherwise fills out (of *n entries) with its kernel nodes and sets *n
// to their number.
static CUresult tr_graphKernelNodes(uintptr_t ctx, uintptr_t g, tr_knode *out, size_t *n) {
	CURRENT(ctx);
	if (out == NULL) return OPT(cuGraphGetNodes, (CUgraph)g, NULL, n);
	size_t count = *n;
	CUgraphNode *nodes = malloc((count > 0 ? count : 1) * sizeof *nodes);
	if (nodes == NULL) return 2; // CUDA_ERROR_OUT_OF_MEMORY
	CUresult r = OPT(cuGraphGetNodes, (CUgraph)g, nodes, &count);
	size_t k = 0;
	for (size_t i = 0; r == 0 && i < count && i < *n; i++) {
		int type = -1;
		r = OPT(cuGraphNodeGetType, nodes[i], &type);
		if (r != 0 || type != NODE_KERNEL) continue;
		KernelNodeParams p;
		memset(&p, 0, sizeof p);
		r = OPT(cuGraphKernelNodeGetParams, nodes[i], &p);
		if (r != 0) break;
		tr_knode *o = &out[k++];
		o->node = (uintptr_t)nodes[i];
		o->func = (uintptr_t)p.func;
		unsigned int dim[7] = {p.gridDimX, p.gridDimY, p.gridDimZ, p.blockDimX, p.blockDimY, p.blockDimZ, p.sharedMemBytes};
		memcpy(o->dim, dim, sizeof dim);
		o->params = p.kernelParams;
	}
	free(nodes);
	*n = k;
	return r;
}
static CUresult tr_graphInstantiate(uintptr_t ctx, uintptr_t g, uintptr_t *x) {
	CURRENT(ctx);
	CUgraphExec h = NULL;
	CUresult r = OPT(cuGraphInstantiateWithFlags, &h, (CUgraph)g, 0);
	*x = (uintptr_t)h;
	return r;
}
static CUresult tr_graphExecDestroy(uintptr_t ctx, uintptr_t x) {
	CURRENT(ctx);
	return OPT(cuGraphExecDestroy, (CUgraphExec)x);
}
static CUresult tr_graphLaunch(uintptr_t ctx, uintptr_t x, uintptr_t s) {
	CURRENT(ctx);
	return OPT(cuGraphLaunch, (CUgraphExec)x, (CUstream)s);
}
static CUresult tr_graphExecKernelNodeSetParams(uintptr_t ctx, uintptr_t x, uintptr_t node, uintptr_t f,
		unsigned int gx, unsigned int gy, unsigned int gz,
		unsigned int bx, unsigned int by, unsigned int bz,
		unsigned int shared, unsigned long long *args, int nargs) {
	void *params[64];
	if (nargs > 64) return 1; // CUDA_ERROR_INVALID_VALUE
	for (int i = 0; i < nargs; i++) params[i] = &args[i];
	KernelNodeParams p;
	memset(&p, 0, sizeof p);
	p.func = (CUfunction)f;
	p.gridDimX = gx, p.gridDimY = gy, p.gridDimZ = gz;
	p.blockDimX = bx, p.blockDimY = by, p.blockDimZ = bz;
	p.sharedMemBytes = shared;
	p.kernelParams = nargs > 0 ? params : NULL;
	CURRENT(ctx);
	return OPT(cuGraphExecKernelNodeSetParams, (CUgraphExec)x, (CUgraphNode)node, &p);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// driverLibraries are the names the driver goes by, the versioned one first.
var driverLibraries = []string{"libcuda.so.1", "libcuda.so"}

// driverSymbols names each function of the C table, newest version first.
var driverSymbols = [C.DRV_COUNT][]string{
	C.DRV_cuInit:                    {"cuInit"},
	C.DRV_cuDriverGetVersion:        {"cuDriverGetVersion"},
	C.DRV_cuGetErrorName:            {"cuGetErrorName"},
	C.DRV_cuGetErrorString:          {"cuGetErrorString"},
	C.DRV_cuDeviceGet:               {"cuDeviceGet"},
	C.DRV_cuDeviceGetName:           {"cuDeviceGetName"},
	C.DRV_cuDeviceGetAttribute:      {"cuDeviceGetAttribute"},
	C.DRV_cuDeviceTotalMem:          {"cuDeviceTotalMem_v2"},
	C.DRV_cuDevicePrimaryCtxRetain:  {"cuDevicePrimaryCtxRetain"},
	C.DRV_cuDevicePrimaryCtxRelease: {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"},
	C.DRV_cuCtxSetCurrent:           {"cuCtxSetCurrent"},
	C.DRV_cuCtxSynchronize:          {"cuCtxSynchronize"},
	C.DRV_cuMemGetInfo:              {"cuMemGetInfo_v2"},
	C.DRV_cuMemAlloc:                {"cuMemAlloc_v2"},
	C.DRV_cuMemFree:                 {"cuMemFree_v2"},
	C.DRV_cuMemHostAlloc:            {"cuMemHostAlloc"},
	C.DRV_cuMemFreeHost:             {"cuMemFreeHost"},
	C.DRV_cuMemHostRegister:         {"cuMemHostRegister_v2", "cuMemHostRegister"},
	C.DRV_cuMemHostUnregister:       {"cuMemHostUnregister"},
	C.DRV_cuMemHostGetDevicePointer: {"cuMemHostGetDevicePointer_v2"},
	C.DRV_cuMemsetD8Async:           {"cuMemsetD8Async"},
	C.DRV_cuMemcpyHtoDAsync:         {"cuMemcpyHtoDAsync_v2"},
	C.DRV_cuMemcpyDtoHAsync:         {"cuMemcpyDtoHAsync_v2"},
	C.DRV_cuMemcpyDtoDAsync:         {"cuMemcpyDtoDAsync_v2"},
	C.DRV_cuStreamCreate:            {"cuStreamCreate"},
	C.DRV_cuStreamDestroy:           {"cuStreamDestroy_v2"},
	C.DRV_cuStreamQuery:             {"cuStreamQuery"},
	C.DRV_cuStreamSynchronize:       {"cuStreamSynchronize"},
	C.DRV_cuStreamWaitEvent:         {"cuStreamWaitEvent"},
	C.DRV_cuEventCreate:             {"cuEventCreate"},
	C.DRV_cuEventDestroy:            {"cuEventDestroy_v2"},
	C.DRV_cuEventRecord:             {"cuEventRecord"},
	C.DRV_cuEventQuery:              {"cuEventQuery"},
	C.DRV_cuEventSynchronize:        {"cuEventSynchronize"},
	C.DRV_cuEventElapsedTime:        {"cuEventElapsedTime_v2", "cuEventElapsedTime"},
	C.DRV_cuModuleLoadData:          {"cuModuleLoadData"},
	C.DRV_cuModuleUnload:            {"cuModuleUnload"},
	C.DRV_cuModuleGetFunction:       {"cuModuleGetFunction"},
	C.DRV_cuLaunchKernel:            {"cuLaunchKernel"},
}

// driverOptionalSymbols names each optional function, newest version first:
// the graph API, which a driver may lack (calls then fail with
// CUDA_ERROR_NOT_SUPPORTED, ErrNotSupported).
var driverOptionalSymbols = [C.OPT_COUNT][]string{
	C.OPT_cuStreamBeginCapture:           {"cuStreamBeginCapture_v2"},
	C.OPT_cuStreamEndCapture:             {"cuStreamEndCapture"},
	C.OPT_cuGraphDestroy:                 {"cuGraphDestroy"},
	C.OPT_cuGraphGetNodes:                {"cuGraphGetNodes"},
	C.OPT_cuGraphNodeGetType:             {"cuGraphNodeGetType"},
	C.OPT_cuGraphKernelNodeGetParams:     {"cuGraphKernelNodeGetParams_v2", "cuGraphKernelNodeGetParams"},
	C.OPT_cuGraphInstantiateWithFlags:    {"cuGraphInstantiateWithFlags"},
	C.OPT_cuGraphExecDestroy:             {"cuGraphExecDestroy"},
	C.OPT_cuGraphLaunch:                  {"cuGraphLaunch"},
	C.OPT_cuGraphExecKernelNodeSetParams: {"cuGraphExecKernelNodeSetParams_v2", "cuGraphExecKernelNodeSetParams"},
	C.OPT_cuEventRecordWithFlags:         {"cuEventRecordWithFlags"},
}

// cgoDriver is the driver loaded with dlopen.
type cgoDriver struct{ lib string }

var loadDriverOnce = sync.OnceValues(func() (driver, error) {
	h, lib, err := dlopenFirst(driverLibraries, ErrNoDriver)
	if err != nil {
		return nil, err
	}
	if err := bindSymbols(h, driverSymbols[:], func(i int, p unsafe.Pointer) { C.drv_set(C.int(i), p) }); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoDriver, lib, err)
	}
	// What is missing of the optional table stays NULL: OPT answers for it.
	_ = bindSymbols(h, driverOptionalSymbols[:], func(i int, p unsafe.Pointer) { C.opt_set(C.int(i), p) })
	d := &cgoDriver{lib: lib}
	if err := d.check("cuInit", C.tr_init()); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", lib, err)
	}
	return d, nil
})

// loadDriver loads the driver on first use and initialises it.
func loadDriver() (driver, error) { return loadDriverOnce() }

func (d *cgoDriver) check(call string, r C.CUresult) error {
	if r == 0 {
		return nil
	}
	var name, msg string
	if s := C.tr_errorName(r); s != nil {
		name = C.GoString(s)
	}
	if s := C.tr_errorString(r); s != nil {
		msg = C.GoString(s)
	}
	return resultError(call, Result(r), name, msg)
}

// ready turns CUDA_ERROR_NOT_READY into false.
func (d *cgoDriver) ready(call string, r C.CUresult) (bool, error) {
	if Result(r) == resultNotReady {
		return false, nil
	}
	return true, d.check(call, r)
}

func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func (d *cgoDriver) driverVersion() (int, error) {
	var v C.int
	err := d.check("cuDriverGetVersion", C.tr_driverGetVersion(&v))
	return int(v), err
}

func (d *cgoDriver) deviceGet(ordinal int) (cuDevice, error) {
	var dev C.CUdevice
	err := d.check("cuDeviceGet", C.tr_deviceGet(&dev, C.int(ordinal)))
	return cuDevice(dev), err
}

func (d *cgoDriver) deviceName(dev cuDevice) (string, error) {
	var buf [256]C.char
	if err := d.check("cuDeviceGetName", C.tr_deviceGetName(&buf[0], C.int(len(buf)), C.CUdevice(dev))); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

func (d *cgoDriver) deviceAttribute(dev cuDevice, a deviceAttr) (int, error) {
	var v C.int
	err := d.check("cuDeviceGetAttribute", C.tr_deviceGetAttribute(&v, C.int(a), C.CUdevice(dev)))
	return int(v), err
}

func (d *cgoDriver) deviceTotalMem(dev cuDevice) (int64, error) {
	var n C.size_t
	err := d.check("cuDeviceTotalMem_v2", C.tr_deviceTotalMem(&n, C.CUdevice(dev)))
	return int64(n), err
}

func (d *cgoDriver) primaryCtxRetain(dev cuDevice) (cuContext, error) {
	var c C.uintptr_t
	err := d.check("cuDevicePrimaryCtxRetain", C.tr_primaryCtxRetain(&c, C.CUdevice(dev)))
	return cuContext(c), err
}

func (d *cgoDriver) primaryCtxRelease(dev cuDevice) error {
	return d.check("cuDevicePrimaryCtxRelease", C.tr_primaryCtxRelease(C.CUdevice(dev)))
}

func (d *cgoDriver) ctxSynchronize(c cuContext) error {
	return d.check("cuCtxSynchronize", C.tr_ctxSynchronize(C.uintptr_t(c)))
}

func (d *cgoDriver) memGetInfo(c cuContext) (free, total int64, err error) {
	var f, t C.size_t
	err = d.check("cuMemGetInfo_v2", C.tr_memGetInfo(C.uintptr_t(c), &f, &t))
	return int64(f), int64(t), err
}

func (d *cgoDriver) memAlloc(c cuContext, size int64) (uint64, error) {
	var p C.CUdeviceptr
	err := d.check("cuMemAlloc_v2", C.tr_memAlloc(C.uintptr_t(c), &p, C.size_t(size)))
	return uint64(p), err
}

func (d *cgoDriver) memFree(c cuContext, p uint64) error {
	return d.check("cuMemFree_v2", C.tr_memFree(C.uintptr_t(c), C.CUdeviceptr(p)))
}

func (d *cgoDriver) memHostAlloc(c cuContext, size int64, flags uint32) ([]byte, error) {
	var p unsafe.Pointer
	if err := d.check("cuMemHostAlloc", C.tr_memHostAlloc(C.uintptr_t(c), &p, C.size_t(size), C.uint(flags))); err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), size), nil
}

func (d *cgoDriver) memFreeHost(c cuContext, mem []byte) error {
	return d.check("cuMemFreeHost", C.tr_memFreeHost(C.uintptr_t(c), bytesPtr(mem)))
}

func (d *cgoDriver) memHostRegister(c cuContext, mem []byte, flags uint32) error {
	return d.check("cuMemHostRegister_v2",
		C.tr_memHostRegister(C.uintptr_t(c), bytesPtr(mem), C.size_t(len(mem)), C.uint(flags)))
}

func (d *cgoDriver) memHostUnregister(c cuContext, mem []byte) error {
	return d.check("cuMemHostUnregister", C.tr_memHostUnregister(C.uintptr_t(c), bytesPtr(mem)))
}

func (d *cgoDriver) memHostGetDevicePointer(c cuContext, mem []byte) (uint64, error) {
	var p C.CUdeviceptr
	err := d.check("cuMemHostGetDevicePointer_v2", C.tr_memHostGetDevicePointer(C.uintptr_t(c), &p, bytesPtr(mem)))
	return uint64(p), err
}

func (d *cgoDriver) memsetD8Async(c cuContext, p uint64, value byte, n int64, s cuStream) error {
	return d.check("cuMemsetD8Async",
		C.tr_memsetD8Async(C.uintptr_t(c), C.CUdeviceptr(p), C.uchar(value), C.size_t(n), C.uintptr_t(s)))
}

func (d *cgoDriver) memcpyHtoDAsync(c cuContext, dst uint64, src []byte, s cuStream) error {
	return d.check("cuMemcpyHtoDAsync_v2",
		C.tr_memcpyHtoDAsync(C.uintptr_t(c), C.CUdeviceptr(dst), bytesPtr(src), C.size_t(len(src)), C.uintptr_t(s)))
}

func (d *cgoDriver) memcpyDtoHAsync(c cuContext, dst []byte, src uint64, s cuStream) error {
	return d.check("cuMemcpyDtoHAsync_v2",
		C.tr_memcpyDtoHAsync(C.uintptr_t(c), bytesPtr(dst), C.CUdeviceptr(src), C.size_t(len(dst)), C.uintptr_t(s)))
}

func (d *cgoDriver) memcpyDtoDAsync(c cuContext, dst, src uint64, n int64, s cuStream) error {
	return d.check("cuMemcpyDtoDAsync_v2",
		C.tr_memcpyDtoDAsync(C.uintptr_t(c), C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(n), C.uintptr_t(s)))
}

func (d *cgoDriver) streamCreate(c cuContext, flags uint32) (cuStream, error) {
	var s C.uintptr_t
	err := d.check("cuStreamCreate", C.tr_streamCreate(C.uintptr_t(c), &s, C.uint(flags)))
	return cuStream(s), err
}

func (d *cgoDriver) streamDestroy(c cuContext, s cuStream) error {
	return d.check("cuStreamDestroy_v2", C.tr_streamDestroy(C.uintptr_t(c), C.uintptr_t(s)))
}

func (d *cgoDriver) streamQuery(c cuContext, s cuStream) (bool, error) {
	return d.ready("cuStreamQuery", C.tr_streamQuery(C.uintptr_t(c), C.uintptr_t(s)))
}

func (d *cgoDriver) streamSynchronize(c cuContext, s cuStream) error {
	return d.check("cuStreamSynchronize", C.tr_streamSynchronize(C.uintptr_t(c), C.uintptr_t(s)))
}

func (d *cgoDriver) streamWaitEvent(c cuContext, s cuStream, e cuEvent, flags uint32) error {
	return d.check("cuStreamWaitEvent", C.tr_streamWaitEvent(C.uintptr_t(c), C.uintptr_t(s), C.uintptr_t(e), C.uint(flags)))
}

func (d *cgoDriver) eventCreate(c cuContext, flags uint32) (cuEvent, error) {
	var e C.uintptr_t
	err := d.check("cuEventCreate", C.tr_eventCreate(C.uintptr_t(c), &e, C.uint(flags)))
	return cuEvent(e), err
}

func (d *cgoDriver) eventDestroy(c cuContext, e cuEvent) error {
	return d.check("cuEventDestroy_v2", C.tr_eventDestroy(C.uintptr_t(c), C.uintptr_t(e)))
}

func (d *cgoDriver) eventRecord(c cuContext, e cuEvent, s cuStream) error {
	return d.check("cuEventRecord", C.tr_eventRecord(C.uintptr_t(c), C.uintptr_t(e), C.uintptr_t(s)))
}

func (d *cgoDriver) eventQuery(c cuContext, e cuEvent) (bool, error) {
	return d.ready("cuEventQuery", C.tr_eventQuery(C.uintptr_t(c), C.uintptr_t(e)))
}

func (d *cgoDriver) eventSynchronize(c cuContext, e cuEvent) error {
	return d.check("cuEventSynchronize", C.tr_eventSynchronize(C.uintptr_t(c), C.uintptr_t(e)))
}

func (d *cgoDriver) eventElapsedTime(c cuContext, start, end cuEvent) (float32, error) {
	var ms C.float
	err := d.check("cuEventElapsedTime", C.tr_eventElapsedTime(C.uintptr_t(c), &ms, C.uintptr_t(start), C.uintptr_t(end)))
	return float32(ms), err
}

func (d *cgoDriver) moduleLoadData(c cuContext, image []byte) (cuModule, error) {
	var m C.uintptr_t
	err := d.check("cuModuleLoadData", C.tr_moduleLoadData(C.uintptr_t(c), &m, bytesPtr(image)))
	return cuModule(m), err
}

func (d *cgoDriver) moduleUnload(c cuContext, m cuModule) error {
	return d.check("cuModuleUnload", C.tr_moduleUnload(C.uintptr_t(c), C.uintptr_t(m)))
}

func (d *cgoDriver) moduleGetFunction(c cuContext, m cuModule, name string) (cuFunction, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var f C.uintptr_t
	err := d.check("cuModuleGetFunction", C.tr_moduleGetFunction(C.uintptr_t(c), &f, C.uintptr_t(m), cname))
	return cuFunction(f), err
}

func (d *cgoDriver) launchKernel(c cuContext, f cuFunction, cfg LaunchConfig, s cuStream, params []uint64) error {
	var args *C.ulonglong
	if len(params) > 0 {
		args = (*C.ulonglong)(unsafe.Pointer(&params[0]))
	}
	return d.check("cuLaunchKernel", C.tr_launchKernel(C.uintptr_t(c), C.uintptr_t(f),
		C.uint(cfg.Grid.X), C.uint(cfg.Grid.Y), C.uint(cfg.Grid.Z),
		C.uint(cfg.Block.X), C.uint(cfg.Block.Y), C.uint(cfg.Block.Z),
		C.uint(cfg.SharedMem), C.uintptr_t(s), args, C.int(len(params))))
}

func (d *cgoDriver) eventRecordWithFlags(c cuContext, e cuEvent, s cuStream, flags uint32) error {
	return d.check("cuEventRecordWithFlags",
		C.tr_eventRecordWithFlags(C.uintptr_t(c), C.uintptr_t(e), C.uintptr_t(s), C.uint(flags)))
}

func (d *cgoDriver) streamBeginCapture(c cuContext, s cuStream) error {
	return d.check("cuStreamBeginCapture_v2", C.tr_streamBeginCapture(C.uintptr_t(c), C.uintptr_t(s)))
}

func (d *cgoDriver) streamEndCapture(c cuContext, s cuStream) (cuGraph, error) {
	var g C.uintptr_t
	err := d.check("cuStreamEndCapture", C.tr_streamEndCapture(C.uintptr_t(c), C.uintptr_t(s), &g))
	return cuGraph(g), err
}

func (d *cgoDriver) graphDestroy(c cuContext, g cuGraph) error {
	return d.check("cuGraphDestroy", C.tr_graphDestroy(C.uintptr_t(c), C.uintptr_t(g)))
}

func (d *cgoDriver) graphKernelNodes(c cuContext, g cuGraph) ([]kernelNode, error) {
	var n C.size_t
	if err := d.check("cuGraphGetNodes", C.tr_graphKernelNodes(C.uintptr_t(c), C.uintptr_t(g), nil, &n)); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]C.tr_knode, n)
	if err := d.check("cuGraphKernelNodeGetParams", C.tr_graphKernelNodes(C.uintptr_t(c), C.uintptr_t(g), &out[0], &n)); err != nil {
		return nil, err
	}
	nodes := make([]kernelNode, n)
	for i, o := range out[:n] {
		nodes[i] = kernelNode{
			h: cuGraphNode(o.node),
			f: cuFunction(o._func),
			cfg: LaunchConfig{
				Grid:      Dim3{X: uint32(o.dim[0]), Y: uint32(o.dim[1]), Z: uint32(o.dim[2])},
				Block:     Dim3{X: uint32(o.dim[3]), Y: uint32(o.dim[4]), Z: uint32(o.dim[5])},
				SharedMem: uint32(o.dim[6]),
			},
			params: unsafe.Pointer(o.params),
		}
	}
	return nodes, nil
}

func (d *cgoDriver) graphInstantiate(c cuContext, g cuGraph) (cuGraphExec, error) {
	var x C.uintptr_t
	err := d.check("cuGraphInstantiateWithFlags", C.tr_graphInstantiate(C.uintptr_t(c), C.uintptr_t(g), &x))
	return cuGraphExec(x), err
}

func (d *cgoDriver) graphExecDestroy(c cuContext, x cuGraphExec) error {
	return d.check("cuGraphExecDestroy", C.tr_graphExecDestroy(C.uintptr_t(c), C.uintptr_t(x)))
}

func (d *cgoDriver) graphLaunch(c cuContext, x cuGraphExec, s cuStream) error {
	return d.check("cuGraphLaunch", C.tr_graphLaunch(C.uintptr_t(c), C.uintptr_t(x), C.uintptr_t(s)))
}

func (d *cgoDriver) graphExecKernelNodeSetParams(c cuContext, x cuGraphExec, n cuGraphNode, f cuFunction, cfg LaunchConfig, params []uint64) error {
	var args *C.ulonglong
	if len(params) > 0 {
		args = (*C.ulonglong)(unsafe.Pointer(&params[0]))
	}
	return d.check("cuGraphExecKernelNodeSetParams", C.tr_graphExecKernelNodeSetParams(C.uintptr_t(c), C.uintptr_t(x),
		C.uintptr_t(n), C.uintptr_t(f),
		C.uint(cfg.Grid.X), C.uint(cfg.Grid.Y), C.uint(cfg.Grid.Z),
		C.uint(cfg.Block.X), C.uint(cfg.Block.Y), C.uint(cfg.Block.Z),
		C.uint(cfg.SharedMem), args, C.int(len(params))))
}
