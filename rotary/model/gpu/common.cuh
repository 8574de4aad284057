// Device helpers shared by the model's kernel programs (each program's source
// is cuda.Prelude + this file + the program). Every launch of the package
// uses a block that is a whole number of warps.

#define RTM_FULL 0xffffffffu
#define RTM_NEG_INF __int_as_float((int)0xff800000u)

__device__ __forceinline__ float rtm_warp_sum(float v) {
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) {
		v += __shfl_xor_sync(RTM_FULL, v, o);
	}
	return v;
}

__device__ __forceinline__ float rtm_max(float a, float b) { return a > b ? a : b; }

__device__ __forceinline__ float rtm_warp_max(float v) {
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) {
		v = rtm_max(v, __shfl_xor_sync(RTM_FULL, v, o));
	}
	return v;
}

// rtm_block_sum returns the sum of v over the block to every thread. scratch
// holds one float per warp; the leading barrier lets a caller reuse it for
// consecutive sums.
__device__ __forceinline__ float rtm_block_sum(float v, float *scratch) {
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
	v = rtm_warp_sum(v);
	__syncthreads();
	if (lane == 0) {
		scratch[warp] = v;
	}
	__syncthreads();
	v = lane < warps ? scratch[lane] : 0.0f;
	return rtm_warp_sum(v);
}

// The activations of the model as ggml computes them: e^x, x·sigmoid(x) as
// x/(1+e^-x), 1/(1+e^-x).
__device__ __forceinline__ float rtm_silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float rtm_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
