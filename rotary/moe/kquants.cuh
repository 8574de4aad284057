// Device functions of the super-block weight formats (256 values per block):
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS, under the contract of
// quant_common.cuh (rt_dot_T and rt_dequant32_T per type T). The layouts are
// ggml's, as experts/dequant.go spells them out.
//
// Value chunk c (values 32c .. 32c+31) of every one of these formats meets
// activation block x[c], so a dot product is, per chunk, an exact integer sum
// of code·q (dp4a, four signed bytes at a time) scaled once in float by the
// chunk's integer scale and x[c].d. Offsets that do not depend on the code (the
// mins of Q2_K, Q4_K and Q5_K) are multiplied by the activation sums: x[c].sum
// where the offset covers a whole 32-value chunk (Q4_K, Q5_K), an integer
// Σ m·q where it changes every 16 values (Q2_K). Q3_K's and Q6_K's constant
// code offsets (-4, -32) are folded into the codes before the dp4a, so no sum
// is needed.
//
// Alignment: w must be 4-byte aligned for Q2_K (84-byte blocks), Q4_K (144),
// Q5_K (176) and IQ4_XS (136); 2-byte aligned for Q3_K (110) and Q6_K (210),
// whose blocks laid end to end from an aligned row start are only 2-aligned.
// That holds for every block of a row that starts 4-aligned.
//
// rt_dequant32_T reproduces experts.Dequantize bit for bit: the same float32
// products and differences in the same order. Where a product is followed by a
// subtraction (Q2_K, Q4_K, Q5_K) the device code uses round-to-nearest
// intrinsics, which NVRTC never fuses into an FMA; the host emulator must not
// contract either (g++ does not without FMA in its target, or with
// -ffp-contract=off).

// rt_kq_u32 loads 4 bytes from a 4-byte aligned address.
__device__ __forceinline__ u32 rt_kq_u32(const u8 *p) {
	return *(const u32 *)p;
}

// rt_kq_u32h loads 4 bytes from a 2-byte aligned address.
__device__ __forceinline__ u32 rt_kq_u32h(const u8 *p) {
	const u16 *h = (const u16 *)p;
	return (u32)h[0] | ((u32)h[1] << 16);
}

// rt_kq_f16 reads the binary16 at p (2-byte aligned) as a float.
__device__ __forceinline__ float rt_kq_f16(const u8 *p) {
	return rt_half_to_float(*(const u16 *)p);
}

// rt_kq_q4 is activation q bytes [4i, 4i+4) of x as one int (the block is
// 4-aligned and q starts at byte 8).
__device__ __forceinline__ int rt_kq_q4(const rt_q8x32 *x, int i) {
	return ((const int *)x->q)[i];
}

// rt_kq_msub is float32(a·b) - c, both rounded, never fused: dequantization
// must round the product as experts.Dequantize does.
__device__ __forceinline__ float rt_kq_msub(float a, float b, float c) {
#ifdef __CUDA_ARCH__
	return __fsub_rn(__fmul_rn(a, b), c);
#else
	return a * b - c;
#endif
}

// rt_kq_perm picks byte (s >> 4k) & 7 of the eight bytes b:a (a is bytes
// 0-3) into byte k of the result (PTX prmt in its default mode; every selector
// nibble here is below 8).
__device__ __forceinline__ u32 rt_kq_perm(u32 a, u32 b, u32 s) {
#ifdef __CUDA_ARCH__
	u32 d;
	asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(s));
	return d;
#else
	u64 ab = ((u64)b << 32) | a;
	u32 d = 0;
	for (int k = 0; k < 4; k++) {
		d |= (u32)((ab >> (8 * ((s >> (4 * k)) & 7))) & 0xff) << (8 * k);
	}
	return d;
#endif
}

// The 16 non-linear levels of IQ4_NL/IQ4_XS as signed bytes, four per word:
// -127 -104 -83 -65 | -49 -35 -22 -10 | 1 13 25 38 | 53 69 89 113.
#define RT_KQ_IQ4_T0 0xbfad9881u
#define RT_KQ_IQ4_T1 0xf6eaddcfu
#define RT_KQ_IQ4_T2 0x26190d01u
#define RT_KQ_IQ4_T3 0x71594535u

// rt_kq_iq4_pair looks up the two nibbles of each byte of the low 16 bits of
// q: bytes [level(lo0), level(hi0), level(lo1), level(hi1)]. Each nibble's
// low three bits pick a level in each half of the table, its top bit the half.
__device__ __forceinline__ u32 rt_kq_iq4_pair(u32 q) {
	u32 lo = rt_kq_perm(RT_KQ_IQ4_T0, RT_KQ_IQ4_T1, q & 0x7777u);
	u32 hi = rt_kq_perm(RT_KQ_IQ4_T2, RT_KQ_IQ4_T3, q & 0x7777u);
	return rt_kq_perm(lo, hi, 0x3210u | ((q & 0x8888u) >> 1));
}

