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
// Loads: a thread reads a block of its own, so the lanes of a warp read
// addresses a block apart and every load instruction touches as many cache
// lines as there are lanes. The dot products therefore read a whole block
// into registers with the widest loads its alignment allows: 16 bytes for
// Q4_K and Q5_K, 8 for IQ4_XS, 4 for Q2_K, and for the 2-aligned Q3_K and
// Q6_K the 4-byte words that cover the block, shifted into place (a funnel
// shift of two neighbours).
//
// Alignment of w (what a row of blocks laid end to end gives when the row
// starts 16-aligned): 16 bytes for Q4_K (144-byte blocks) and Q5_K (176),
// 8 for IQ4_XS (136), 4 for Q2_K (84), 2 for Q3_K (110) and Q6_K (210). A
// Q3_K or Q6_K block at an address 2 mod 4 is read from the 4-aligned word
// that starts 2 bytes before it (the end of the block before it in its row),
// never past its end.
//
// rt_dequant32_T reproduces experts.Dequantize bit for bit: the same float32
// products and differences in the same order. Where a product is followed by a
// subtraction (Q2_K, Q4_K, Q5_K) the device code uses round-to-nearest
// intrinsics, which NVRTC never fuses into an FMA (the host emulator compiles
// with -ffp-contract=off).

struct __align__(16) rt_kq_v4 {
	u32 w[4];
};

struct __align__(8) rt_kq_v2 {
	u32 w[2];
};

// rt_kq_ld16 loads the N words (N a multiple of 4) at the 16-aligned p.
template <int N>
__device__ __forceinline__ void rt_kq_ld16(const u8 *p, u32 *out) {
#pragma unroll
	for (int i = 0; i < N / 4; i++) {
		const rt_kq_v4 v = ((const rt_kq_v4 *)p)[i];
#pragma unroll
		for (int k = 0; k < 4; k++) {
			out[4 * i + k] = v.w[k];
		}
	}
}

// rt_kq_ld8 loads the N words (N even) at the 8-aligned p.
template <int N>
__device__ __forceinline__ void rt_kq_ld8(const u8 *p, u32 *out) {
#pragma unroll
	for (int i = 0; i < N / 2; i++) {
		const rt_kq_v2 v = ((const rt_kq_v2 *)p)[i];
		out[2 * i] = v.w[0];
		out[2 * i + 1] = v.w[1];
	}
}

// rt_kq_ld4 loads the N words at the 4-aligned p.
template <int N>
__device__ __forceinline__ void rt_kq_ld4(const u8 *p, u32 *out) {
#pragma unroll
	for (int i = 0; i < N; i++) {
		out[i] = ((const u32 *)p)[i];
	}
}

// rt_kq_ld2 loads the N words at the 2-aligned p from the 4-aligned words
// covering them: a[0] starts at p or 2 bytes before it, and word i is a[i]
// or the upper half of a[i] and the lower half of a[i+1]. The last word read
// is a[N] only when p is 2 mod 4, so nothing past p + 4N is read.
template <int N>
__device__ __forceinline__ void rt_kq_ld2(const u8 *p, u32 *out) {
	const u32 off = (u32)(u64)p & 2u;
	const u32 *a = (const u32 *)(p - off);
	u32 lo = a[0];
#pragma unroll
	for (int i = 0; i < N; i++) {
		const u32 hi = a[i == N - 1 ? N - 1 + (off >> 1) : i + 1];
		out[i] = __funnelshift_r(lo, hi, off << 3);
		lo = hi;
	}
}

// rt_kq_byte is byte j of the words v (j known at compile time, so no
// indexing of a register array at run time).
__device__ __forceinline__ u32 rt_kq_byte(const u32 *v, int j) {
	return (v[j >> 2] >> (8 * (j & 3))) & 0xffu;
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
	return __fsub_rn(__fmul_rn(a, b), c);
}

