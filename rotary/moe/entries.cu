// The entry points of one weight format: programs replace RT_TYPE by the
// format's name (q4_0, q4_K, f16, ...) and precede this with its format
// struct, rt_format_RT_TYPE. The names are written out, not made by a
// macro, so that every tool that reads the source sees them.

extern "C" __global__ void rt_decode_gemv_RT_TYPE(const u8 *w, i64 row_bytes, const void *x, float *dst, int rows, int nb, int L, int accumulate) {
	rt_gemv<rt_format_RT_TYPE>(w, row_bytes, x, dst, rows, nb, L, accumulate);
}
extern "C" __global__ void rt_prefill_gemm_RT_TYPE(const u8 *w, i64 row_bytes, const float *x, float *dst, int rows, int cols, int tokens, int accumulate) {
	rt_gemm<rt_format_RT_TYPE>(w, row_bytes, x, dst, rows, cols, tokens, accumulate);
}
extern "C" __global__ void rt_decode_moe_gate_up_RT_TYPE(const u8 *plane, i64 slot_bytes, i64 gate_off, i64 up_off, i64 row_bytes, int nslots, const int *slots, const void *x, int k, int ff, int nb, int L, float *h, rt_q8x32 *hq) {
	rt_moe_gate_up<rt_format_RT_TYPE>(plane, slot_bytes, gate_off, up_off, row_bytes, nslots, slots, x, k, ff, nb, L, h, hq);
}
extern "C" __global__ void rt_decode_moe_down_RT_TYPE(const u8 *plane, i64 slot_bytes, i64 down_off, i64 row_bytes, int nslots, const int *slots, const float *weights, const void *h, int k, int rows, int nb, int L, float *dst, int accumulate) {
	rt_moe_down<rt_format_RT_TYPE>(plane, slot_bytes, down_off, row_bytes, nslots, slots, weights, h, k, rows, nb, L, dst, accumulate);
}
extern "C" __global__ void rt_prefill_moe_gate_up_RT_TYPE(const u8 *plane, i64 slot_bytes, i64 gate_off, i64 up_off, i64 row_bytes, const int *tiles, const int *order, const float *x, int k, int ff, int embd, float *h) {
	rt_moe_gate_up_gemm<rt_format_RT_TYPE>(plane, slot_bytes, gate_off, up_off, row_bytes, tiles, order, x, k, ff, embd, h);
}
extern "C" __global__ void rt_prefill_moe_down_RT_TYPE(const u8 *plane, i64 slot_bytes, i64 down_off, i64 row_bytes, const int *tiles, const int *order, const float *h, int embd, int ff, float *y) {
	rt_moe_down_gemm<rt_format_RT_TYPE>(plane, slot_bytes, down_off, row_bytes, tiles, order, h, embd, ff, y);
}
extern "C" __global__ void rt_decode_embed_RT_TYPE(const u8 *table, i64 row_bytes, int rows, int cols, const int *tokens, float *dst) {
	rt_embed<rt_format_RT_TYPE>(table, row_bytes, rows, cols, tokens, dst);
}
