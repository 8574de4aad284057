// Causal softmax attention over the KV cache, split over the sequence
// (flash-decoding): a block attends a tile of up to QT queries that share a
// KV head over the cache positions of split s = blockIdx.x,
// [s·splitLen, (s+1)·splitLen), and leaves the split's maximum score m, its
// sum of e^(score - m) and its unnormalised output Σ e^(score - m)·v for
// rt_decode_attn_combine. With one split the block normalises and gates the output
// itself and no combine is needed. Each key and value row of the split is
// read once for the whole tile.
//
// Two tilings: HEADS (decode) tiles the query heads of one token that read
// one KV head (grid y: KV head × head tile, z: token); otherwise (prefill)
// QT consecutive tokens of one query head (grid y: head, z: token tile).
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
#define RTM_ATTN_TILE 8

template <int QT, bool HEADS>
__device__ __forceinline__ void rtm_attn_partial(float *dst, float *partO, float *partML, const float *q, int qCols,
                                                 int qStride, int qOffset, const float *gate, int gateCols,
                                                 int gateStride, int gateOffset, int hasGate, const float *cacheK,
                                                 const float *cacheV, int T, int heads, int kvHeads, int dim, int pos,
                                                 int splitLen, float scale) {
	float *qs = (float *)rt_dynamic_shared();
	float *sc = qs + QT * dim;
	float *ml = sc + QT * splitLen;

	// The tile: query tt is token t0 + (HEADS ? 0 : tt) of head h0 + (HEADS ? tt : 0).
	int group = heads / kvHeads;
	int s = blockIdx.x, t0, h0, nq, kvh;
	if (HEADS) {
		int tiles = (group + QT - 1) / QT;
		kvh = blockIdx.y / tiles;
		int g0 = (blockIdx.y - kvh * tiles) * QT;
		h0 = kvh * group + g0;
		nq = group - g0 < QT ? group - g0 : QT;
		t0 = blockIdx.z;
	} else {
		h0 = blockIdx.y;
		kvh = h0 / group;
		t0 = blockIdx.z * QT;
		nq = T - t0 < QT ? T - t0 : QT;
	}
	i64 rowLen = (i64)kvHeads * dim;
	int j0 = s * splitLen;
	int jEnd = pos + t0 + (HEADS ? 0 : nq - 1) + 1; // one past the last position the tile sees
	if (jEnd > j0 + splitLen) {
		jEnd = j0 + splitLen;
	}
	int L = jEnd - j0; // positions of this split the tile sees (may be <= 0)
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

	for (int i = threadIdx.x; i < nq * dim; i += blockDim.x) {
		int tt = i / dim, d = i - tt * dim;
		int t = t0 + (HEADS ? 0 : tt), h = h0 + (HEADS ? tt : 0);
		qs[i] = q[(i64)t * qCols + qOffset + (i64)h * qStride + d];
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
				acc[tt] += kv * qs[(tt < nq ? tt : 0) * dim + d];
			}
		}
#pragma unroll
		for (int tt = 0; tt < QT; tt++) {
			float dot = rtm_warp_sum(acc[tt]);
			if (lane == 0) {
				bool seen = tt < nq && j0 + j <= pos + t0 + (HEADS ? 0 : tt);
				sc[tt * splitLen + j] = seen ? dot * scale : RTM_NEG_INF;
			}
		}
	}
	__syncthreads();

	// Per query (a warp each): the split's maximum, then e^(score - max) and
	// their sum. A query that sees none of the split has max -inf and sum 0.
	for (int tt = warp; tt < nq; tt += warps) {
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
			if (tt >= nq) {
				break;
			}
			int t = t0 + (HEADS ? 0 : tt), h = h0 + (HEADS ? tt : 0);
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
	if (!single && threadIdx.x < nq) {
		int tt = threadIdx.x;
		int t = t0 + (HEADS ? 0 : tt), h = h0 + (HEADS ? tt : 0);
		i64 at = (((i64)t * heads + h) * gridDim.x + s) * 2;
		partML[at] = ml[2 * tt];
		partML[at + 1] = ml[2 * tt + 1];
	}
}

// rt_decode_attn: a block per token and KV head (per 8 of the query heads
// that read it), for decode steps and short batches. posp, when not null,
// holds the position in place of pos (a replayed graph's step reads it from
// device memory); the grid's splits then cover every position a step may
// reach, those past it contributing nothing.
extern "C" __global__ void __launch_bounds__(RTM_ATTN_THREADS)
    rt_decode_attn(float *dst, float *partO, float *partML, const float *q, int qCols, int qStride, int qOffset,
                   const float *gate, int gateCols, int gateStride, int gateOffset, int hasGate, const float *cacheK,
                   const float *cacheV, int T, int heads, int kvHeads, int dim, int pos, int splitLen, float scale,
                   const int *posp) {
	rtm_attn_partial<RTM_ATTN_TILE, true>(dst, partO, partML, q, qCols, qStride, qOffset, gate, gateCols, gateStride,
	                                      gateOffset, hasGate, cacheK, cacheV, T, heads, kvHeads, dim,
	                                      posp ? *posp : pos, splitLen, scale);
}

// rt_prefill_attn: a block per query head and 8 consecutive tokens; posp as
// for rt_decode_attn.
extern "C" __global__ void __launch_bounds__(RTM_ATTN_THREADS)
    rt_prefill_attn(float *dst, float *partO, float *partML, const float *q, int qCols, int qStride, int qOffset,
                    const float *gate, int gateCols, int gateStride, int gateOffset, int hasGate, const float *cacheK,
                    const float *cacheV, int T, int heads, int kvHeads, int dim, int pos, int splitLen, float scale,
                    const int *posp) {
	rtm_attn_partial<RTM_ATTN_TILE, false>(dst, partO, partML, q, qCols, qStride, qOffset, gate, gateCols, gateStride,
	                                       gateOffset, hasGate, cacheK, cacheV, T, heads, kvHeads, dim,
	                                       posp ? *posp : pos, splitLen, scale);
}

// rt_decode_attn_combine: block (h, t) merges the splits of query head h of token t:
// out = Σ e^(m_s - M)·o_s / Σ e^(m_s - M)·l_s with M the largest m_s, then the
// optional sigmoid gate. Splits the token does not see have l_s = 0.
extern "C" __global__ void __launch_bounds__(RTM_ATTN_THREADS)
    rt_decode_attn_combine(float *dst, const float *partO, const float *partML, int splits, const float *gate, int gateCols,
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
