// Package model runs the forward pass of Qwen mixture-of-experts models
// read from GGUF files: qwen3moe (Qwen3-30B-A3B: attention and routed
// experts in every layer) and qwen35moe (Qwen3.5/3.6-35B-A3B: Gated
// DeltaNet layers with a gated attention layer every few, routed experts
// plus a gated shared expert), following llama.cpp's semantics and GGUF
// conventions exactly.
//
// The package holds the orchestration only: which operation runs on which
// weights in which order, the per-sequence State (KV cache, convolution and
// recurrent state) and the routing. The arithmetic is behind Backend, a small
// set of operations on activations (Tensor) and stored weights (Weight); the
// CPU implementation lives in rotary/model/cpu, the GPU one in
// rotary/model/gpu.
//
// The backend also owns the routed experts' residency: the model hands its
// MoE operation the layer and the routing (Routing, which a GPU backend
// keeps in device memory), and the backend obtains the experts. The CPU
// backend asks an ExpertSource, once per layer and step for the union of
// experts the batch needs, so a runtime that moves experts between memory
// tiers (rotary) can supply them and know when they are no longer in use.
// FileSource, every expert read in place from the mapped file, is the
// reference such a runtime must match bit for bit. The GPU backend
// computes on rotary's slot planes in device memory directly.
//
// Around the forward pass, subpackages hold what text generation with these
// models needs: tokenizer (llama.cpp's byte-level BPE from the GGUF
// vocabulary), sample (llama.cpp's default samplers) and chat (the models'
// ChatML prompt format). rotary/engine puts them together.
package model
