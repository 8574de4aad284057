// Package experts reads the GGUF model files of Mixture-of-Experts models
// and tells the runtime where every expert's bytes are.
//
// Open maps a GGUF file (version 2 or 3, little-endian) read-only and parses
// its header: metadata (KVs, Value and typed getters such as Uint and
// Strings) and tensor descriptions (TensorInfo: ggml Type, shape, absolute
// data offset, size). Every header field is checked against the file size
// and the reader's limits (MaxStringLength, MaxArrayLength, MaxTensors, ...):
// a truncated or hostile file gives a *FormatError naming the field and its
// byte offset, never a panic.
//
// Tensor data are not copied. TensorData returns views into the mapping and
// Mapping the whole mapping, e.g. to register it with a GPU driver. Such
// views cannot be protected against the file shrinking while it is mapped
// (rewritten in place, truncated): touching a page past the new end raises
// SIGBUS, which kills the process. ReadAt copies out of the mapping with
// debug.SetPanicOnFault set and returns an error wrapping ErrFault instead;
// use it where the file may change under the program.
//
// OpenModel and NewModel add the model view: hyper-parameters (HParams) from
// the `<arch>.` metadata keys, for qwen3moe and qwen35moe and generically for
// other MoE architectures, and the expert index. Expert e of a stacked
// ffn_{gate,up,down}_exps tensor with shape [cols, rows, n_expert] is the
// contiguous byte range [e·nb2, (e+1)·nb2) of its data, nb2 being the
// tensor's stride over dimension 2; Expert returns those ranges as absolute
// file offsets, ready to be copied or registered.
//
// The package also describes the ggml element types (Type: block sizes and
// byte sizes). Writer streams a GGUF file to disk, one tensor at a time.
//
// Two subpackages hold what a program that only places experts does not
// need: quant computes with the ggml types on the CPU (Dequantize, Quantize,
// VecDot, fp16 and bf16 conversions), matching llama.cpp's CPU backend, and
// synth writes synthetic models (complete ones of real shapes for tests and
// benchmarks, and weightless ones of a given Shape for planning and
// simulation).
package experts
