// Kernels of package cuda's tests; each has a Go twin in cuda/kernels_test.go.

// vadd: c[i] = a[i] + b[i] for i < n.
extern "C" __global__ void vadd(const float *a, const float *b, float *c, unsigned int n) {
	unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) c[i] = a[i] + b[i];
}

// axpy: y[i] += a * x[i] for i < n, in doubles with a 64-bit count.
extern "C" __global__ void axpy(double a, const double *x, double *y, long long n) {
	long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) y[i] += a * x[i];
}

// addk: x[i] += k for i < n, with a negative k and a 64-bit unsigned count.
extern "C" __global__ void addk(int *x, int k, unsigned long long n) {
	unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) x[i] += k;
}

// bytesum: out[0] = the sum of n bytes of host memory mapped into the device.
extern "C" __global__ void bytesum(const unsigned char *host, unsigned int *out, unsigned int n) {
	unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) atomicAdd(out, (unsigned int)host[i]);
}
