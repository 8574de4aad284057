// Causal softmax attention over the KV cache, split over the sequence
// (flash-decoding): block (s, h, z) attends query head h of the tokens
// [z·QT, z·QT + QT) of the batch over the cache positions of split s,
// [s·splitLen, (s+1)·splitLen), and leaves the split's maximum score m, its
// sum of e^(score - m) and its unnormalised output Σ e^(score - m)·v for
// rt_attn_combine. With one split the block normalises and gates the output
// itself and no combine is needed.
//
// Token t of the batch is at position pos + t and sees cache rows [0, pos+t];
// the cache already holds the batch's keys and values. Rows of the cache hold
// kvHeads·dim values; query head h reads KV head h / (heads / kvHeads). Scores
// are scale·(q·k); softmax and output follow ggml's non-flash path up to the
// split: exp(score - max), sum, weighted sum of values in position order.
//
// Dynamic shared memory: QT·dim floats of queries, QT·splitLen scores, 2·QT
// floats of per-query max and sum. dim <= 2·blockDim.x (RTM_ATTN_THREADS).

#define RTM_ATTN_THREADS 128

template <int QT>
__device__ __forceinline__ void rtm_attn_partial(float *dst, float *partO, float *partML, const float *q, int qCols,
                                                 int qStride, int qOffset, const float *gate, int gateCols,
                                                 int gateStride, int gateOffset, int hasGate, const float *cacheK,
                                                 const float *cacheV, int T, int heads, int kvHeads, int dim, int pos,
                                                 int splitLen, float scale) {
	float *qs = (float *)rt_dynamic_shared();
	float *sc = qs + QT * dim;
	float *ml = sc + QT * splitLen;

	int s = blockIdx.x, h = blockIdx.y, t0 = blockIdx.z * QT;
	int nt = T - t0 < QT ? T - t0 : QT;
	int kvh = h / (heads / kvHeads);
	i64 rowLen = (i64)kvHeads * dim;
	int j0 = s * splitLen;
	int jEnd = pos + t0 + nt; // one past the last position the tile sees
	if (jEnd > j0 + splitLen) {
		jEnd = j0 + splitLen;
	}
	int L = jEnd - j0; // positions of this split the tile sees (may be <= 0)
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

	for (int i = threadIdx.x; i < nt * dim; i += blockDim.x) {
		int tt = i / dim, d = i - tt * dim;
		qs[i] = q[(i64)(t0 + tt) * qCols + qOffset + (i64)h * qStride + d];
	}
	__syncthreads();

	// Scores, a warp per position: the key row is read once for the tile.
	for (int j = warp; j < L; j += warps) {
		const float *kr = cacheK + (i64)(j0 + j) * rowLen + (i64)kvh * dim;
		float acc[QT];
#pragma unroll
		for (int tt = 0; tt < QT; tt++) {
			acc[tt] = 0.0f;
		}
		for (int d = lane; d < dim; d += 32) {
			float kv = kr[d];
#pragma unroll
			for (int tt = 0; tt < QT; tt++) {
				acc[tt] += kv * qs[(tt < nt ? tt : 0) * dim + d];
			}
		}
#pragma unroll
		for (int tt = 0; tt < QT; tt++) {
			float dot = rtm_warp_sum(acc[tt]);
			if (lane == 0) {
				bool seen = tt < nt && j0 + j <= pos + t0 + tt;
				sc[tt * splitLen + j] = seen ? dot * scale : RTM_NEG_INF;
			}
		}
	}
	__syncthreads();

	// Per query (a warp each): the split's maximum, then e^(score - max) and
	// their sum. A query that sees none of the split has max -inf and sum 0.
	for (int tt = warp; tt < nt; tt += warps) {
		float *row = sc + tt * splitLen;
		float m = RTM_NEG_INF;
		for (int j = lane; j < L; j += 32) {
			m = rtm_max(m, row[j]);
		}
		m = rtm_warp_max(m);
		float l = 0.0f;
		for (int j = lane; j < L; j += 32) {
			float e = row[j] == RTM_NEG_INF ? 0.0f : expf(row[j] - m);
			row[j] = e;
			l += e;
		}
		l = rtm_warp_sum(l);
		if (lane == 0) {
			ml[2 * tt] = m;
			ml[2 * tt + 1] = l;
		}
	}
	__syncthreads();

	// Outputs, a thread per value: the value rows in position order.
	bool single = gridDim.x == 1;
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		float acc[QT];
#pragma unroll
		for (int tt = 0; tt < QT; tt++) {
			acc[tt] = 0.0f;
		}
		const float *vc = cacheV + (i64)kvh * dim + d;
		for (int j = 0; j < L; j++) {
			float vv = vc[(i64)(j0 + j) * rowLen];
#pragma unroll
			for (int tt = 0; tt < QT; tt++) {
				acc[tt] += sc[tt * splitLen + j] * vv;
			}
		}
#pragma unroll
		for (int tt = 0; tt < QT; tt++) {
			if (tt >= nt) {
				break;
			}
			int t = t0 + tt;
			if (single) {
				float o = acc[tt] / ml[2 * tt + 1];
				if (hasGate) {
					o *= rtm_sigmoid(gate[(i64)t * gateCols + gateOffset + (i64)h * gateStride + d]);
				}
				dst[(i64)t * heads * dim + (i64)h * dim + d] = o;
			} else {
				partO[(((i64)t * heads + h) * gridDim.x + s) * dim + d] = acc[tt];
			}
		}
	}
	if (!single && threadIdx.x < nt) {
		int tt = threadIdx.x;
		i64 at = (((i64)(t0 + tt) * heads + h) * gridDim.x + s) * 2;
		partML[at] = ml[2 * tt];
		partML[at + 1] = ml[2 * tt + 1];
	}
}

