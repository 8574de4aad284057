// Shared definitions of the quantized matrix code: the activation block
// format every integer dot product of the package consumes.
//
// Activations are quantized once per matrix product into blocks of 32 values:
// q[i] = round(x[i] / d) with d = max|x| / 127, and sum = d · Σ q[i] (what a
// weight format with a per-block minimum or offset multiplies by). A weight
// block of QK values meets QK/32 consecutive activation blocks.
//
// Per weight type T the package's device code provides (names in lower case,
// e.g. rt_dot_q4_K):
//   __device__ float rt_dot_T(const u8 *w, const rt_q8x32 *x);
//       the dot product of one weight block (its QK values) with x[0 .. QK/32).
//   __device__ void rt_dequant32_T(const u8 *w, int chunk, float *out);
//       values [32·chunk, 32·chunk + 32) of one weight block, into out[0..32).
struct rt_q8x32 {
	float d;
	float sum;
	i8 q[32];
};
