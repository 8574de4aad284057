// Package moe multiplies by a model's weights on a CUDA device, in the GGUF
// formats they are stored in: the slot-plane MoE kernels that run a layer's
// routed experts straight from rotary's plane of slots, and the quantized
// matrix-vector (decode) and matrix-matrix (prefill) kernels they share with
// the dense weights (attention projections, router, output, shared expert),
// and the embedding gather that turns token ids into rows of a (quantized)
// embedding table.
//
// # Formats
//
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K and IQ4_XS, with ggml's block layouts (Supported says so
// per type; check every tensor when a model is loaded). Decode kernels
// quantize the activations once per call into blocks of 32 8-bit values
// with a float scale and sum (quant_common.cuh) and take integer dot
// products four bytes at a time (dp4a); float weights meet float
// activations. Prefill kernels dequantize a tile of weights into shared
// memory and multiply it with a tile of float activations, 64 tokens (or 64
// pairs routed to one expert) at a time.
//
// # Launches
//
// Each call queues a fixed number of kernels on the caller's stream, never
// one per expert, and reads its shapes from its arguments (routing stays
// on the device: slot ids, weights and token ids are device buffers):
//
//	MatMul, up to DecodeTokens tokens: quantize + GEMV = 2 (float weights: 1)
//	MatMul, more tokens:                GEMM = 1
//	MoE, up to DecodeTokens tokens:     quantize + gate/up·SiLU + down·Σ = 3 (float gate/up: 2)
//	MoE, more tokens:                   group by slot + gate/up GEMM + down GEMM + Σ = 4
//	Embed, any number of tokens:        gather of dequantized rows = 1
//
// The decode kernels (names with "_decode_") run once per generated token
// and are checked not to spill registers (the embedding gather counts as one:
// it runs once per token of every step); the "_prefill_" ones are the
// batched GEMMs and their helpers. Results are summed in routing order
// without float atomics, so they do not depend on scheduling.
//
// # Planes
//
// A Plane is a layer's experts as rotary places them on the device: slot s at
// byte s·SlotBytes holds the expert's gate, up and down projections. MoE
// takes each token's experts as slot ids, so the same kernels run whichever
// experts are resident where; a dense FFN, such as the shared expert, is a
// plane of one slot with weight 1 (or a gate value per token), added to the
// routed experts' output with Accumulate.
//
// # Proof without a GPU
//
// Programs lists every program for the NVRTC check (go run
// ./cuda/gpucheck/nvrtc); the tests run the same CUDA C on the host
// backend's emulator under several thread schedules and compare it with the
// float64 product of the dequantized weights and with the CPU backend;
// embedding rows must equal the CPU's dequantization bit for bit.
// Speed is measured only on a GPU.
package moe