// rt_attn_decode: one query per block, for decode steps and short batches.
extern "C" __global__ void __launch_bounds__(RTM_ATTN_THREADS)
    rt_attn_decode(float *dst, float *partO, float *partML, const float *q, int qCols, int qStride, int qOffset,
                   const float *gate, int gateCols, int gateStride, int gateOffset, int hasGate, const float *cacheK,
                   const float *cacheV, int T, int heads, int kvHeads, int dim, int pos, int splitLen, float scale) {
	rtm_attn_partial<1>(dst, partO, partML, q, qCols, qStride, qOffset, gate, gateCols, gateStride, gateOffset,
	                    hasGate, cacheK, cacheV, T, heads, kvHeads, dim, pos, splitLen, scale);
}

// rt_attn_prefill: a tile of 8 consecutive queries per block, each key and
// value row read once for the tile.
extern "C" __global__ void __launch_bounds__(RTM_ATTN_THREADS)
    rt_attn_prefill(float *dst, float *partO, float *partML, const float *q, int qCols, int qStride, int qOffset,
                    const float *gate, int gateCols, int gateStride, int gateOffset, int hasGate, const float *cacheK,
                    const float *cacheV, int T, int heads, int kvHeads, int dim, int pos, int splitLen, float scale) {
	rtm_attn_partial<8>(dst, partO, partML, q, qCols, qStride, qOffset, gate, gateCols, gateStride, gateOffset,
	                    hasGate, cacheK, cacheV, T, heads, kvHeads, dim, pos, splitLen, scale);
}

// rt_attn_combine: block (h, t) merges the splits of query head h of token t:
// out = Σ e^(m_s - M)·o_s / Σ e^(m_s - M)·l_s with M the largest m_s, then the
// optional sigmoid gate. Splits the token does not see have l_s = 0.
extern "C" __global__ void __launch_bounds__(RTM_ATTN_THREADS)
    rt_attn_combine(float *dst, const float *partO, const float *partML, int splits, const float *gate, int gateCols,
                    int gateStride, int gateOffset, int hasGate, int heads, int dim) {
	int h = blockIdx.x, t = blockIdx.y;
	i64 base = (i64)t * heads + h;
	const float *ml = partML + base * splits * 2;
	const float *o = partO + base * splits * dim;
	float M = RTM_NEG_INF;
	for (int s = 0; s < splits; s++) {
		if (ml[2 * s + 1] > 0.0f) {
			M = rtm_max(M, ml[2 * s]);
		}
	}
	float den = 0.0f;
	for (int s = 0; s < splits; s++) {
		if (ml[2 * s + 1] > 0.0f) {
			den += expf(ml[2 * s] - M) * ml[2 * s + 1];
		}
	}
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		float num = 0.0f;
		for (int s = 0; s < splits; s++) {
			if (ml[2 * s + 1] > 0.0f) {
				num += expf(ml[2 * s] - M) * o[(i64)s * dim + d];
			}
		}
		float out = num / den;
		if (hasGate) {
			out *= rtm_sigmoid(gate[(i64)t * gateCols + gateOffset + (i64)h * gateStride + d]);
		}
		dst[(i64)t * heads * dim + (i64)h * dim + d] = out;
	}
}
