// The kernels that do not depend on a weight format: quantizing activations,
// grouping a batch's (token, expert) pairs by slot, and summing the experts'
// outputs per token.

// rt_decode_quantize: n consecutive blocks of 32 floats of x to activation blocks
// of y, one warp per block (a matrix's rows are whole blocks, so its rows
// are one run of blocks).
extern "C" __global__ void rt_decode_quantize(const float *x, rt_q8x32 *y, int n) {
	int b = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
	if (b >= n) {
		return; // the whole warp leaves together
	}
	int lane = threadIdx.x & 31;
	rt_quantize32(x[(i64)b * 32 + lane], lane, y + b);
}

// rt_prefill_moe_group (one block) groups npairs (token, expert) pairs by slot for
// the prefill GEMMs: order lists the pair indices slot by slot, and tiles
// holds the tile count, then per tile its slot, its first index into order
// and its pair count (at most RT_TN). counts is nslots ints of scratch.
// Pairs with a slot outside the plane are left out (rt_prefill_moe_combine reports
// them). Pairs land in their group in no particular order; the GEMMs'
// results do not depend on it.
extern "C" __global__ void rt_prefill_moe_group(const int *slots, int npairs, int nslots, int *counts, int *order,
                                        int *tiles) {
	int tid = threadIdx.x, nt = blockDim.x;
	for (int s = tid; s < nslots; s += nt) {
		counts[s] = 0;
	}
	__syncthreads();
	for (int p = tid; p < npairs; p += nt) {
		int s = slots[p];
		if (s >= 0 && s < nslots) {
			atomicAdd(&counts[s], 1);
		}
	}
	__syncthreads();
	if (tid == 0) {
		// A serial scan: a plane has a few hundred slots at most.
		int start = 0, n = 0;
		for (int s = 0; s < nslots; s++) {
			int c = counts[s];
			counts[s] = start;
			for (int i = 0; i < c; i += RT_TN) {
				tiles[1 + 3 * n] = s;
				tiles[2 + 3 * n] = start + i;
				tiles[3 + 3 * n] = c - i < RT_TN ? c - i : RT_TN;
				n++;
			}
			start += c;
		}
		tiles[0] = n;
	}
	__syncthreads();
	for (int p = tid; p < npairs; p += nt) {
		int s = slots[p];
		if (s >= 0 && s < nslots) {
			order[atomicAdd(&counts[s], 1)] = p;
		}
	}
}

// rt_prefill_moe_combine: dst[t] (+)= Σ_j weights[t·k+j]·y[t·k+j] in routing order,
// for token t = blockIdx.y and 256 of its embd values; NaN for a token
// routed to a slot outside the plane.
extern "C" __global__ void rt_prefill_moe_combine(const float *y, const int *slots, const float *weights, int k, int embd,
                                          int nslots, float *dst, int accumulate) {
	int t = blockIdx.y;
	int d = blockIdx.x * blockDim.x + threadIdx.x;
	if (d >= embd) {
		return;
	}
	float acc = 0.0f;
	bool bad = false;
	for (int j = 0; j < k; j++) {
		int p = t * k + j;
		int s = slots[p];
		if (s < 0 || s >= nslots) {
			bad = true;
			continue;
		}
		acc += weights[p] * y[(i64)p * embd + d];
	}
	float *o = dst + (i64)t * embd + d;
	*o = bad ? rt_nan() : accumulate ? *o + acc : acc;
}
