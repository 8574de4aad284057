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

// A graph is its nodes in capture order; a stream capturing appends to one
// instead of running the work.
enum { N_MEMSET, N_COPY, N_KERNEL, N_RECORD, N_WAIT };
struct node {
	int type;
	void *dst, *src; size_t n; unsigned char v;    // memset, copies
	void *f; unsigned int dim[7]; unsigned long long params[64]; int nparams; // kernels
	void *ptrs[64]; // &params[i], as cuGraphKernelNodeGetParams hands them out
	void *event;
};
struct graph { struct node *nodes; int n; };
struct stream { struct graph *capture; };

#define CAPTURING(s) ((s) != NULL && ((struct stream *)(s))->capture != NULL)

static struct node *add_node(void *s, int type) {
	struct graph *g = ((struct stream *)s)->capture;
	g->nodes = realloc(g->nodes, (g->n + 1) * sizeof *g->nodes);
	struct node *nd = &g->nodes[g->n++];
	memset(nd, 0, sizeof *nd);
	nd->type = type;
	return nd;
}

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
	if (CAPTURING(s)) {
		struct node *nd = add_node(s, N_MEMSET);
		nd->dst = (void *)(uintptr_t)p, nd->n = n, nd->v = v;
		return 0;
	}
	memset((void *)(uintptr_t)p, v, n);
	return 0;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, void *st) {
	NEED_CONTEXT();
	if (CAPTURING(st)) {
		struct node *nd = add_node(st, N_COPY);
		nd->dst = (void *)(uintptr_t)d, nd->src = (void *)s, nd->n = n;
		return 0;
	}
	memcpy((void *)(uintptr_t)d, s, n);
	return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, void *st) {
	NEED_CONTEXT();
	if (CAPTURING(st)) {
		struct node *nd = add_node(st, N_COPY);
		nd->dst = d, nd->src = (void *)(uintptr_t)s, nd->n = n;
		return 0;
	}
	memcpy(d, (void *)(uintptr_t)s, n);
	return 0;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *st) {
	NEED_CONTEXT();
	if (CAPTURING(st)) {
		struct node *nd = add_node(st, N_COPY);
		nd->dst = (void *)(uintptr_t)d, nd->src = (void *)(uintptr_t)s, nd->n = n;
		return 0;
	}
	memmove((void *)(uintptr_t)d, (void *)(uintptr_t)s, n);
	return 0;
}

CUresult cuStreamCreate(void **s, unsigned int flags) { NEED_CONTEXT(); *s = calloc(1, sizeof(struct stream)); return 0; }
CUresult cuStreamDestroy_v2(void *s) { NEED_CONTEXT(); free(s); return 0; }
CUresult cuStreamQuery(void *s) { NEED_CONTEXT(); return CAPTURING(s) ? 900 : 0; }
CUresult cuStreamSynchronize(void *s) { NEED_CONTEXT(); return CAPTURING(s) ? 900 : 0; }
CUresult cuStreamWaitEvent(void *s, void *e, unsigned int flags) {
	NEED_CONTEXT();
	if (CAPTURING(s)) {
		if (flags != 1) return 906; // only CU_EVENT_WAIT_EXTERNAL makes a node here
		add_node(s, N_WAIT)->event = e;
	}
	return 0;
}

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
static void record(struct event *ev) {
	pthread_mutex_lock(&mu);
	ev->recorded = 1;
	ev->ms = clock_ms += 1;
	pthread_mutex_unlock(&mu);
}
CUresult cuEventRecordWithFlags(void *e, void *s, unsigned int flags) {
	NEED_CONTEXT();
	if (CAPTURING(s)) {
		if (flags != 1) return 900; // only CU_EVENT_RECORD_EXTERNAL makes a node
		add_node(s, N_RECORD)->event = e;
		return 0;
	}
	record(e);
	return 0;
}
CUresult cuEventRecord(void *e, void *s) {
	NEED_CONTEXT();
	if (CAPTURING(s)) return 900;
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

// nparams is the number of parameters of each test kernel.
static int nparams(const char *name) {
	return strcmp(name, "vadd") == 0 || strcmp(name, "axpy") == 0 ? 4 : 3;
}

static void run_kernel(void *f, unsigned long long threads, void **params);

CUresult cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz,
		unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared, void *s,
		void **params, void **extra) {
	NEED_CONTEXT();
	if (CAPTURING(s)) {
		struct node *nd = add_node(s, N_KERNEL);
		nd->f = f;
		unsigned int dim[7] = {gx, gy, gz, bx, by, bz, shared};
		memcpy(nd->dim, dim, sizeof dim);
		nd->nparams = nparams(((struct function *)f)->name);
		for (int i = 0; i < nd->nparams; i++) memcpy(&nd->params[i], params[i], 8);
		return 0;
	}
	run_kernel(f, (unsigned long long)gx * gy * gz * bx * by * bz, params);
	return 0;
}