// rt_kq_iq4 maps the 8 nibbles of the four bytes qs to levels: *lo gets those
// of the low nibbles (in byte order), *hi those of the high ones.
__device__ __forceinline__ void rt_kq_iq4(u32 qs, int *lo, int *hi) {
	u32 a = rt_kq_iq4_pair(qs);       // lo0 hi0 lo1 hi1
	u32 b = rt_kq_iq4_pair(qs >> 16); // lo2 hi2 lo3 hi3
	*lo = (int)rt_kq_perm(a, b, 0x6420u);
	*hi = (int)rt_kq_perm(a, b, 0x7531u);
}

// ---- Q2_K: scales[16] (low nibble scale, high nibble min, per 16 values),
// qs[64] (2-bit codes), d, dmin (f16) at 80 and 82; value (d·sc)·q - dmin·m.
// Chunk c takes bit pair c&3 of qs[32(c>>2) .. +32]; its 16-value halves use
// scales[2c] and scales[2c+1].

__device__ float rt_dot_q2_K(const u8 *w, const rt_q8x32 *x) {
	float sd = 0.0f, sm = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const u8 *qs = w + 16 + 32 * (c >> 2);
		const int shift = 2 * (c & 3);
		int dot = 0, mins = 0;
#pragma unroll
		for (int half = 0; half < 2; half++) {
			const u32 s = w[2 * c + half];
			// scale·code ≤ 15·3 fits each byte, so one multiply scales four codes
			const u32 sc = s & 15u;
			const int m4 = (int)((s >> 4) * 0x01010101u);
#pragma unroll
			for (int i = 4 * half; i < 4 * half + 4; i++) {
				const int q = rt_kq_q4(x + c, i);
				dot = rt_dp4a((int)(((rt_kq_u32(qs + 4 * i) >> shift) & 0x03030303u) * sc), q, dot);
				mins = rt_dp4a(m4, q, mins);
			}
		}
		sd += x[c].d * (float)dot;
		sm += x[c].d * (float)mins;
	}
	return rt_kq_f16(w + 80) * sd - rt_kq_f16(w + 82) * sm;
}

__device__ void rt_dequant32_q2_K(const u8 *w, int chunk, float *out) {
	const float d = rt_kq_f16(w + 80), dmin = rt_kq_f16(w + 82);
	const u8 *qs = w + 16 + 32 * (chunk >> 2);
	const int shift = 2 * (chunk & 3);
#pragma unroll
	for (int half = 0; half < 2; half++) {
		const u8 s = w[2 * chunk + half];
		const float dl = d * (float)(s & 15);
		const float ml = dmin * (float)(s >> 4);
#pragma unroll
		for (int l = 16 * half; l < 16 * half + 16; l++) {
			out[l] = rt_kq_msub(dl, (float)((qs[l] >> shift) & 3), ml);
		}
	}
}

// ---- Q3_K: hmask[32] (high bits), qs[64] (low 2 bits), scales[12] (sixteen
// 6-bit scales, biased by 32), d (f16) at 108; value (d·sc)·q, q in [-4, 3]:
// the low bits, minus 4 where the high bit is clear. Chunk c takes bit pair
// c&3 of qs[32(c>>2) .. +32] and bit c of hmask; its halves use scales 2c and
// 2c+1.

