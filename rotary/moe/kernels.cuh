// The matrix and MoE kernels, written once as templates over a weight
// format, whose entry points entries.cu declares per type, and the helpers of
// the type-independent kernels (common.cu).
//
// A format is a struct with the block geometry and the device functions:
//   act        the activations it meets: rt_q8x32 blocks, or floats
//   QK, BYTES  elements and bytes of one weight block (floats: 32 and 32·size)
//   ASTRIDE    act elements per weight block (QK/32 blocks, or 32 floats)
//   dot(w, x)  one weight block against its activations
//   dequant32(w, chunk, out)  32 values of one weight block as floats
//
// Decode (GEMV) kernels give each weight row L lanes of a warp (L a power of
// two at or above the row's block count, at most 32, chosen by the host),
// 32/L rows per warp; a lane walks its row's blocks L apart and the L lanes
// of a row meet in a butterfly of shuffles. A GEMV block has four warps on
// as many row groups; the MoE gate/up block eight warps on the 32 rows of
// one activation block; the MoE down block one warp per expert of a token. Every lane reaches every
// shuffle: rows past the end compute nothing but still take part.
//
// Prefill (GEMM) kernels dequantize a 64-row × 32-column tile of weights
// into shared memory once and multiply it with a 32 × 64 tile of float
// activations (64 tokens, or 64 (token, expert) pairs of one expert), so
// each weight block is read once per 64 columns. Every output is summed over
// the columns in the same order whichever tile column it lands in, so the
// result does not depend on how pairs are grouped.

#define RT_GEMV_THREADS 128
#define RT_TM 64 // weight rows per GEMM tile
#define RT_TN 64 // activation columns (tokens or pairs) per GEMM tile
#define RT_GEMM_THREADS 256
#define RT_FULL_MASK 0xffffffffu