// The 16 non-linear levels of IQ4_NL/IQ4_XS as signed bytes, four per word:
// -127 -104 -83 -65 | -49 -35 -22 -10 | 1 13 25 38 | 53 69 89 113.
#define RT_KQ_IQ4_T0 0xbfad9881u
#define RT_KQ_IQ4_T1 0xf6eaddcfu
#define RT_KQ_IQ4_T2 0x26190d01u
#define RT_KQ_IQ4_T3 0x71594535u

// rt_kq_iq4_pair looks up the two nibbles of each byte of the low 16 bits of
// q: bytes [level(lo0), level(hi0), level(lo1), level(hi1)]. Each nibble's
// low three bits pick a level in each half of the table (__byte_perm picks
// byte (s >> 4k) & 7 of y:x for byte k), its top bit the half.
__device__ __forceinline__ u32 rt_kq_iq4_pair(u32 q) {
	u32 lo = __byte_perm(RT_KQ_IQ4_T0, RT_KQ_IQ4_T1, q & 0x7777u);
	u32 hi = __byte_perm(RT_KQ_IQ4_T2, RT_KQ_IQ4_T3, q & 0x7777u);
	return __byte_perm(lo, hi, 0x3210u | ((q & 0x8888u) >> 1));
}

// rt_kq_iq4 maps the 8 nibbles of the four bytes qs to levels: *lo gets those
// of the low nibbles (in byte order), *hi those of the high ones.
__device__ __forceinline__ void rt_kq_iq4(u32 qs, int *lo, int *hi) {
	u32 a = rt_kq_iq4_pair(qs);       // lo0 hi0 lo1 hi1
	u32 b = rt_kq_iq4_pair(qs >> 16); // lo2 hi2 lo3 hi3
	*lo = (int)__byte_perm(a, b, 0x6420u);
	*hi = (int)__byte_perm(a, b, 0x7531u);
}

// ---- Q2_K: scales[16] (low nibble scale, high nibble min, per 16 values),
// qs[64] (2-bit codes), d, dmin (f16) at 80 and 82; value (d·sc)·q - dmin·m.
// Chunk c takes bit pair c&3 of qs[32(c>>2) .. +32]; its 16-value halves use
// scales[2c] and scales[2c+1].

__device__ float rt_dot_q2_K(const u8 *w, const rt_q8x32 *x) {
	u32 b[21]; // scales: words 0-3, qs: 4-19, d and dmin: 20
	rt_kq_ld4<21>(w, b);
	float sd = 0.0f, sm = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const u32 *qs = b + 4 + 8 * (c >> 2);
		const int shift = 2 * (c & 3);
		int dot = 0, mins = 0;
#pragma unroll
		for (int half = 0; half < 2; half++) {
			const u32 s = rt_kq_byte(b, 2 * c + half);
			const int m4 = (int)((s >> 4) * 0x01010101u); // the min in every byte
			int part = 0;
#pragma unroll
			for (int i = 4 * half; i < 4 * half + 4; i++) {
				const int q = rt_kq_q4(x + c, i);
				part = rt_dp4a((int)((qs[i] >> shift) & 0x03030303u), q, part);
				mins = rt_dp4a(m4, q, mins);
			}
			dot += (int)(s & 15u) * part;
		}
		sd += x[c].d * (float)dot;
		sm += x[c].d * (float)mins;
	}
	return rt_half_to_float((u16)b[20]) * sd - rt_half_to_float((u16)(b[20] >> 16)) * sm;
}

__device__ void rt_dequant32_q2_K(const u8 *w, int chunk, float *out) {
	const float d = rt_kq_f16(w + 80), dmin = rt_kq_f16(w + 82);
	u32 qs[8];
	rt_kq_ld4<8>(w + 16 + 32 * (chunk >> 2), qs);
	const int shift = 2 * (chunk & 3);
#pragma unroll
	for (int half = 0; half < 2; half++) {
		const u8 s = w[2 * chunk + half];
		const float dl = d * (float)(s & 15);
		const float ml = dmin * (float)(s >> 4);
#pragma unroll
		for (int l = 16 * half; l < 16 * half + 16; l++) {
			out[l] = rt_kq_msub(dl, (float)((rt_kq_byte(qs, l) >> shift) & 3), ml);
		}
	}
}

