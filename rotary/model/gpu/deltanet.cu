// Gated DeltaNet: the causal depthwise convolution with SiLU, and the gated
// delta rule recurrence.

#define RTM_CONV_MAXK 8

// rt_decode_conv_silu: a thread per channel c of C. x holds T rows of C inputs, state
// the K-1 inputs before them (oldest row first), kernel C rows of K taps.
// dst[t][c] = SiLU(Σ_k kernel[c][k]·in[t-K+1+k]) summed from k = 0; state ends
// holding the last K-1 inputs. The window lives in registers (K <= 8).
extern "C" __global__ void __launch_bounds__(256) rt_decode_conv_silu(float *dst, const float *x, float *state,
                                                               const float *kernel, int T, int C, int K) {
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C) {
		return;
	}
	float win[RTM_CONV_MAXK - 1];
	float w[RTM_CONV_MAXK];
#pragma unroll
	for (int r = 0; r < RTM_CONV_MAXK - 1; r++) {
		win[r] = r < K - 1 ? state[(i64)r * C + c] : 0.0f;
	}
#pragma unroll
	for (int k = 0; k < RTM_CONV_MAXK; k++) {
		w[k] = k < K ? kernel[(i64)c * K + k] : 0.0f;
	}
	for (int t = 0; t < T; t++) {
		float in = x[(i64)t * C + c];
		float sum = 0.0f;
#pragma unroll
		for (int k = 0; k < RTM_CONV_MAXK - 1; k++) {
			if (k < K - 1) {
				sum += win[k] * w[k];
			}
		}
#pragma unroll
		for (int k = 0; k < RTM_CONV_MAXK; k++) {
			if (k == K - 1) {
				sum += in * w[k];
			}
		}
		dst[(i64)t * C + c] = rtm_silu(sum);
#pragma unroll
		for (int r = 0; r < RTM_CONV_MAXK - 1; r++) {
			if (r + 1 < K - 1) {
				win[r] = win[r + 1];
			} else if (r + 1 == K - 1) {
				win[r] = in;
			}
		}
	}
#pragma unroll
	for (int r = 0; r < RTM_CONV_MAXK - 1; r++) {
		if (r < K - 1) {
			state[(i64)r * C + c] = win[r];
		}
	}
}

#define RTM_DN_MAXS 128  // largest head dimension
#define RTM_DN_PER (RTM_DN_MAXS / 32)

