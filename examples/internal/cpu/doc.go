// Package cpu holds the CPU kernels the model code is built from: a fixed
// worker pool, matrix products over weights in their stored ggml formats,
// and the small numeric kernels of a Qwen MoE layer (RMS and L2 norms, NEOX
// rotary embedding, causal softmax attention, the causal convolution and
// the gated delta rule of Gated DeltaNet, routing).
//
// The kernels follow the arithmetic of ggml's CPU backend (accumulators,
// the order of operations, where activations are rounded to 8-bit blocks)
// so that a model built from them reproduces llama.cpp's outputs to
// rounding, not merely to approximation. They work on plain slices and know
// nothing about models; examples/internal/model composes them.
package cpu