// ---- Q3_K: hmask[32] (high bits), qs[64] (low 2 bits), scales[12] (sixteen
// 6-bit scales, biased by 32), d (f16) at 108; value (d·sc)·q, q in [-4, 3]:
// the low bits, minus 4 where the high bit is clear. Chunk c takes bit pair
// c&3 of qs[32(c>>2) .. +32] and bit c of hmask; its halves use scales 2c and
// 2c+1.

// rt_kq_q3_scale is Q3_K's scale j (0-15), unbiased, from scales[j & 7]
// (low) and scales[8 + (j & 3)] (high).
__device__ __forceinline__ int rt_kq_q3_scale(u32 low, u32 high, int j) {
	const int l = (j < 8 ? low : low >> 4) & 15;
	const int h = (high >> (2 * (j >> 2))) & 3;
	return (l | (h << 4)) - 32;
}

// rt_kq_q3_codes is the signed values of four Q3_K codes: low bits lo2
// (one pair per byte) and the complements of their high bits nh (bit 0 of
// each byte). A value is lo2 when the high bit is set and lo2 - 4 otherwise,
// i.e. the byte 0xfc | lo2.
__device__ __forceinline__ int rt_kq_q3_codes(u32 lo2, u32 nh) {
	return (int)(lo2 | (nh * 0xfcu));
}

__device__ float rt_dot_q3_K(const u8 *w, const rt_q8x32 *x) {
	u32 b[27]; // hmask: words 0-7, qs: 8-23, scales: 24-26
	rt_kq_ld2<27>(w, b);
	const u32 *sc = b + 24;
	float acc = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const u32 *qs = b + 8 + 8 * (c >> 2);
		const int shift = 2 * (c & 3);
		int part[2];
#pragma unroll
		for (int half = 0; half < 2; half++) {
			int s = 0;
#pragma unroll
			for (int i = 4 * half; i < 4 * half + 4; i++) {
				const u32 lo2 = (qs[i] >> shift) & 0x03030303u;
				const u32 nh = (~b[i] >> c) & 0x01010101u;
				s = rt_dp4a(rt_kq_q3_codes(lo2, nh), rt_kq_q4(x + c, i), s);
			}
			part[half] = s;
		}
		const int j = 2 * c;
		acc += x[c].d * (float)(rt_kq_q3_scale(rt_kq_byte(sc, j & 7), rt_kq_byte(sc, 8 + (j & 3)), j) * part[0] +
		                        rt_kq_q3_scale(rt_kq_byte(sc, (j + 1) & 7), rt_kq_byte(sc, 8 + ((j + 1) & 3)), j + 1) * part[1]);
	}
	return rt_kq_f16(w + 108) * acc;
}

