// Kernels of the GPU benchmark.

// empty does nothing: its launches measure the launch path alone.
extern "C" __global__ void empty() {}

// spin keeps its block busy for cycles clock cycles: compute to overlap
// copies with.
extern "C" __global__ void spin(long long cycles) {
	long long start = clock64();
	while (clock64() - start < cycles) {
	}
}
