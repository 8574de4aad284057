// The 32-element weight formats (ggml's block layouts) against rt_q8x32
// activations, and the float formats against float activations.
//
// Blocks of these types are only 2-byte aligned (18, 22 and 34 bytes) or not
// at all (MXFP4's 17), so 32-bit words of weights are assembled from 16-bit
// or byte loads: a misaligned 4-byte load faults on a GPU. Activation blocks
// are 40 bytes and 8-byte aligned, so their quants are read as ints.

// rt_ld16 reads a little-endian u16 from a 2-byte aligned address.
__device__ __forceinline__ u32 rt_ld16(const u8 *p) { return *(const u16 *)p; }

// rt_ldh reads a binary16 value from a 2-byte aligned address.
__device__ __forceinline__ float rt_ldh(const u8 *p) { return rt_half_to_float((u16)rt_ld16(p)); }

// rt_ld32_2 reads a little-endian 32-bit word from a 2-byte aligned address.
__device__ __forceinline__ u32 rt_ld32_2(const u8 *p) { return rt_ld16(p) | (rt_ld16(p + 2) << 16); }

// rt_ld32_1 reads a little-endian 32-bit word from any address.
__device__ __forceinline__ u32 rt_ld32_1(const u8 *p) {
	return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

// rt_prmt is PTX prmt.b32 in its default mode for selectors below 8: byte i
// of the result is byte (s >> 4i) & 7 of the 8 bytes b:a.
__device__ __forceinline__ u32 rt_prmt(u32 a, u32 b, u32 s) {
#ifdef __CUDA_ARCH__
	u32 d;
	asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(s));
	return d;
#else
	u64 v = ((u64)b << 32) | a;
	u32 d = 0;
	for (int i = 0; i < 4; i++) {
		u32 sel = (s >> (4 * i)) & 7u;
		d |= (u32)((v >> (8 * sel)) & 0xffu) << (8 * i);
	}
	return d;
#endif
}

// rt_lut16 maps the four nibbles held in the low halves of the bytes of n to
// the entries of a 16-entry table of signed bytes packed little-endian in
// t0..t3 (entries 0-3 in t0, ...), four values per int for rt_dp4a.
__device__ __forceinline__ int rt_lut16(u32 n, u32 t0, u32 t1, u32 t2, u32 t3) {
	u32 s = (n & 0x7u) | ((n >> 4) & 0x70u) | ((n >> 8) & 0x700u) | ((n >> 12) & 0x7000u);
	u32 lo = rt_prmt(t0, t1, s);
	u32 hi = rt_prmt(t2, t3, s);
	u32 m = ((n & 0x08080808u) >> 3) * 0xffu; // 0xff in the bytes whose entry is 8-15
	return (int)((hi & m) | (lo & ~m));
}

// The code tables, as rt_lut16 takes them: IQ4_NL's (and IQ4_XS's) 16
// non-linear levels, and MXFP4's E2M1 values doubled to integers (the block
// scale is halved to match, rt_e8m0_half).
#define RT_IQ4NL_TABLE 0xBFAD9881u, 0xF6EADDCFu, 0x26190D01u, 0x71594535u
#define RT_MXFP4_TABLE 0x03020100u, 0x0C080604u, 0xFDFEFF00u, 0xF4F8FAFCu

// rt_e8m0_half decodes an MXFP4 block scale, 2^(e-127), halved: 2^(e-128),
// subnormal for e < 2.
__device__ __forceinline__ float rt_e8m0_half(u8 e) {
	return __int_as_float(e < 2 ? (0x00200000 << e) : ((int)(e - 1) << 23));
}

// rt_bits4 spreads 4 bits of h (bit i) to bit 4 of byte i: the fifth bits of
// Q5_0 and Q5_1.
__device__ __forceinline__ u32 rt_bits4(u32 h) {
	return ((h & 1u) << 4) | ((h & 2u) << 11) | ((h & 4u) << 18) | ((h & 8u) << 25);
}

// rt_dot_nibbles returns Σ q·y over a 32-element block of 16 nibble bytes at
// qs (element j the low nibble of byte j, element j+16 its high nibble), with
// optional fifth bits qh (bit j for element j), qs read by load.
template <u32 (*load)(const u8 *)>
__device__ __forceinline__ int rt_dot_nibbles(const u8 *qs, u32 qh, const int *y) {
	int s = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		u32 v = load(qs + 4 * i);
		s = rt_dp4a((int)((v & 0x0f0f0f0fu) | rt_bits4(qh >> (4 * i))), y[i], s);
		s = rt_dp4a((int)(((v >> 4) & 0x0f0f0f0fu) | rt_bits4(qh >> (16 + 4 * i))), y[4 + i], s);
	}
	return s;
}

