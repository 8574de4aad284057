// A stand-in for libnvrtc.so, for testing the cgo path without a CUDA
// toolkit: the "CUBIN" is the source itself, the architecture option is
// required, and a source naming undefined_name fails to compile with a log.
#include <stdlib.h>
#include <string.h>

typedef int nvrtcResult;
struct program { char *src, *name, log[256]; };

const char *nvrtcGetErrorString(nvrtcResult r) {
	switch (r) {
	case 6: return "NVRTC_ERROR_COMPILATION";
	case 7: return "NVRTC_ERROR_INVALID_OPTION";
	}
	return "NVRTC_ERROR_FAKE";
}
nvrtcResult nvrtcVersion(int *major, int *minor) { *major = 13, *minor = 0; return 0; }
nvrtcResult nvrtcGetNumSupportedArchs(int *n) { *n = 3; return 0; }
nvrtcResult nvrtcGetSupportedArchs(int *archs) { archs[0] = 75, archs[1] = 80, archs[2] = 90; return 0; }

nvrtcResult nvrtcCreateProgram(struct program **p, const char *src, const char *name, int n,
		const char *const *headers, const char *const *includes) {
	*p = calloc(1, sizeof **p);
	(*p)->src = strdup(src);
	(*p)->name = strdup(name);
	return 0;
}
nvrtcResult nvrtcDestroyProgram(struct program **p) {
	free((*p)->src);
	free((*p)->name);
	free(*p);
	*p = NULL;
	return 0;
}
nvrtcResult nvrtcCompileProgram(struct program *p, int n, const char *const *options) {
	int arch = 0;
	for (int i = 0; i < n; i++) arch |= strcmp(options[i], "--gpu-architecture=sm_90") == 0;
	if (!arch) return 7;
	if (strstr(p->src, "undefined_name")) {
		strcpy(p->log, p->name);
		strcat(p->log, "(1): error: identifier \"undefined_name\" is undefined\n");
		return 6;
	}
	return 0;
}
nvrtcResult nvrtcGetProgramLogSize(struct program *p, size_t *n) { *n = strlen(p->log) + 1; return 0; }
nvrtcResult nvrtcGetProgramLog(struct program *p, char *log) { strcpy(log, p->log); return 0; }
nvrtcResult nvrtcGetCUBINSize(struct program *p, size_t *n) { *n = strlen(p->src) + 1; return 0; }
nvrtcResult nvrtcGetCUBIN(struct program *p, char *out) { strcpy(out, p->src); return 0; }
nvrtcResult nvrtcGetPTXSize(struct program *p, size_t *n) { *n = strlen(p->src) + 1; return 0; }
nvrtcResult nvrtcGetPTX(struct program *p, char *out) { strcpy(out, p->src); return 0; }
