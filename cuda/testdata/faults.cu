// Kernels that fault on purpose, for the emulator's tests of hardware
// faults (emulator_test.go). They are not meant for a GPU.

// off_by_one: each thread copies x[i+1], one past the end for the last.
extern "C" __global__ void off_by_one(const float *x, float *out, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) out[i] = x[i + 1];
}

// deep: a frame larger than a thread's stack.
extern "C" __global__ void deep(int *out) {
	volatile char big[96 << 10];
	big[threadIdx.x] = 1;
	out[threadIdx.x] = big[threadIdx.x];
}

// divide: integer division by each value.
extern "C" __global__ void divide(const int *x, int *out) {
	out[threadIdx.x] = 100 / x[threadIdx.x];
}

// misaligned: reads a float from byte offset 2 of a Q8_0 block: fine on
// x86, a fault on a GPU (and under -fsanitize=alignment).
extern "C" __global__ void misaligned(const u8 *blk, float *out) {
	out[threadIdx.x] = *(const float *)(blk + 2 + 34 * threadIdx.x);
}
