// Norms of the model's layers: RMSNorm, the residual sums fused with the next
// RMSNorm, per-head RMS norm fused with NEOX rotary embedding (and the KV
// cache store), and the gated RMSNorm of Gated DeltaNet. One block per row
// (or head, or group); sums of squares in float, scale 1/sqrt(mean + eps).

// rt_decode_rmsnorm: dst[r] = x[r] / rms(x[r]) · w, one block per row of cols
// values. dst may be x.
extern "C" __global__ void __launch_bounds__(256) rt_decode_rmsnorm(float *dst, const float *x, const float *w, int cols,
                                                             float eps) {
	__shared__ float red[32];
	const float *xr = x + (i64)blockIdx.x * cols;
	float *dr = dst + (i64)blockIdx.x * cols;
	float ss = 0.0f;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		float v = xr[i];
		ss += v * v;
	}
	ss = rtm_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)cols + eps);
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		dr[i] = xr[i] * scale * w[i];
	}
}

// rt_decode_add_norm: the residual sum of a layer and the RMSNorm that follows it.
// sum[r] = a[r] + b[r]·sigmoid(gate[r·gateStride]) (+ b[r] alone without a
// gate) (+ c[r] when hasC), rounded as separate adds; dst[r] = sum[r] /
// rms(sum[r]) · w. sum may be a, b or c; dst is distinct. One block per row.
extern "C" __global__ void __launch_bounds__(256) rt_decode_add_norm(float *sum, float *dst, const float *a, const float *b,
                                                              const float *gate, int gateStride, int hasGate,
                                                              const float *c, int hasC, const float *w, int cols,
                                                              float eps) {
	__shared__ float red[32];
	i64 row = (i64)blockIdx.x * cols;
	float g = hasGate ? rtm_sigmoid(gate[(i64)blockIdx.x * gateStride]) : 1.0f;
	float ss = 0.0f;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		float v = hasGate ? a[row + i] + b[row + i] * g : a[row + i] + b[row + i];
		if (hasC) {
			v = v + c[row + i];
		}
		sum[row + i] = v;
		ss += v * v;
	}
	ss = rtm_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)cols + eps);
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		dst[row + i] = sum[row + i] * scale * w[i];
	}
}

// rtm_norm_rope_head RMS-normalises one head of dim values in place, scales
// it by w and rotates its first ropeDims values NEOX style for position pos
// (pair i is value i and value i + ropeDims/2, angle pos·step^i reached by i
// float multiplications, as ggml does). When out is not null the result is
// also written there.
__device__ __forceinline__ void rtm_norm_rope_head(float *head, const float *w, float *out, int dim, int ropeDims,
                                                   float step, int pos, float eps, float *red) {
	float ss = 0.0f;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) {
		float v = head[i];
		ss += v * v;
	}
	ss = rtm_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)dim + eps);
	int half = ropeDims / 2;
	for (int i = threadIdx.x; i < half; i += blockDim.x) {
		float x0 = head[i] * scale * w[i];
		float x1 = head[i + half] * scale * w[i + half];
		float theta = (float)pos;
		for (int j = 0; j < i; j++) {
			theta *= step;
		}
		float s, c;
		sincosf(theta, &s, &c);
		float y0 = x0 * c - x1 * s;
		float y1 = x0 * s + x1 * c;
		head[i] = y0;
		head[i + half] = y1;
		if (out) {
			out[i] = y0;
			out[i + half] = y1;
		}
	}
	for (int i = ropeDims + threadIdx.x; i < dim; i += blockDim.x) {
		float y = head[i] * scale * w[i];
		head[i] = y;
		if (out) {
			out[i] = y;
		}
	}
}

// rt_decode_norm_rope: per-head RMS norm and NEOX rope of the queries and keys of an
// attention layer in one launch, optionally storing the keys and values in the
// KV cache. Grid (qHeads + kHeads + (store ? kHeads : 0), T): block x < qHeads
// is query head x of row y, the next kHeads are key heads, the last kHeads copy
// value heads. Row y is at position pos + y, pos read from posp when that is
// not null (a replayed graph's step). Head h of a row of q starts at
// qOffset + h·qStride (k likewise); the cache rows hold kHeads·dim values.
extern "C" __global__ void __launch_bounds__(128) rt_decode_norm_rope(
    float *q, int qCols, int qHeads, int qStride, int qOffset, const float *qw, float *k, int kCols, int kHeads,
    int kStride, int kOffset, const float *kw, const float *v, float *cacheK, float *cacheV, int store, int dim,
    int ropeDims, float step, int pos, float eps, const int *posp) {
	__shared__ float red[32];
	int h = blockIdx.x, t = blockIdx.y;
	if (posp) {
		pos = *posp;
	}
	if (h < qHeads) {
		rtm_norm_rope_head(q + (i64)t * qCols + qOffset + (i64)h * qStride, qw, (float *)0, dim, ropeDims, step,
		                   pos + t, eps, red);
		return;
	}
	h -= qHeads;
	i64 cacheRow = (i64)(pos + t) * kHeads * dim;
	if (h < kHeads) {
		float *out = store ? cacheK + cacheRow + (i64)h * dim : (float *)0;
		rtm_norm_rope_head(k + (i64)t * kCols + kOffset + (i64)h * kStride, kw, out, dim, ropeDims, step, pos + t,
		                   eps, red);
		return;
	}
	h -= kHeads;
	const float *vh = v + (i64)t * kHeads * dim + (i64)h * dim;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) {
		cacheV[cacheRow + (i64)h * dim + i] = vh[i];
	}
}

// rt_decode_gated_rmsnorm: Gated DeltaNet's output norm. x is a run of groups of n
// values (one block each); dst = x / rms(x) · w · SiLU(z). dst may be x.
extern "C" __global__ void __launch_bounds__(128) rt_decode_gated_rmsnorm(float *dst, const float *x, const float *z,
                                                                   const float *w, int n, float eps) {
	__shared__ float red[32];
	i64 base = (i64)blockIdx.x * n;
	float ss = 0.0f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = x[base + i];
		ss += v * v;
	}
	ss = rtm_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)n + eps);
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float y = x[base + i] * scale * w[i];
		dst[base + i] = y * rtm_silu(z[base + i]);
	}
}
