// Test kernels of kquants.cuh (program: cuda.Prelude + quant_common.cuh +
// kquants.cuh + this file). Per type T:
//   kq_dot_T: one thread per (row, block) of a rows × nb matrix of weight
//   blocks, writing the block's partial dot product with activation blocks
//   x[8·block .. 8·block+8) to out[row·nb + block];
//   kq_dequant_T: one thread per (block, chunk) of nblocks blocks, writing the
//   chunk's 32 values to out[32·(8·block + chunk) ..].

extern "C" __global__ void kq_dot_q2_K(const u8 *w, const rt_q8x32 *x, float *out, int rows, int nb) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * nb) {
		out[i] = rt_dot_q2_K(w + (i64)i * 84, x + 8 * (i % nb));
	}
}

extern "C" __global__ void kq_dequant_q2_K(const u8 *w, float *out, int nblocks) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 8 * nblocks) {
		rt_dequant32_q2_K(w + (i64)(i >> 3) * 84, i & 7, out + 32 * (i64)i);
	}
}

extern "C" __global__ void kq_dot_q3_K(const u8 *w, const rt_q8x32 *x, float *out, int rows, int nb) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * nb) {
		out[i] = rt_dot_q3_K(w + (i64)i * 110, x + 8 * (i % nb));
	}
}

extern "C" __global__ void kq_dequant_q3_K(const u8 *w, float *out, int nblocks) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 8 * nblocks) {
		rt_dequant32_q3_K(w + (i64)(i >> 3) * 110, i & 7, out + 32 * (i64)i);
	}
}

extern "C" __global__ void kq_dot_q4_K(const u8 *w, const rt_q8x32 *x, float *out, int rows, int nb) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * nb) {
		out[i] = rt_dot_q4_K(w + (i64)i * 144, x + 8 * (i % nb));
	}
}

extern "C" __global__ void kq_dequant_q4_K(const u8 *w, float *out, int nblocks) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 8 * nblocks) {
		rt_dequant32_q4_K(w + (i64)(i >> 3) * 144, i & 7, out + 32 * (i64)i);
	}
}

extern "C" __global__ void kq_dot_q5_K(const u8 *w, const rt_q8x32 *x, float *out, int rows, int nb) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * nb) {
		out[i] = rt_dot_q5_K(w + (i64)i * 176, x + 8 * (i % nb));
	}
}

extern "C" __global__ void kq_dequant_q5_K(const u8 *w, float *out, int nblocks) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 8 * nblocks) {
		rt_dequant32_q5_K(w + (i64)(i >> 3) * 176, i & 7, out + 32 * (i64)i);
	}
}

extern "C" __global__ void kq_dot_q6_K(const u8 *w, const rt_q8x32 *x, float *out, int rows, int nb) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * nb) {
		out[i] = rt_dot_q6_K(w + (i64)i * 210, x + 8 * (i % nb));
	}
}

extern "C" __global__ void kq_dequant_q6_K(const u8 *w, float *out, int nblocks) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 8 * nblocks) {
		rt_dequant32_q6_K(w + (i64)(i >> 3) * 210, i & 7, out + 32 * (i64)i);
	}
}

extern "C" __global__ void kq_dot_iq4_xs(const u8 *w, const rt_q8x32 *x, float *out, int rows, int nb) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * nb) {
		out[i] = rt_dot_iq4_xs(w + (i64)i * 136, x + 8 * (i % nb));
	}
}

extern "C" __global__ void kq_dequant_iq4_xs(const u8 *w, float *out, int nblocks) {
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 8 * nblocks) {
		rt_dequant32_iq4_xs(w + (i64)(i >> 3) * 136, i & 7, out + 32 * (i64)i);
	}
}