// rt_kq_q3_scale is Q3_K's scale j (0-15), unbiased.
__device__ __forceinline__ int rt_kq_q3_scale(const u8 *sc, int j) {
	const int low = j < 8 ? (sc[j] & 15) : (sc[j - 8] >> 4);
	const int high = (sc[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
	return (low | (high << 4)) - 32;
}

// rt_kq_q3_codes is the signed values of four Q3_K codes: low bits lo2
// (one pair per byte), high bits hb (bit 0 of each byte). A value is lo2 when
// the high bit is set and lo2 - 4 otherwise, i.e. the byte 0xfc | lo2.
__device__ __forceinline__ int rt_kq_q3_codes(u32 lo2, u32 hb) {
	return (int)(lo2 | ((hb ^ 0x01010101u) * 0xfcu));
}

__device__ float rt_dot_q3_K(const u8 *w, const rt_q8x32 *x) {
	const u8 *sc = w + 96;
	float acc = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const u8 *qs = w + 32 + 32 * (c >> 2);
		const int shift = 2 * (c & 3);
		int part[2];
#pragma unroll
		for (int half = 0; half < 2; half++) {
			int s = 0;
#pragma unroll
			for (int i = 4 * half; i < 4 * half + 4; i++) {
				const u32 lo2 = (rt_kq_u32h(qs + 4 * i) >> shift) & 0x03030303u;
				const u32 hb = (rt_kq_u32h(w + 4 * i) >> c) & 0x01010101u;
				s = rt_dp4a(rt_kq_q3_codes(lo2, hb), rt_kq_q4(x + c, i), s);
			}
			part[half] = s;
		}
		acc += x[c].d * (float)(rt_kq_q3_scale(sc, 2 * c) * part[0] + rt_kq_q3_scale(sc, 2 * c + 1) * part[1]);
	}
	return rt_kq_f16(w + 108) * acc;
}

__device__ void rt_dequant32_q3_K(const u8 *w, int chunk, float *out) {
	const float d = rt_kq_f16(w + 108);
	const u8 *qs = w + 32 + 32 * (chunk >> 2);
	const int shift = 2 * (chunk & 3);
#pragma unroll
	for (int half = 0; half < 2; half++) {
		const float dl = d * (float)rt_kq_q3_scale(w + 96, 2 * chunk + half);
#pragma unroll
		for (int l = 16 * half; l < 16 * half + 16; l++) {
			int v = (qs[l] >> shift) & 3;
			if (!((w[l] >> chunk) & 1)) {
				v -= 4;
			}
			out[l] = dl * (float)v;
		}
	}
}

// ---- Q4_K and Q5_K: d, dmin (f16), scales[12] (eight 6-bit scales and
// eight 6-bit mins), then Q5_K's qh[32], then qs[128]. Chunk c is the low
// nibbles (c even) or high nibbles (c odd) of qs[32(c>>1) .. +32]; Q5_K's
// fifth bit of value l is bit c of qh[l]. Value (d·sc)·q - dmin·m.

// rt_kq_scale_min unpacks scale and min j (0-7) of a Q4_K/Q5_K block from its
// packed 6-bit values at q.
__device__ __forceinline__ void rt_kq_scale_min(const u8 *q, int j, int *sc, int *m) {
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

// rt_kq_dot_q45 is the Q4_K (qh == 0) or Q5_K dot product of the block whose
// header (d, dmin, scales) is at w, codes at qs and fifth bits at qh.
__device__ __forceinline__ float rt_kq_dot_q45(const u8 *w, const u8 *qh, const u8 *qs, const rt_q8x32 *x) {
	float sd = 0.0f, sm = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const int shift = 4 * (c & 1);
		int dot = 0;
#pragma unroll
		for (int i = 0; i < 8; i++) {
			u32 v = (rt_kq_u32(qs + 32 * (c >> 1) + 4 * i) >> shift) & 0x0f0f0f0fu;
			if (qh) {
				v |= ((rt_kq_u32(qh + 4 * i) >> c) & 0x01010101u) << 4;
			}
			dot = rt_dp4a((int)v, rt_kq_q4(x + c, i), dot);
		}
		int sc, m;
		rt_kq_scale_min(w + 4, c, &sc, &m);
		sd += x[c].d * (float)(sc * dot);
		sm += x[c].sum * (float)m;
	}
	return rt_kq_f16(w) * sd - rt_kq_f16(w + 2) * sm;
}

// rt_kq_dequant_q45 is rt_dequant32 of Q4_K (qh == 0) or Q5_K.
__device__ __forceinline__ void rt_kq_dequant_q45(const u8 *w, const u8 *qh, const u8 *qs, int chunk, float *out) {
	int sc, m;
	rt_kq_scale_min(w + 4, chunk, &sc, &m);
	const float dl = rt_kq_f16(w) * (float)sc;
	const float ml = rt_kq_f16(w + 2) * (float)m;
	const u8 *q = qs + 32 * (chunk >> 1);
	const int shift = 4 * (chunk & 1);
#pragma unroll
	for (int l = 0; l < 32; l++) {
		int v = (q[l] >> shift) & 15;
		if (qh) {
			v |= ((qh[l] >> chunk) & 1) << 4;
		}
		out[l] = rt_kq_msub(dl, (float)v, ml);
	}
}

__device__ float rt_dot_q4_K(const u8 *w, const rt_q8x32 *x) {
	return rt_kq_dot_q45(w, 0, w + 16, x);
}

__device__ void rt_dequant32_q4_K(const u8 *w, int chunk, float *out) {
	rt_kq_dequant_q45(w, 0, w + 16, chunk, out);
}

__device__ float rt_dot_q5_K(const u8 *w, const rt_q8x32 *x) {
	return rt_kq_dot_q45(w, w + 16, w + 48, x);
}

__device__ void rt_dequant32_q5_K(const u8 *w, int chunk, float *out) {
	rt_kq_dequant_q45(w, w + 16, w + 48, chunk, out);
}

// ---- Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8,
// per 16 values), d (f16) at 208; value (d·sc)·(q-32). Chunk c = 4h+k takes
// nibble k>>1 of ql[64h + 32(k&1) .. +32] and bit pair k of qh[32h .. +32];
// its halves use scales 8h+2k and 8h+2k+1.

// rt_kq_q6_codes is the signed values (code - 32) of four 6-bit codes, one per
// byte: the bias is subtracted per byte without borrows (each byte is first
// lifted to 128 + code, so it stays within its byte).
__device__ __forceinline__ int rt_kq_q6_codes(u32 code) {
	return (int)(((code | 0x80808080u) - 0x20202020u) ^ 0x80808080u);
}

__device__ float rt_dot_q6_K(const u8 *w, const rt_q8x32 *x) {
	const i8 *sc = (const i8 *)(w + 192);
	float acc = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const int h = c >> 2, k = c & 3;
		const u8 *ql = w + 64 * h + 32 * (k & 1);
		const u8 *qh = w + 128 + 32 * h;
		int part[2];
#pragma unroll
		for (int half = 0; half < 2; half++) {
			int s = 0;
#pragma unroll
			for (int i = 4 * half; i < 4 * half + 4; i++) {
				const u32 code = ((rt_kq_u32h(ql + 4 * i) >> (4 * (k >> 1))) & 0x0f0f0f0fu) |
				                 (((rt_kq_u32h(qh + 4 * i) >> (2 * k)) & 0x03030303u) << 4);
				s = rt_dp4a(rt_kq_q6_codes(code), rt_kq_q4(x + c, i), s);
			}
			part[half] = s;
		}
		acc += x[c].d * (float)(sc[8 * h + 2 * k] * part[0] + sc[8 * h + 2 * k + 1] * part[1]);
	}
	return rt_kq_f16(w + 208) * acc;
}

