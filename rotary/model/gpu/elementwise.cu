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

// rt_decode_embed_*: row y of dst (cols values) is row tokens[y] of a table of rows
// rows. A token outside the table (which the caller rejects before upload)
// reads nothing and leaves its row of dst alone. Grid (any, T).
__device__ __forceinline__ float rtm_to_float(float v) { return v; }
__device__ __forceinline__ float rtm_to_float_f16(u16 v) { return rt_half_to_float(v); }
__device__ __forceinline__ float rtm_to_float_bf16(u16 v) { return rt_bf16_to_float(v); }

template <typename T, float (*convert)(T)>
__device__ __forceinline__ void rtm_embed(float *dst, const T *table, const int *tokens, int rows, int cols) {
	int tok = tokens[blockIdx.y];
	if (tok < 0 || tok >= rows) {
		return;
	}
	const T *src = table + (i64)tok * cols;
	float *out = dst + (i64)blockIdx.y * cols;
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x) {
		out[i] = convert(src[i]);
	}
}

extern "C" __global__ void __launch_bounds__(256) rt_decode_embed_f32(float *dst, const float *table, const int *tokens,
                                                               int rows, int cols) {
	rtm_embed<float, rtm_to_float>(dst, table, tokens, rows, cols);
}

extern "C" __global__ void __launch_bounds__(256) rt_decode_embed_f16(float *dst, const u16 *table, const int *tokens,
                                                               int rows, int cols) {
	rtm_embed<u16, rtm_to_float_f16>(dst, table, tokens, rows, cols);
}

extern "C" __global__ void __launch_bounds__(256) rt_decode_embed_bf16(float *dst, const u16 *table, const int *tokens,
                                                                int rows, int cols) {
	rtm_embed<u16, rtm_to_float_bf16>(dst, table, tokens, rows, cols);
}
