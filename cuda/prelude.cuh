// rotary's device prelude: the definitions every kernel program of the
// project may use, placed ahead of a program's source (cuda.Prelude + source).
// Kernels include nothing (no CUDA headers exist on the machines that
// compile them), so the fixed-width types, the fp16/bf16 conversions and the
// integer dot product are here.
//
// The same text compiles under NVRTC (where __CUDA_ARCH__ is defined and PTX
// is used) and under the host emulator (where the C fallbacks run and the
// emulator defines rt_dynamic_shared).

typedef signed char i8;
typedef unsigned char u8;
typedef short i16;
typedef unsigned short u16;
typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

// rt_half_to_float converts IEEE binary16 bits to a float.
__device__ __forceinline__ float rt_half_to_float(u16 h) {
#ifdef __CUDA_ARCH__
	float f;
	asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
	return f;
#else
	u32 sign = (u32)(h & 0x8000u) << 16;
	u32 exp = (h >> 10) & 0x1fu;
	u32 mant = h & 0x3ffu;
	if (exp == 0x1fu) {
		return __int_as_float((int)(sign | 0x7f800000u | (mant << 13)));
	}
	if (exp == 0) {
		// zero or subnormal: mant·2^-24, exact in a float
		float f = (float)mant * 5.9604644775390625e-8f;
		return sign ? -f : f;
	}
	return __int_as_float((int)(sign | ((exp + 112u) << 23) | (mant << 13)));
#endif
}

// rt_float_to_half converts a float to binary16 bits, rounding to nearest even.
__device__ __forceinline__ u16 rt_float_to_half(float f) {
#ifdef __CUDA_ARCH__
	u16 h;
	asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
	return h;
#else
	u32 x = (u32)__float_as_int(f);
	u32 sign = (x >> 16) & 0x8000u;
	u32 ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u) { // inf or nan
		return (u16)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
	}
	if (ax >= 0x477ff000u) { // rounds to infinity
		return (u16)(sign | 0x7c00u);
	}
	if (ax < 0x38800000u) { // subnormal or zero in half
		if (ax < 0x33000000u) {
			return (u16)sign;
		}
		u32 e = ax >> 23;
		u32 m = (ax & 0x7fffffu) | 0x800000u;
		u32 shift = 126u - e; // 14..24
		u32 r = m >> shift;
		u32 rem = m & ((1u << shift) - 1u);
		u32 half = 1u << (shift - 1u);
		if (rem > half || (rem == half && (r & 1u))) {
			r++;
		}
		return (u16)(sign | r);
	}
	u32 r = ((ax >> 13) - (112u << 10));
	u32 rem = ax & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) {
		r++;
	}
	return (u16)(sign | r);
#endif
}

// rt_bf16_to_float converts bfloat16 bits to a float (exact).
__device__ __forceinline__ float rt_bf16_to_float(u16 b) {
	return __int_as_float((int)((u32)b << 16));
}

// rt_dp4a adds the dot product of the four signed bytes of a and b to c.
// __dp4a itself does not link under NVRTC 11.8, so this is PTX.
__device__ __forceinline__ int rt_dp4a(int a, int b, int c) {
#ifdef __CUDA_ARCH__
	int d;
	asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
	return d;
#else
	return c + (int)(i8)(a) * (int)(i8)(b) + (int)(i8)(a >> 8) * (int)(i8)(b >> 8) +
	       (int)(i8)(a >> 16) * (int)(i8)(b >> 16) + (int)(i8)(a >> 24) * (int)(i8)(b >> 24);
#endif
}

// rt_dynamic_shared is the launch's dynamic shared memory
// (LaunchConfig.SharedBytes), 16-byte aligned.
#ifdef __CUDA_ARCH__
extern __shared__ __align__(16) unsigned char rt_dynamic_smem_[];
#define rt_dynamic_shared() ((void *)rt_dynamic_smem_)
#endif
