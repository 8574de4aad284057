// intrinsics: each thread applies the bit and conversion intrinsics to a
// pair of words, for emulator_test.go to check against Go.
extern "C" __global__ void intrinsics(const u32 *in, u32 *out) {
	__shared__ __align__(16) u32 stage[64];
	__builtin_assume(threadIdx.x < 64);
	const unsigned t = threadIdx.x;
	const u32 a = in[2 * t], b = in[2 * t + 1];
	stage[t] = a;
	__syncthreads();
	u32 *o = out + 16 * t;
	o[0] = __popc(a);
	o[1] = (u32)__clz((int)a);
	o[2] = (u32)__ffs((int)b);
	o[3] = __brev(a);
	o[4] = __byte_perm(a, b, b & 0x7777u);
	o[5] = __funnelshift_l(a, b, b);
	o[6] = __funnelshift_r(a, b, b);
	o[7] = __funnelshift_lc(a, b, b & 63u);
	o[8] = __funnelshift_rc(a, b, b & 63u);
	o[9] = __umulhi(a, b);
	o[10] = (u32)__mulhi((int)a, (int)b);
	o[11] = __vsubss4(a, b);
	o[12] = (u32)__float2int_rn(__int_as_float((int)(a & 0x807fffffu) | 0x4a000000));
	o[13] = max(a, b) - min((int)a, (int)b);
	o[14] = __float_as_uint(__saturatef(__uint_as_float(b)));
	o[15] = stage[(t + 1) % blockDim.x];
}
