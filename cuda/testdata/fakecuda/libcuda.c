// A stand-in for libcuda.so.1, for testing the cgo path without a GPU:
// device memory is host memory, work runs when it is queued, and the test
// kernels of ../kernels.cu run in C. Like the real driver, every call that
// needs a context fails with CUDA_ERROR_INVALID_CONTEXT (201) on a thread
// where the primary context is not current. Some functions exist only under
// their older names, to exercise the loader's fallbacks.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

#define TOTAL (1ull << 30)
#define RESERVED (64ull << 20) // what the "driver" keeps for itself

static int initialized;
static int retained;
static char primary; // its address is the context handle
static __thread void *current;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static size_t used;

#define NEED_CONTEXT() do { \
	if (!initialized) return 3; \
	if (current != &primary || retained == 0) return 201; \
} while (0)

CUresult cuInit(unsigned int flags) { initialized = 1; return 0; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }

CUresult cuGetErrorName(CUresult r, const char **s) {
	switch (r) {
	case 1: *s = "CUDA_ERROR_INVALID_VALUE"; break;
	case 2: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
	case 201: *s = "CUDA_ERROR_INVALID_CONTEXT"; break;
	case 400: *s = "CUDA_ERROR_INVALID_HANDLE"; break;
	case 500: *s = "CUDA_ERROR_NOT_FOUND"; break;
	case 712: *s = "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED"; break;
	case 713: *s = "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED"; break;
	default: return 1;
	}
	return 0;
}
CUresult cuGetErrorString(CUresult r, const char **s) { *s = "reported by the fake driver"; return 0; }

CUresult cuDeviceGet(CUdevice *d, int ordinal) {
	if (!initialized) return 3;
	if (ordinal != 0) return 101;
	*d = 0;
	return 0;
}
CUresult cuDeviceGetName(char *name, int n, CUdevice d) { strncpy(name, "Fake CUDA library", n); return 0; }
CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d) {
	if (attr == 75) *v = 9;
	else if (attr == 76) *v = 0;
	else return 1;
	return 0;
}
CUresult cuDeviceTotalMem_v2(size_t *n, CUdevice d) { *n = TOTAL; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **c, CUdevice d) {
	pthread_mutex_lock(&mu);
	retained++;
	pthread_mutex_unlock(&mu);
	*c = &primary;
	return 0;
}
CUresult cuDevicePrimaryCtxRelease(CUdevice d) { // the v1 name only
	pthread_mutex_lock(&mu);
	CUresult r = retained > 0 ? 0 : 201;
	if (retained > 0) retained--;
	pthread_mutex_unlock(&mu);
	return r;
}
CUresult cuCtxSetCurrent(void *c) { current = c; return 0; }
CUresult cuCtxSynchronize(void) { NEED_CONTEXT(); return 0; }

CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
	NEED_CONTEXT();
	pthread_mutex_lock(&mu);
	*free = TOTAL - RESERVED - used;
	pthread_mutex_unlock(&mu);
	*total = TOTAL;
	return 0;
}

// Allocations carry their size in front.
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
	NEED_CONTEXT();
	pthread_mutex_lock(&mu);
	int fits = n <= TOTAL - RESERVED - used;
	if (fits) used += n;
	pthread_mutex_unlock(&mu);
	if (!fits) return 2;
	size_t *m = malloc(n + 16);
	m[0] = n;
	*p = (CUdeviceptr)(uintptr_t)(m + 2);
	return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
	NEED_CONTEXT();
	size_t *m = (size_t *)(uintptr_t)p - 2;
	pthread_mutex_lock(&mu);
	used -= m[0];
	pthread_mutex_unlock(&mu);
	free(m);
	return 0;
}
CUresult cuMemHostAlloc(void **p, size_t n, unsigned int flags) { NEED_CONTEXT(); *p = malloc(n); return 0; }
CUresult cuMemFreeHost(void *p) { NEED_CONTEXT(); free(p); return 0; }

static struct { char *start; size_t n; } regs[256];

CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned int flags) {
	NEED_CONTEXT();
	char *s = p;
	CUresult r = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < 256; i++)
		if (regs[i].start && s < regs[i].start + regs[i].n && regs[i].start < s + n) r = 712;
	for (int i = 0; r == 0 && i < 256; i++)
		if (!regs[i].start) {
			regs[i].start = s, regs[i].n = n;
			break;
		}
	pthread_mutex_unlock(&mu);
	return r;
}
CUresult cuMemHostUnregister(void *p) {
	NEED_CONTEXT();
	CUresult r = 713;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < 256; i++)
		if (regs[i].start == p) regs[i].start = NULL, r = 0;
	pthread_mutex_unlock(&mu);
	return r;
}
CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *d, void *p, unsigned int flags) {
	NEED_CONTEXT();
	*d = (CUdeviceptr)(uintptr_t)p;
	return 0;
}

CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void *s) {
	NEED_CONTEXT();
	memset((void *)(uintptr_t)p, v, n);
	return 0;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, void *st) {
	NEED_CONTEXT();
	memcpy((void *)(uintptr_t)d, s, n);
	return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, void *st) {
	NEED_CONTEXT();
	memcpy(d, (void *)(uintptr_t)s, n);
	return 0;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *st) {
	NEED_CONTEXT();
	memmove((void *)(uintptr_t)d, (void *)(uintptr_t)s, n);
	return 0;
}

CUresult cuStreamCreate(void **s, unsigned int flags) { NEED_CONTEXT(); *s = malloc(1); return 0; }
CUresult cuStreamDestroy_v2(void *s) { NEED_CONTEXT(); free(s); return 0; }
CUresult cuStreamQuery(void *s) { NEED_CONTEXT(); return 0; }
CUresult cuStreamSynchronize(void *s) { NEED_CONTEXT(); return 0; }
CUresult cuStreamWaitEvent(void *s, void *e, unsigned int flags) { NEED_CONTEXT(); return 0; }

struct event { unsigned int flags; int recorded; float ms; };
static float clock_ms;

CUresult cuEventCreate(void **e, unsigned int flags) {
	NEED_CONTEXT();
	struct event *ev = calloc(1, sizeof *ev);
	ev->flags = flags;
	*e = ev;
	return 0;
}
CUresult cuEventDestroy_v2(void *e) { NEED_CONTEXT(); free(e); return 0; }
CUresult cuEventRecord(void *e, void *s) {
	NEED_CONTEXT();
	struct event *ev = e;
	pthread_mutex_lock(&mu);
	ev->recorded = 1;
	ev->ms = clock_ms += 1;
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuEventQuery(void *e) { NEED_CONTEXT(); return 0; }
CUresult cuEventSynchronize(void *e) { NEED_CONTEXT(); return 0; }
CUresult cuEventElapsedTime(float *ms, void *start, void *end) { // the v1 name only
	NEED_CONTEXT();
	struct event *a = start, *b = end;
	if (!a->recorded || !b->recorded || (a->flags & 2) || (b->flags & 2)) return 400;
	*ms = b->ms - a->ms;
	return 0;
}

struct function { char name[64]; };

CUresult cuModuleLoadData(void **m, const void *image) { NEED_CONTEXT(); *m = strdup(image); return 0; }
CUresult cuModuleUnload(void *m) { NEED_CONTEXT(); free(m); return 0; }
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
	NEED_CONTEXT();
	char decl[80];
	snprintf(decl, sizeof decl, " %s(", name);
	if (!strstr(m, decl)) return 500;
	struct function *fn = calloc(1, sizeof *fn);
	strncpy(fn->name, name, sizeof fn->name - 1);
	*f = fn;
	return 0;
}

#define ARG(type, i) (*(type *)params[i])

CUresult cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz,
		unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared, void *s,
		void **params, void **extra) {
	NEED_CONTEXT();
	const char *name = ((struct function *)f)->name;
	unsigned long long threads = (unsigned long long)gx * gy * gz * bx * by * bz;
	if (strcmp(name, "vadd") == 0) {
		float *a = ARG(float *, 0), *b = ARG(float *, 1), *c = ARG(float *, 2);
		for (unsigned long long i = 0; i < ARG(unsigned int, 3) && i < threads; i++) c[i] = a[i] + b[i];
	} else if (strcmp(name, "axpy") == 0) {
		double a = ARG(double, 0), *x = ARG(double *, 1), *y = ARG(double *, 2);
		for (long long i = 0; i < ARG(long long, 3) && i < (long long)threads; i++) y[i] += a * x[i];
	} else if (strcmp(name, "addk") == 0) {
		int *x = ARG(int *, 0), k = ARG(int, 1);
		for (unsigned long long i = 0; i < ARG(unsigned long long, 2) && i < threads; i++) x[i] += k;
	} else if (strcmp(name, "bytesum") == 0) {
		unsigned char *host = ARG(unsigned char *, 0);
		unsigned int *out = ARG(unsigned int *, 1), sum = 0;
		for (unsigned long long i = 0; i < ARG(unsigned int, 2) && i < threads; i++) sum += host[i];
		__atomic_fetch_add(out, sum, __ATOMIC_SEQ_CST);
	}
	return 0;
}