#define RT_QUANT_FORMAT(T, qk, bytes)                                                          \
	struct rt_format_##T {                                                                     \
		typedef rt_q8x32 act;                                                                  \
		enum { QK = qk, BYTES = bytes, ASTRIDE = qk / 32 };                                    \
		static __device__ __forceinline__ float dot(const u8 *w, const act *x) { return rt_dot_##T(w, x); } \
		static __device__ __forceinline__ void dequant32(const u8 *w, int c, float *o) { rt_dequant32_##T(w, c, o); } \
	};

#define RT_FLOAT_FORMAT_TRAITS(T, size)                                                        \
	struct rt_format_##T {                                                                     \
		typedef float act;                                                                     \
		enum { QK = 32, BYTES = 32 * size, ASTRIDE = 32 };                                     \
		static __device__ __forceinline__ float dot(const u8 *w, const act *x) { return rt_fdot_##T(w, x); } \
		static __device__ __forceinline__ void dequant32(const u8 *w, int c, float *o) { rt_dequant32_##T(w, c, o); } \
	};

__device__ __forceinline__ float rt_nan() { return __int_as_float(0x7fc00000); }

__device__ __forceinline__ float rt_silu(float g) { return g / (1.0f + expf(-g)); }

// rt_group_sum adds v over the aligned groups of L lanes (L a power of two).
__device__ __forceinline__ float rt_group_sum(float v, int L) {
	for (int o = L >> 1; o > 0; o >>= 1) {
		v += __shfl_xor_sync(RT_FULL_MASK, v, o);
	}
	return v;
}

// rt_quantize32 quantizes the warp's 32 values, v in lane i, into one
// activation block: d = max|v| / 127, q = round(v / d), sum = d·Σq.
__device__ __forceinline__ void rt_quantize32(float v, int lane, rt_q8x32 *out) {
	float a = fabsf(v);
	for (int o = 16; o > 0; o >>= 1) {
		a = fmaxf(a, __shfl_xor_sync(RT_FULL_MASK, a, o));
	}
	float d = a / 127.0f;
	float id = d != 0.0f ? 1.0f / d : 0.0f;
	int q = (int)roundf(v * id);
	int s = q;
	for (int o = 16; o > 0; o >>= 1) {
		s += __shfl_xor_sync(RT_FULL_MASK, s, o);
	}
	out->q[lane] = (i8)q;
	if (lane == 0) {
		out->d = d;
		out->sum = d * (float)s;
	}
}

// rt_row_dot is this lane's part of the dot product of a weight row of nb
// blocks with its activations: blocks sub, sub+L, ...
template <class T>
__device__ __forceinline__ float rt_row_dot(const u8 *row, const typename T::act *x, int nb, int sub, int L) {
	float acc = 0.0f;
	for (int b = sub; b < nb; b += L) {
		acc += T::dot(row + (i64)b * T::BYTES, x + (i64)b * T::ASTRIDE);
	}
	return acc;
}

// rt_gemv: dst[t·rows + r] (+)= W[r]·x[t] for the block's rows and token
// t = blockIdx.y.
template <class T>
__device__ __forceinline__ void rt_gemv(const u8 *w, i64 row_bytes, const void *xv, float *dst, int rows, int nb,
                                        int L, int accumulate) {
	int t = blockIdx.y;
	const typename T::act *x = (const typename T::act *)xv + (i64)t * nb * T::ASTRIDE;
	int lane = threadIdx.x & 31;
	int row = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * (32 / L) + lane / L;
	float acc = 0.0f;
	if (row < rows) {
		acc = rt_row_dot<T>(w + (i64)row * row_bytes, x, nb, lane % L, L);
	}
	acc = rt_group_sum(acc, L);
	if (row < rows && lane % L == 0) {
		float *o = dst + (i64)t * rows + row;
		*o = accumulate ? *o + acc : acc;
	}
}

// rt_moe_gate_up (decode): for pair p = blockIdx.y (token p/k, expert slot
// slots[p]) and 32 rows of the expert's FF from 32·blockIdx.x, computes
// h = SiLU(gate·x)·(up·x) and writes it as floats (h) and as one activation
// block (hq), what the down projection meets. An out-of-range slot gives
// zeros here; the down kernel reports it.
template <class T>
__device__ __forceinline__ void rt_moe_gate_up(const u8 *plane, i64 slot_bytes, i64 gate_off, i64 up_off,
                                               i64 row_bytes, int nslots, const int *slots, const void *xv, int k,
                                               int ff, int nb, int L, float *h, rt_q8x32 *hq) {
	__shared__ float hs[32];
	int p = blockIdx.y;
	int slot = slots[p];
	bool ok = slot >= 0 && slot < nslots;
	const typename T::act *x = (const typename T::act *)xv + (i64)(p / k) * nb * T::ASTRIDE;
	i64 first = (i64)blockIdx.x * 32 * row_bytes;
	const u8 *gate = plane + (ok ? (i64)slot * slot_bytes : 0) + gate_off + first;
	const u8 *up = plane + (ok ? (i64)slot * slot_bytes : 0) + up_off + first;
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int rpw = 32 / L; // rows per warp and pass
	for (int r0 = 0; r0 < 32; r0 += (blockDim.x >> 5) * rpw) {
		int r = r0 + warp * rpw + lane / L;
		float g = 0.0f, u = 0.0f;
		if (ok && r < 32) {
			// Two passes rather than one loop over both: a K-quant block
			// is read whole into registers, and two at once would double
			// the registers a thread holds, and halve the warps an SM runs.
			g = rt_row_dot<T>(gate + (i64)r * row_bytes, x, nb, lane % L, L);
			u = rt_row_dot<T>(up + (i64)r * row_bytes, x, nb, lane % L, L);
		}
		g = rt_group_sum(g, L);
		u = rt_group_sum(u, L);
		if (r < 32 && lane % L == 0) {
			hs[r] = ok ? rt_silu(g) * u : 0.0f;
		}
	}
	__syncthreads();
	if (warp == 0) {
		float v = hs[lane];
		h[(i64)p * ff + blockIdx.x * 32 + lane] = v;
		rt_quantize32(v, lane, hq + (i64)p * (ff / 32) + blockIdx.x);
	}
}

// rt_moe_down (decode): dst[t] (+)= Σ_j weights[t·k+j]·down_j·h[t·k+j] over
// token t = blockIdx.y's k experts, for the block's 32/L rows. The warps
// share out the experts (warp w takes j = w, w + warps, ...), so one
// token's experts are read in parallel; each warp leaves weight·dot per
// expert and row in shared memory (k·32/L floats, dynamic) and the first
// threads add them up in routing order. A token routed to a slot outside
// the plane gets NaN, so the error shows.
template <class T>
__device__ __forceinline__ void rt_moe_down(const u8 *plane, i64 slot_bytes, i64 down_off, i64 row_bytes, int nslots,
                                            const int *slots, const float *weights, const void *hv, int k, int rows,
                                            int nb, int L, float *dst, int accumulate) {
	float *part = (float *)rt_dynamic_shared(); // [k][32/L]
	int t = blockIdx.y;
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
	int rpw = 32 / L;
	int r = lane / L;
	int row = blockIdx.x * rpw + r;
	for (int j = warp; j < k; j += warps) {
		int p = t * k + j;
		int slot = slots[p];
		bool ok = slot >= 0 && slot < nslots;
		float acc = 0.0f;
		if (ok && row < rows) {
			const u8 *w = plane + (i64)slot * slot_bytes + down_off + (i64)row * row_bytes;
			const typename T::act *x = (const typename T::act *)hv + (i64)p * nb * T::ASTRIDE;
			acc = rt_row_dot<T>(w, x, nb, lane % L, L);
		}
		acc = rt_group_sum(acc, L);
		if (lane % L == 0) {
			part[j * rpw + r] = ok ? weights[p] * acc : rt_nan();
		}
	}
	__syncthreads();
	if (threadIdx.x < rpw && blockIdx.x * rpw + threadIdx.x < rows) {
		float acc = 0.0f;
		for (int j = 0; j < k; j++) {
			acc += part[j * rpw + threadIdx.x];
		}
		float *o = dst + (i64)t * rows + blockIdx.x * rpw + threadIdx.x;
		*o = accumulate ? *o + acc : acc;
	}
}

// rt_gemm_tile multiplies rows [64·blockIdx.x, +64) of NW weight matrices
// (NW = 2: gate and up, combined by SwiGLU) of cols columns with ncol ≤ 64
// activation rows x[xrow[c]] (xrow in shared memory), writing output c at
// out + orow[c]·ld + row.
template <class T, int NW>
__device__ __forceinline__ void rt_gemm_tile(const u8 *w0, const u8 *w1, i64 row_bytes, int rows, int cols,
                                             const float *x, const int *xrow, int ncol, float *out, const int *orow,
                                             i64 ld, int accumulate) {
	__shared__ float ws[NW][RT_TM][33];
	__shared__ float xs[32][RT_TN + 1];
	int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
	int row0 = blockIdx.x * RT_TM;
	float acc[NW][4][4];
#pragma unroll
	for (int m = 0; m < NW; m++) {
#pragma unroll
		for (int i = 0; i < 4; i++) {
#pragma unroll
			for (int j = 0; j < 4; j++) {
				acc[m][i][j] = 0.0f;
			}
		}
	}
	for (int k0 = 0; k0 < cols; k0 += 32) {
		__syncthreads(); // the previous step's reads of ws and xs are done
		if (tid < NW * RT_TM) {
			int m = tid / RT_TM, r = tid % RT_TM;
			float *wr = ws[m][r];
			if (row0 + r < rows) {
				const u8 *w = (m ? w1 : w0) + (i64)(row0 + r) * row_bytes + (i64)(k0 / T::QK) * T::BYTES;
				T::dequant32(w, (k0 % T::QK) / 32, wr);
			} else {
				for (int j = 0; j < 32; j++) {
					wr[j] = 0.0f;
				}
			}
		}
		for (int i = tid; i < 32 * RT_TN; i += blockDim.x) {
			int kk = i & 31, c = i >> 5;
			xs[kk][c] = c < ncol ? x[(i64)xrow[c] * cols + k0 + kk] : 0.0f;
		}
		__syncthreads();
#pragma unroll 4
		for (int kk = 0; kk < 32; kk++) {
			float b[4];
#pragma unroll
			for (int j = 0; j < 4; j++) {
				b[j] = xs[kk][ty + 16 * j];
			}
#pragma unroll
			for (int m = 0; m < NW; m++) {
#pragma unroll
				for (int i = 0; i < 4; i++) {
					float a = ws[m][tx + 16 * i][kk];
#pragma unroll
					for (int j = 0; j < 4; j++) {
						acc[m][i][j] += a * b[j];
					}
				}
			}
		}
	}
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int r = row0 + tx + 16 * i;
#pragma unroll
		for (int j = 0; j < 4; j++) {
			int c = ty + 16 * j;
			if (r < rows && c < ncol) {
				float v = NW == 2 ? rt_silu(acc[0][i][j]) * acc[NW - 1][i][j] : acc[0][i][j];
				float *o = out + (i64)orow[c] * ld + r;
				*o = accumulate ? *o + v : v;
			}
		}
	}
}

// rt_gemm: dst[t·rows + r] (+)= W[r]·x[t] for a 64 × 64 tile of rows and
// tokens.
template <class T>
__device__ __forceinline__ void rt_gemm(const u8 *w, i64 row_bytes, const float *x, float *dst, int rows, int cols,
                                        int tokens, int accumulate) {
	__shared__ int cols_of[RT_TN];
	int t0 = blockIdx.y * RT_TN;
	for (int c = threadIdx.x; c < RT_TN; c += blockDim.x) {
		cols_of[c] = t0 + c;
	}
	rt_gemm_tile<T, 1>(w, w, row_bytes, rows, cols, x, cols_of, tokens - t0 < RT_TN ? tokens - t0 : RT_TN, dst, cols_of, rows,
	                   accumulate);
}

// rt_moe_tile reads tile blockIdx.y of the grouping (rt_prefill_moe_group): its
// slot, and the pairs of its columns into pair[].
__device__ __forceinline__ bool rt_moe_tile(const int *tiles, const int *order, int *pair, int *slot, int *ncol) {
	int i = blockIdx.y;
	if (i >= tiles[0]) {
		return false;
	}
	*slot = tiles[1 + 3 * i];
	int start = tiles[2 + 3 * i];
	*ncol = tiles[3 + 3 * i];
	for (int c = threadIdx.x; c < *ncol; c += blockDim.x) {
		pair[c] = order[start + c];
	}
	return true;
}

// rt_moe_gate_up_gemm (prefill): h[p] = SiLU(gate·x[p/k])·(up·x[p/k]) for
// the pairs p of one tile, all routed to the tile's slot.
template <class T>
__device__ __forceinline__ void rt_moe_gate_up_gemm(const u8 *plane, i64 slot_bytes, i64 gate_off, i64 up_off,
                                                    i64 row_bytes, const int *tiles, const int *order, const float *x,
                                                    int k, int ff, int embd, float *h) {
	__shared__ int pair[RT_TN], tok[RT_TN];
	int slot, ncol;
	if (!rt_moe_tile(tiles, order, pair, &slot, &ncol)) {
		return;
	}
	for (int c = threadIdx.x; c < ncol; c += blockDim.x) {
		tok[c] = order[tiles[2 + 3 * blockIdx.y] + c] / k;
	}
	const u8 *base = plane + (i64)slot * slot_bytes;
	rt_gemm_tile<T, 2>(base + gate_off, base + up_off, row_bytes, ff, embd, x, tok, ncol, h, pair, ff, 0);
}

// rt_moe_down_gemm (prefill): y[p] = down·h[p] for the pairs of one tile.
template <class T>
__device__ __forceinline__ void rt_moe_down_gemm(const u8 *plane, i64 slot_bytes, i64 down_off, i64 row_bytes,
                                                 const int *tiles, const int *order, const float *h, int embd, int ff,
                                                 float *y) {
	__shared__ int pair[RT_TN];
	int slot, ncol;
	if (!rt_moe_tile(tiles, order, pair, &slot, &ncol)) {
		return;
	}
	const u8 *w = plane + (i64)slot * slot_bytes + down_off;
	rt_gemm_tile<T, 1>(w, w, row_bytes, embd, ff, h, pair, ncol, y, pair, embd, 0);
}

// rt_embed (decode): row i = blockIdx.x of dst (cols floats) is row
// tokens[i] of the table dequantized; each thread writes one run of 32
// values, threadIdx.x + blockDim.x·blockIdx.y. An id outside [0, rows)
// fills its row with NaN rather than reading past the table.
template <class T>
__device__ __forceinline__ void rt_embed(const u8 *table, i64 row_bytes, int rows, int cols, const int *tokens,
                                         float *dst) {
	int run = blockIdx.y * blockDim.x + threadIdx.x;
	if (run >= cols / 32) {
		return;
	}
	int id = tokens[blockIdx.x];
	float *o = dst + (i64)blockIdx.x * cols + (i64)run * 32;
	if (id < 0 || id >= rows) {
		for (int j = 0; j < 32; j++) {
			o[j] = rt_nan();
		}
		return;
	}
	int k0 = run * 32;
	T::dequant32(table + (i64)id * row_bytes + (i64)(k0 / T::QK) * T::BYTES, (k0 % T::QK) / 32, o);
}