// rt_dot_table returns Σ k[q]·y over a 32-element block of 16 nibble bytes
// indexing a code table.
template <u32 (*load)(const u8 *)>
__device__ __forceinline__ int rt_dot_table(const u8 *qs, const int *y, u32 t0, u32 t1, u32 t2, u32 t3) {
	int s = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		u32 v = load(qs + 4 * i);
		s = rt_dp4a(rt_lut16(v & 0x0f0f0f0fu, t0, t1, t2, t3), y[i], s);
		s = rt_dp4a(rt_lut16((v >> 4) & 0x0f0f0f0fu, t0, t1, t2, t3), y[4 + i], s);
	}
	return s;
}

// rt_nibble returns nibble j (0-31 as in rt_dot_nibbles) of the bytes at qs.
__device__ __forceinline__ u32 rt_nibble(const u8 *qs, int j) { return j < 16 ? qs[j] & 15u : qs[j - 16] >> 4; }

// Q8_0 (34 bytes): d (f16), 32 int8. Value q·d.
__device__ __forceinline__ float rt_dot_q8_0(const u8 *w, const rt_q8x32 *x) {
	const int *y = (const int *)x->q;
	int s = 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		s = rt_dp4a((int)rt_ld32_2(w + 2 + 4 * i), y[i], s);
	}
	return rt_ldh(w) * x->d * (float)s;
}

__device__ __forceinline__ void rt_dequant32_q8_0(const u8 *w, int chunk, float *out) {
	(void)chunk;
	float d = rt_ldh(w);
	for (int j = 0; j < 32; j++) {
		out[j] = (float)(i8)w[2 + j] * d;
	}
}

// Q4_0 (18 bytes): d, 16 bytes of nibbles. Value (q-8)·d, so
// Σ (q-8)·y·dx = dx·Σ q·y - 8·sum.
__device__ __forceinline__ float rt_dot_q4_0(const u8 *w, const rt_q8x32 *x) {
	int s = rt_dot_nibbles<rt_ld32_2>(w + 2, 0, (const int *)x->q);
	return rt_ldh(w) * (x->d * (float)s - 8.0f * x->sum);
}

__device__ __forceinline__ void rt_dequant32_q4_0(const u8 *w, int chunk, float *out) {
	(void)chunk;
	float d = rt_ldh(w);
	for (int j = 0; j < 32; j++) {
		out[j] = (float)((int)rt_nibble(w + 2, j) - 8) * d;
	}
}

// Q4_1 (20 bytes): d, m (f16), 16 bytes of nibbles. Value q·d + m.
__device__ __forceinline__ float rt_dot_q4_1(const u8 *w, const rt_q8x32 *x) {
	int s = rt_dot_nibbles<rt_ld32_2>(w + 4, 0, (const int *)x->q);
	return rt_ldh(w) * x->d * (float)s + rt_ldh(w + 2) * x->sum;
}

__device__ __forceinline__ void rt_dequant32_q4_1(const u8 *w, int chunk, float *out) {
	(void)chunk;
	float d = rt_ldh(w), m = rt_ldh(w + 2);
	for (int j = 0; j < 32; j++) {
		out[j] = (float)rt_nibble(w + 4, j) * d + m;
	}
}

// Q5_0 (22 bytes): d, qh (u32, bit j the fifth bit of element j), 16 bytes
// of nibbles. Value (q-16)·d.
__device__ __forceinline__ float rt_dot_q5_0(const u8 *w, const rt_q8x32 *x) {
	int s = rt_dot_nibbles<rt_ld32_2>(w + 6, rt_ld32_2(w + 2), (const int *)x->q);
	return rt_ldh(w) * (x->d * (float)s - 16.0f * x->sum);
}

__device__ __forceinline__ void rt_dequant32_q5_0(const u8 *w, int chunk, float *out) {
	(void)chunk;
	float d = rt_ldh(w);
	u32 qh = rt_ld32_2(w + 2);
	for (int j = 0; j < 32; j++) {
		out[j] = (float)((int)(rt_nibble(w + 6, j) | (((qh >> j) & 1u) << 4)) - 16) * d;
	}
}