static void run_kernel(void *f, unsigned long long threads, void **params) {
	const char *name = ((struct function *)f)->name;
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
}

CUresult cuStreamBeginCapture_v2(void *s, int mode) {
	NEED_CONTEXT();
	if (mode != 0) return 1; // the package captures in global mode
	if (CAPTURING(s)) return 900;
	((struct stream *)s)->capture = calloc(1, sizeof(struct graph));
	return 0;
}
CUresult cuStreamEndCapture(void *s, void **g) {
	NEED_CONTEXT();
	if (!CAPTURING(s)) return 903;
	*g = ((struct stream *)s)->capture;
	((struct stream *)s)->capture = NULL;
	return 0;
}
CUresult cuGraphDestroy(void *g) {
	NEED_CONTEXT();
	free(((struct graph *)g)->nodes);
	free(g);
	return 0;
}
// Node handles are pointers to the graph's nodes.
CUresult cuGraphGetNodes(void *g, void **nodes, size_t *n) {
	NEED_CONTEXT();
	struct graph *gr = g;
	if (nodes != NULL)
		for (int i = 0; i < gr->n && (size_t)i < *n; i++) nodes[i] = &gr->nodes[i];
	*n = gr->n;
	return 0;
}
CUresult cuGraphNodeGetType(void *node, int *type) {
	NEED_CONTEXT();
	static const int types[] = {[N_MEMSET] = 2, [N_COPY] = 1, [N_KERNEL] = 0, [N_RECORD] = 7, [N_WAIT] = 6};
	*type = types[((struct node *)node)->type];
	return 0;
}

// The v1 layout of CUDA_KERNEL_NODE_PARAMS (the v2 name is not exported, to
// exercise the fallback).
struct kparams {
	void *func;
	unsigned int dim[7];
	void **kernelParams;
	void **extra;
};
CUresult cuGraphKernelNodeGetParams(void *node, struct kparams *p) {
	NEED_CONTEXT();
	struct node *nd = node;
	if (nd->type != N_KERNEL) return 1;
	for (int i = 0; i < nd->nparams; i++) nd->ptrs[i] = &nd->params[i];
	p->func = nd->f;
	memcpy(p->dim, nd->dim, sizeof nd->dim);
	p->kernelParams = nd->ptrs;
	p->extra = NULL;
	return 0;
}
// An executable graph is a copy of the graph; node handles index it.
struct exec { struct graph g; struct graph *from; };
CUresult cuGraphInstantiateWithFlags(void **x, void *g, unsigned long long flags) {
	NEED_CONTEXT();
	struct graph *gr = g;
	struct exec *ex = calloc(1, sizeof *ex);
	ex->g.n = gr->n;
	ex->g.nodes = malloc((gr->n + 1) * sizeof *gr->nodes);
	memcpy(ex->g.nodes, gr->nodes, gr->n * sizeof *gr->nodes);
	ex->from = gr;
	*x = ex;
	return 0;
}
CUresult cuGraphExecDestroy(void *x) {
	NEED_CONTEXT();
	free(((struct exec *)x)->g.nodes);
	free(x);
	return 0;
}
CUresult cuGraphLaunch(void *x, void *s) {
	NEED_CONTEXT();
	if (CAPTURING(s)) return 900;
	struct graph *g = &((struct exec *)x)->g;
	for (int i = 0; i < g->n; i++) {
		struct node *nd = &g->nodes[i];
		switch (nd->type) {
		case N_MEMSET: memset(nd->dst, nd->v, nd->n); break;
		case N_COPY: memmove(nd->dst, nd->src, nd->n); break;
		case N_RECORD: record(nd->event); break;
		case N_WAIT: break;
		case N_KERNEL: {
			void *ptrs[64];
			for (int j = 0; j < nd->nparams; j++) ptrs[j] = &nd->params[j];
			unsigned long long threads = 1;
			for (int j = 0; j < 6; j++) threads *= nd->dim[j];
			run_kernel(nd->f, threads, ptrs);
		}
		}
	}
	return 0;
}
CUresult cuGraphExecKernelNodeSetParams(void *x, void *node, const struct kparams *p) {
	NEED_CONTEXT();
	struct exec *ex = x;
	long i = (struct node *)node - ex->from->nodes;
	if (i < 0 || i >= ex->g.n || ex->g.nodes[i].type != N_KERNEL || p->func != ex->g.nodes[i].f) return 1;
	struct node *nd = &ex->g.nodes[i];
	memcpy(nd->dim, p->dim, sizeof nd->dim);
	for (int j = 0; j < nd->nparams; j++) memcpy(&nd->params[j], p->kernelParams[j], 8);
	return 0;
}