// rtm_deltanet is the gated delta rule of value head blockIdx.x over a batch
// of T tokens, token by token. The head's state M (S×S, stored by columns:
// state[h][j·S + i] = M[i][j]) is split by columns over blockIdx.y: each of
// the block's WARPS warps keeps COLS columns in registers for the whole
// batch, so a decode step and a prompt run the same code and the state is
// read and written once. Per token, with q, k the L2-normalised query and key
// of key head h mod Hk:
//
//   M ← decay·M;  δⱼ = β·(vⱼ − Σᵢ M[i][j]·kᵢ);  M[i][j] += kᵢ·δⱼ;  outⱼ = scale·Σᵢ M[i][j]·qᵢ
//
// decay = e^(softplus(alpha + dtBias[h])·A[h]), β = sigmoid(beta). qkv rows
// hold Hk query heads, Hk key heads, then Hv value heads of S values; alpha and
// beta rows hold Hv values; dst rows Hv·S. S is a multiple of 32, at most 128.
// With NORM a block holds a whole head (WARPS·COLS >= S) and applies Gated
// DeltaNet's output norm before writing: out / rms(out) · w · SiLU(z), z laid
// out as dst.
template <int WARPS, int COLS, bool NORM>
__device__ __forceinline__ void rtm_deltanet(float *dst, const float *qkv, const float *alpha, const float *beta,
                                             const float *dtBias, const float *A, float *state, const float *z,
                                             const float *w, int T, int Hk, int Hv, int S, float eps, float scale) {
	__shared__ float qs[RTM_DN_MAXS], ks[RTM_DN_MAXS], outs[RTM_DN_MAXS];
	__shared__ float red[32];
	int h = blockIdx.x, kh = h % Hk;
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int col0 = (blockIdx.y * WARPS + warp) * COLS;
	int per = S / 32;
	i64 qkvCols = (i64)(2 * Hk + Hv) * S;
	float *st = state + (i64)h * S * S;

	float m[COLS][RTM_DN_PER];
#pragma unroll
	for (int c = 0; c < COLS; c++) {
#pragma unroll
		for (int r = 0; r < RTM_DN_PER; r++) {
			m[c][r] = (r < per && col0 + c < S) ? st[(i64)(col0 + c) * S + lane + 32 * r] : 0.0f;
		}
	}
	float dtb = dtBias[h], a = A[h];

	for (int t = 0; t < T; t++) {
		const float *row = qkv + t * qkvCols;
		// L2-normalised query and key: 1/max(‖x‖, eps).
		float qss = 0.0f, kss = 0.0f;
		for (int i = threadIdx.x; i < S; i += blockDim.x) {
			float qv = row[(i64)kh * S + i], kv = row[(i64)(Hk + kh) * S + i];
			qs[i] = qv;
			ks[i] = kv;
			qss += qv * qv;
			kss += kv * kv;
		}
		qss = rtm_block_sum(qss, red);
		kss = rtm_block_sum(kss, red);
		float qn = 1.0f / rtm_max(sqrtf(qss), eps), kn = 1.0f / rtm_max(sqrtf(kss), eps);
		float g = alpha[(i64)t * Hv + h] + dtb;
		g = g > 20.0f ? g : logf(1.0f + expf(g));
		float decay = expf(g * a);
		float b = rtm_sigmoid(beta[(i64)t * Hv + h]);

		float kr[RTM_DN_PER], qr[RTM_DN_PER];
#pragma unroll
		for (int r = 0; r < RTM_DN_PER; r++) {
			kr[r] = r < per ? ks[lane + 32 * r] * kn : 0.0f;
			qr[r] = r < per ? qs[lane + 32 * r] * qn : 0.0f;
		}
		i64 out = (i64)t * Hv * S + (i64)h * S;
#pragma unroll
		for (int c = 0; c < COLS; c++) {
			int j = col0 + c;
			float dot = 0.0f;
#pragma unroll
			for (int r = 0; r < RTM_DN_PER; r++) {
				m[c][r] *= decay;
				dot += m[c][r] * kr[r];
			}
			dot = rtm_warp_sum(dot);
			float v = j < S ? row[(i64)(2 * Hk + h) * S + j] : 0.0f;
			float delta = (v - dot) * b;
			float o = 0.0f;
#pragma unroll
			for (int r = 0; r < RTM_DN_PER; r++) {
				m[c][r] += kr[r] * delta;
				o += m[c][r] * qr[r];
			}
			o = rtm_warp_sum(o);
			if (lane == 0 && j < S) {
				if (NORM) {
					outs[j] = o * scale;
				} else {
					dst[out + j] = o * scale;
				}
			}
		}
		if (NORM) {
			__syncthreads();
			float ss = 0.0f;
			for (int i = threadIdx.x; i < S; i += blockDim.x) {
				ss += outs[i] * outs[i];
			}
			ss = rtm_block_sum(ss, red);
			float ns = 1.0f / sqrtf(ss / (float)S + eps);
			for (int i = threadIdx.x; i < S; i += blockDim.x) {
				float y = outs[i] * ns * w[i];
				dst[out + i] = y * rtm_silu(z[out + i]);
			}
		}
		__syncthreads(); // qs, ks and outs are rewritten for the next token
	}

#pragma unroll
	for (int c = 0; c < COLS; c++) {
#pragma unroll
		for (int r = 0; r < RTM_DN_PER; r++) {
			if (r < per && col0 + c < S) {
				st[(i64)(col0 + c) * S + lane + 32 * r] = m[c][r];
			}
		}
	}
}

// rt_decode_deltanet: grid (Hv, S/16), 4 warps of 4 columns per block.
extern "C" __global__ void __launch_bounds__(128)
    rt_decode_deltanet(float *dst, const float *qkv, const float *alpha, const float *beta, const float *dtBias,
                       const float *A, float *state, int T, int Hk, int Hv, int S, float eps, float scale) {
	rtm_deltanet<4, 4, false>(dst, qkv, alpha, beta, dtBias, A, state, (const float *)0, (const float *)0, T, Hk, Hv,
	                          S, eps, scale);
}

// rt_decode_deltanet_norm: the same with the gated output norm fused in: grid
// (Hv), 8 warps of 16 columns, a whole head per block.
extern "C" __global__ void __launch_bounds__(256)
    rt_decode_deltanet_norm(float *dst, const float *qkv, const float *alpha, const float *beta, const float *dtBias,
                            const float *A, float *state, const float *z, const float *w, int T, int Hk, int Hv,
                            int S, float eps, float scale) {
	rtm_deltanet<8, 16, true>(dst, qkv, alpha, beta, dtBias, A, state, z, w, T, Hk, Hv, S, eps, scale);
}