// Q5_1 (24 bytes): d, m, qh, 16 bytes of nibbles. Value q·d + m.
__device__ __forceinline__ float rt_dot_q5_1(const u8 *w, const rt_q8x32 *x) {
	int s = rt_dot_nibbles<rt_ld32_2>(w + 8, rt_ld32_2(w + 4), (const int *)x->q);
	return rt_ldh(w) * x->d * (float)s + rt_ldh(w + 2) * x->sum;
}

__device__ __forceinline__ void rt_dequant32_q5_1(const u8 *w, int chunk, float *out) {
	(void)chunk;
	float d = rt_ldh(w), m = rt_ldh(w + 2);
	u32 qh = rt_ld32_2(w + 4);
	for (int j = 0; j < 32; j++) {
		out[j] = (float)(rt_nibble(w + 8, j) | (((qh >> j) & 1u) << 4)) * d + m;
	}
}

// IQ4_NL (18 bytes): d, 16 bytes of nibbles indexing the IQ4_NL levels.
// Value k[q]·d.
__device__ __forceinline__ float rt_dot_iq4_nl(const u8 *w, const rt_q8x32 *x) {
	int s = rt_dot_table<rt_ld32_2>(w + 2, (const int *)x->q, RT_IQ4NL_TABLE);
	return rt_ldh(w) * x->d * (float)s;
}

// rt_table_value is entry n of a table as rt_lut16 takes it.
__device__ __forceinline__ float rt_table_value(u32 n, u32 t0, u32 t1, u32 t2, u32 t3) {
	return (float)(i8)(rt_lut16(n, t0, t1, t2, t3) & 0xff);
}

__device__ __forceinline__ void rt_dequant32_iq4_nl(const u8 *w, int chunk, float *out) {
	(void)chunk;
	float d = rt_ldh(w);
	for (int j = 0; j < 32; j++) {
		out[j] = rt_table_value(rt_nibble(w + 2, j), RT_IQ4NL_TABLE) * d;
	}
}

// MXFP4 (17 bytes): e (E8M0 scale), 16 bytes of nibbles indexing the E2M1
// values. Value k[q]·2^(e-128) with k doubled.
__device__ __forceinline__ float rt_dot_mxfp4(const u8 *w, const rt_q8x32 *x) {
	int s = rt_dot_table<rt_ld32_1>(w + 1, (const int *)x->q, RT_MXFP4_TABLE);
	return rt_e8m0_half(w[0]) * x->d * (float)s;
}

__device__ __forceinline__ void rt_dequant32_mxfp4(const u8 *w, int chunk, float *out) {
	(void)chunk;
	float d = rt_e8m0_half(w[0]);
	for (int j = 0; j < 32; j++) {
		out[j] = rt_table_value(rt_nibble(w + 1, j), RT_MXFP4_TABLE) * d;
	}
}

// The float formats are not block-quantized and meet float activations. The
// kernels take them 32 elements at a time, as if in blocks of 32, with
// rt_fdot_T the dot product of 32 weights with 32 floats and
// rt_dequant32_T their values.
__device__ __forceinline__ float rt_f32_at(const u8 *w, int j) { return ((const float *)w)[j]; }
__device__ __forceinline__ float rt_f16_at(const u8 *w, int j) { return rt_half_to_float(((const u16 *)w)[j]); }
__device__ __forceinline__ float rt_bf16_at(const u8 *w, int j) { return rt_bf16_to_float(((const u16 *)w)[j]); }

#define RT_FLOAT_FORMAT(T, at)                                                           \
	__device__ __forceinline__ float rt_fdot_##T(const u8 *w, const float *x) {          \
		float s0 = 0.0f, s1 = 0.0f;                                                      \
		for (int j = 0; j < 32; j += 2) {                                                \
			s0 += at(w, j) * x[j];                                                       \
			s1 += at(w, j + 1) * x[j + 1];                                               \
		}                                                                                \
		return s0 + s1;                                                                  \
	}                                                                                    \
	__device__ __forceinline__ void rt_dequant32_##T(const u8 *w, int chunk, float *out) { \
		(void)chunk;                                                                     \
		for (int j = 0; j < 32; j++) {                                                   \
			out[j] = at(w, j);                                                           \
		}                                                                                \
	}

RT_FLOAT_FORMAT(f32, rt_f32_at)
RT_FLOAT_FORMAT(f16, rt_f16_at)
RT_FLOAT_FORMAT(bf16, rt_bf16_at)
