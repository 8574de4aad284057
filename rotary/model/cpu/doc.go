// Package cpu is the CPU implementation of model.Backend, and the kernels
// it is made of: a fixed worker pool, matrix products over weights in their
// stored ggml formats (quant.VecDot on activations converted once per
// batch, every weight row read once per batch), and the small numeric
// kernels of a Qwen MoE layer (RMS and L2 norms, NEOX rotary embedding,
// causal softmax attention, the causal convolution and the gated delta rule
// of Gated DeltaNet, routing).
//
// The kernels follow the arithmetic of ggml's CPU backend (float64 sums
// where ggml uses them, the order of operations, where activations are
// rounded to 8-bit blocks) so that a model built from them reproduces
// llama.cpp's outputs to rounding, not merely to approximation. What they
// do not copy is the lane order of ggml's SIMD sums and its vectorised exp,
// which move the last bits of a float. The kernels work on plain slices;
// Backend maps model.Tensor and model.Weight onto them.
package cpu
