// Elementwise kernels (grid-stride loops, any grid) and the embedding gather.

// rt_decode_add: dst = a + b over n values; dst may be a or b.
extern "C" __global__ void __launch_bounds__(256) rt_decode_add(float *dst, const float *a, const float *b, i64 n) {
	for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
		dst[i] = a[i] + b[i];
	}
}

// rt_decode_swiglu: dst = SiLU(gate)·up over n values; dst may be gate or up.
extern "C" __global__ void __launch_bounds__(256) rt_decode_swiglu(float *dst, const float *gate, const float *up, i64 n) {
	for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
		dst[i] = rtm_silu(gate[i]) * up[i];
	}
}

// rt_decode_add_gated: dst[r][c] = a[r][c] + b[r][c]·sigmoid(gate[r·gateStride]) over
// rows of cols values, one block row per grid row y; dst may be a or b.
extern "C" __global__ void __launch_bounds__(256) rt_decode_add_gated(float *dst, const float *a, const float *b,
                                                               const float *gate, int gateStride, int cols) {
	i64 row = (i64)blockIdx.y * cols;
	float g = rtm_sigmoid(gate[(i64)blockIdx.y * gateStride]);
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) {
		dst[row + i] = a[row + i] + b[row + i] * g;
	}
}