__device__ void rt_dequant32_q6_K(const u8 *w, int chunk, float *out) {
	const float d = rt_kq_f16(w + 208);
	const int h = chunk >> 2, k = chunk & 3;
	const u8 *ql = w + 64 * h + 32 * (k & 1);
	const u8 *qh = w + 128 + 32 * h;
#pragma unroll
	for (int half = 0; half < 2; half++) {
		const float dl = d * (float)((const i8 *)w)[192 + 8 * h + 2 * k + half];
#pragma unroll
		for (int l = 16 * half; l < 16 * half + 16; l++) {
			const int q = ((ql[l] >> (4 * (k >> 1))) & 15) | (((qh[l] >> (2 * k)) & 3) << 4);
			out[l] = dl * (float)(q - 32);
		}
	}
}

// ---- IQ4_XS: d (f16), scales_h (u16: 2 high bits per chunk), scales_l[4]
// (4 low bits per chunk), qs[128]; chunk c has scale ls - 32 and the 16 bytes
// qs[16c .. +16]: value j is the level of the low nibble of byte j, value
// j+16 that of its high nibble. Value (d·(ls-32))·level.

// rt_kq_iq4xs_scale is IQ4_XS's scale of chunk c, unbiased.
__device__ __forceinline__ int rt_kq_iq4xs_scale(const u8 *w, int c) {
	const int low = (w[4 + (c >> 1)] >> (4 * (c & 1))) & 15;
	const int high = (*(const u16 *)(w + 2) >> (2 * c)) & 3;
	return (low | (high << 4)) - 32;
}

__device__ float rt_dot_iq4_xs(const u8 *w, const rt_q8x32 *x) {
	float acc = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		int s = 0;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			int lo, hi;
			rt_kq_iq4(rt_kq_u32(w + 8 + 16 * c + 4 * i), &lo, &hi);
			s = rt_dp4a(lo, rt_kq_q4(x + c, i), s);
			s = rt_dp4a(hi, rt_kq_q4(x + c, i + 4), s);
		}
		acc += x[c].d * (float)(rt_kq_iq4xs_scale(w, c) * s);
	}
	return rt_kq_f16(w) * acc;
}

__device__ void rt_dequant32_iq4_xs(const u8 *w, int chunk, float *out) {
	const float dl = rt_kq_f16(w) * (float)rt_kq_iq4xs_scale(w, chunk);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int lo, hi;
		rt_kq_iq4(rt_kq_u32(w + 8 + 16 * chunk + 4 * i), &lo, &hi);
#pragma unroll
		for (int b = 0; b < 4; b++) {
			out[4 * i + b] = dl * (float)(i8)(lo >> (8 * b));
			out[16 + 4 * i + b] = dl * (float)(i8)(hi >> (8 * b));
		}
	}
}
