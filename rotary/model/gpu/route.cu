// Routing: router logits to each token's top-k experts and their weights.

#define RTM_ROUTE_THREADS 256

// rtm_better reports whether expert (p, i) ranks before (q, j): higher
// probability first, the lower id first on a tie (the order of llama.cpp's
// argsort, which rotary/model/cpu reproduces).
__device__ __forceinline__ bool rtm_better(float p, int i, float q, int j) { return p > q || (p == q && i < j); }

// rt_decode_route: one block per token (row blockIdx.x of logits, E experts). The
// probabilities are softmax(logits) (sigmoid of each logit when useSigmoid),
// computed bit for bit as the CPU backend does, so that expert choices are
// identical: e^x as float(exp((double)x)) (the CPU rounds a float64 exp), the
// softmax sum accumulated in double in expert order. The k best (k <= E, in
// descending order) go to ids and weights (rows of k); with normalize the
// weights are divided by their sum (double, in rank order), kept from falling
// below 2^-14. Dynamic shared memory: E floats.
extern "C" __global__ void __launch_bounds__(RTM_ROUTE_THREADS)
    rt_decode_route(int *ids, float *weights, const float *logits, int E, int k, int normalize, int useSigmoid) {
	float *p = (float *)rt_dynamic_shared();
	__shared__ float redf[32];
	__shared__ int redi[32];
	__shared__ float scaleShared;
	const float *x = logits + (i64)blockIdx.x * E;
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

	if (useSigmoid) {
		for (int i = threadIdx.x; i < E; i += blockDim.x) {
			p[i] = 1.0f / (1.0f + (float)exp(-(double)x[i]));
		}
	} else {
		float m = RTM_NEG_INF;
		for (int i = threadIdx.x; i < E; i += blockDim.x) {
			m = rtm_max(m, x[i]);
		}
		m = rtm_warp_max(m);
		if (lane == 0) {
			redf[warp] = m;
		}
		__syncthreads();
		m = lane < warps ? redf[lane] : RTM_NEG_INF;
		m = rtm_warp_max(m);
		for (int i = threadIdx.x; i < E; i += blockDim.x) {
			p[i] = (float)exp((double)(x[i] - m));
		}
		__syncthreads();
		if (threadIdx.x == 0) {
			double sum = 0.0;
			for (int i = 0; i < E; i++) {
				sum += (double)p[i];
			}
			scaleShared = (float)(1.0 / sum);
		}
		__syncthreads();
		float scale = scaleShared;
		for (int i = threadIdx.x; i < E; i += blockDim.x) {
			p[i] *= scale;
		}
	}
	__syncthreads();

	// k rounds of a block argmax; a chosen expert's probability becomes -1.
	int *outIds = ids + (i64)blockIdx.x * k;
	float *outW = weights + (i64)blockIdx.x * k;
	for (int r = 0; r < k; r++) {
		float best = -1.0f;
		int bi = E;
		for (int i = threadIdx.x; i < E; i += blockDim.x) {
			if (rtm_better(p[i], i, best, bi)) {
				best = p[i];
				bi = i;
			}
		}
#pragma unroll
		for (int o = 16; o > 0; o >>= 1) {
			float ob = __shfl_xor_sync(RTM_FULL, best, o);
			int oi = __shfl_xor_sync(RTM_FULL, bi, o);
			if (rtm_better(ob, oi, best, bi)) {
				best = ob;
				bi = oi;
			}
		}
		if (lane == 0) {
			redf[warp] = best;
			redi[warp] = bi;
		}
		__syncthreads();
		if (warp == 0) {
			best = lane < warps ? redf[lane] : -1.0f;
			bi = lane < warps ? redi[lane] : E;
#pragma unroll
			for (int o = 16; o > 0; o >>= 1) {
				float ob = __shfl_xor_sync(RTM_FULL, best, o);
				int oi = __shfl_xor_sync(RTM_FULL, bi, o);
				if (rtm_better(ob, oi, best, bi)) {
					best = ob;
					bi = oi;
				}
			}
			if (lane == 0) {
				outIds[r] = bi;
				outW[r] = best;
				p[bi] = -1.0f;
			}
		}
		__syncthreads();
	}

	if (normalize && threadIdx.x == 0) {
		double sum = 0.0;
		for (int r = 0; r < k; r++) {
			sum += (double)outW[r];
		}
		float s = (float)sum;
		s = s > 6.103515625e-5f ? s : 6.103515625e-5f;
		for (int r = 0; r < k; r++) {
			outW[r] = outW[r] / s;
		}
	}
}