__device__ void rt_dequant32_q3_K(const u8 *w, int chunk, float *out) {
	const float d = rt_kq_f16(w + 108);
	u32 hm[8], qs[8];
	rt_kq_ld2<8>(w, hm);
	rt_kq_ld2<8>(w + 32 + 32 * (chunk >> 2), qs);
	const int shift = 2 * (chunk & 3);
#pragma unroll
	for (int half = 0; half < 2; half++) {
		const int j = 2 * chunk + half;
		const float dl = d * (float)rt_kq_q3_scale(w[96 + (j & 7)], w[104 + (j & 3)], j);
#pragma unroll
		for (int l = 16 * half; l < 16 * half + 16; l++) {
			int v = (rt_kq_byte(qs, l) >> shift) & 3;
			if (!((rt_kq_byte(hm, l) >> chunk) & 1)) {
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

// rt_kq_scale_min unpacks scale and min j (0-7) of a Q4_K/Q5_K block from
// its packed 6-bit values q[12]: a = q[j & 3], b = q[j + 4], and for j ≥ 4
// c = q[j].
__device__ __forceinline__ void rt_kq_scale_min(u32 a, u32 b, u32 c, int j, int *sc, int *m) {
	if (j < 4) {
		*sc = a & 63;
		*m = b & 63;
	} else {
		*sc = (b & 15) | ((a >> 6) << 4);
		*m = (b >> 4) | ((c >> 6) << 4);
	}
}

// rt_kq_dot_q45 is the Q4_K (Q5 false) or Q5_K dot product of a block read
// into b: d and dmin in word 0, scales in 1-3, then (Q5_K) qh in 8 words,
// then qs in 32.
template <bool Q5>
__device__ __forceinline__ float rt_kq_dot_q45(const u32 *b, const rt_q8x32 *x) {
	const u32 *scales = b + 1, *qh = b + 4, *qs = b + (Q5 ? 12 : 4);
	float sd = 0.0f, sm = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const int shift = 4 * (c & 1);
		int dot = 0;
#pragma unroll
		for (int i = 0; i < 8; i++) {
			u32 v = (qs[8 * (c >> 1) + i] >> shift) & 0x0f0f0f0fu;
			if (Q5) {
				v |= ((qh[i] >> c) & 0x01010101u) << 4;
			}
			dot = rt_dp4a((int)v, rt_kq_q4(x + c, i), dot);
		}
		int sc, m;
		rt_kq_scale_min(rt_kq_byte(scales, c & 3), rt_kq_byte(scales, c + 4), rt_kq_byte(scales, c & 7), c, &sc, &m);
		sd += x[c].d * (float)(sc * dot);
		sm += x[c].sum * (float)m;
	}
	return rt_half_to_float((u16)b[0]) * sd - rt_half_to_float((u16)(b[0] >> 16)) * sm;
}

// rt_kq_dequant_q45 is rt_dequant32 of Q4_K (Q5 false) or Q5_K.
template <bool Q5>
__device__ __forceinline__ void rt_kq_dequant_q45(const u8 *w, int chunk, float *out) {
	const u8 *scales = w + 4;
	int sc, m;
	rt_kq_scale_min(scales[chunk & 3], scales[chunk + 4], scales[chunk], chunk, &sc, &m);
	const float dl = rt_kq_f16(w) * (float)sc;
	const float ml = rt_kq_f16(w + 2) * (float)m;
	u32 q[8], qh[8];
	rt_kq_ld16<8>(w + (Q5 ? 48 : 16) + 32 * (chunk >> 1), q);
	if (Q5) {
		rt_kq_ld16<8>(w + 16, qh);
	}
	const int shift = 4 * (chunk & 1);
#pragma unroll
	for (int l = 0; l < 32; l++) {
		u32 v = (rt_kq_byte(q, l) >> shift) & 15;
		if (Q5) {
			v |= ((rt_kq_byte(qh, l) >> chunk) & 1) << 4;
		}
		out[l] = rt_kq_msub(dl, (float)v, ml);
	}
}

__device__ float rt_dot_q4_K(const u8 *w, const rt_q8x32 *x) {
	u32 b[36];
	rt_kq_ld16<36>(w, b);
	return rt_kq_dot_q45<false>(b, x);
}

__device__ void rt_dequant32_q4_K(const u8 *w, int chunk, float *out) {
	rt_kq_dequant_q45<false>(w, chunk, out);
}

__device__ float rt_dot_q5_K(const u8 *w, const rt_q8x32 *x) {
	u32 b[44];
	rt_kq_ld16<44>(w, b);
	return rt_kq_dot_q45<true>(b, x);
}

__device__ void rt_dequant32_q5_K(const u8 *w, int chunk, float *out) {
	rt_kq_dequant_q45<true>(w, chunk, out);
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
	u32 b[52]; // ql: words 0-31, qh: 32-47, scales: 48-51
	rt_kq_ld2<52>(w, b);
	float acc = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		const int h = c >> 2, k = c & 3;
		const u32 *ql = b + 16 * h + 8 * (k & 1);
		const u32 *qh = b + 32 + 8 * h;
		int part[2];
#pragma unroll
		for (int half = 0; half < 2; half++) {
			int s = 0;
#pragma unroll
			for (int i = 4 * half; i < 4 * half + 4; i++) {
				const u32 code = ((ql[i] >> (4 * (k >> 1))) & 0x0f0f0f0fu) | (((qh[i] >> (2 * k)) & 0x03030303u) << 4);
				s = rt_dp4a(rt_kq_q6_codes(code), rt_kq_q4(x + c, i), s);
			}
			part[half] = s;
		}
		const int j = 8 * h + 2 * k;
		acc += x[c].d * (float)((i8)rt_kq_byte(b + 48, j) * part[0] + (i8)rt_kq_byte(b + 48, j + 1) * part[1]);
	}
	return rt_kq_f16(w + 208) * acc;
}

__device__ void rt_dequant32_q6_K(const u8 *w, int chunk, float *out) {
	const float d = rt_kq_f16(w + 208);
	const int h = chunk >> 2, k = chunk & 3;
	u32 ql[8], qh[8];
	rt_kq_ld2<8>(w + 64 * h + 32 * (k & 1), ql);
	rt_kq_ld2<8>(w + 128 + 32 * h, qh);
#pragma unroll
	for (int half = 0; half < 2; half++) {
		const float dl = d * (float)((const i8 *)w)[192 + 8 * h + 2 * k + half];
#pragma unroll
		for (int l = 16 * half; l < 16 * half + 16; l++) {
			const int q = ((rt_kq_byte(ql, l) >> (4 * (k >> 1))) & 15) | (((rt_kq_byte(qh, l) >> (2 * k)) & 3) << 4);
			out[l] = dl * (float)(q - 32);
		}
	}
}

// ---- IQ4_XS: d (f16), scales_h (u16: 2 high bits per chunk), scales_l[4]
// (4 low bits per chunk), qs[128]; chunk c has scale ls - 32 and the 16 bytes
// qs[16c .. +16]: value j is the level of the low nibble of byte j, value
// j+16 that of its high nibble. Value (d·(ls-32))·level.

// rt_kq_iq4xs_scale is IQ4_XS's scale of chunk c, unbiased, from
// scales_l[c >> 1] and scales_h.
__device__ __forceinline__ int rt_kq_iq4xs_scale(u32 low, u32 high, int c) {
	return ((int)((low >> (4 * (c & 1))) & 15) | (int)(((high >> (2 * c)) & 3) << 4)) - 32;
}

__device__ float rt_dot_iq4_xs(const u8 *w, const rt_q8x32 *x) {
	u32 b[34]; // d and scales_h: word 0, scales_l: 1, qs: 2-33
	rt_kq_ld8<34>(w, b);
	float acc = 0.0f;
#pragma unroll
	for (int c = 0; c < 8; c++) {
		int s = 0;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			int lo, hi;
			rt_kq_iq4(b[2 + 4 * c + i], &lo, &hi);
			s = rt_dp4a(lo, rt_kq_q4(x + c, i), s);
			s = rt_dp4a(hi, rt_kq_q4(x + c, i + 4), s);
		}
		acc += x[c].d * (float)(rt_kq_iq4xs_scale(rt_kq_byte(b + 1, c >> 1), b[0] >> 16, c) * s);
	}
	return rt_half_to_float((u16)b[0]) * acc;
}

__device__ void rt_dequant32_iq4_xs(const u8 *w, int chunk, float *out) {
	const float dl = rt_kq_f16(w) * (float)rt_kq_iq4xs_scale(w[4 + (chunk >> 1)], *(const u16 *)(w + 2), chunk);
	u32 qs[4];
	rt_kq_ld8<4>(w + 8 + 16 * chunk, qs);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int lo, hi;
		rt_kq_iq4(qs[i], &lo, &hi);
#pragma unroll
		for (int b = 0; b < 4; b++) {
			out[4 * i + b] = dl * (float)(i8)(lo >> (8 * b));
			out[16 + 4 * i + b] = dl * (float)(i8)(hi >> (8 * b));
		}
	}
}
