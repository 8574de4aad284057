// A program made to fail the checks, compiled with --maxrregcount=32: a
// decode kernel that spills and calls a device function that spills, and a
// kernel with an unused variable (a warning) and a double.

__device__ __noinline__ float helper(const float *x, int n) {
	float acc[32];
	for (int i = 0; i < 32; i++) acc[i] = x[(i * n) & 1023];
	float s = 0;
	for (int i = 0; i < 32; i++) s += acc[(i * 7 + n) & 31] * acc[i];
	return s;
}

extern "C" __global__ void decode_spill(const float *x, float *o, int n) {
	float v[48];
#pragma unroll
	for (int i = 0; i < 48; i++) v[i] = x[i * n + threadIdx.x];
	float s = 0;
#pragma unroll
	for (int i = 0; i < 48; i++) s += v[i] * v[(i + 5) % 48];
	o[threadIdx.x] = s + helper(x, n);
}

extern "C" __global__ void warned(float *o, double d) {
	int unused;
	__shared__ float st[128];
	st[threadIdx.x] = o[threadIdx.x];
	__syncthreads();
	o[threadIdx.x] = st[127 - threadIdx.x] * d;
}
