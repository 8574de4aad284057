// prelude_check uses every definition of cuda.Prelude, so that NVRTC
// generates and ptxas assembles each of them (a __forceinline__ function
// nothing calls emits no code): the integer types, both half conversions,
// bfloat16, rt_dp4a and the dynamic shared memory. Launch it with
// blockDim.x * 4 bytes of dynamic shared memory.
extern "C" __global__ void prelude_check(const u16 *half, const u16 *bf16, const i32 *a, const i32 *b,
                                         const i8 *bytes, const i16 *shorts, float *out, u16 *halfOut, u64 n) {
	float *scratch = (float *)rt_dynamic_shared();
	u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
	float f = 0.0f;
	if (i < n) {
		u8 sign = (u8)(bytes[i] < 0);
		f = rt_half_to_float(half[i]) + rt_bf16_to_float(bf16[i]) + (float)rt_dp4a(a[i], b[i], shorts[i]) - sign;
	}
	scratch[threadIdx.x] = f;
	__syncthreads();
	// Each thread reads its neighbour's value, which only shared memory and
	// the barrier make visible.
	u32 j = threadIdx.x ^ 1u;
	if (i < n && j < blockDim.x) {
		out[i] = scratch[j];
		halfOut[i] = rt_float_to_half(scratch[j]);
	}
}
