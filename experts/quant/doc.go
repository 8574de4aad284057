// Package quant computes with the ggml element types of package experts on
// the CPU: Dequantize expands stored blocks to float32, Quantize writes them
// the way llama.cpp's reference quantizers do, and VecDot and MatVec multiply
// stored rows with activations quantized the way ggml's CPU backend
// quantizes them (QuantizeActivations, in VecDotType), so results match
// llama.cpp's. Float16ToFloat32, BF16ToFloat32 and their inverses convert the
// half-precision formats.
//
// CanDequantize, CanQuantize and CanVecDot say which types each operation
// supports; the others return an error matching experts.ErrUnsupportedType,
// and a buffer whose size does not match its element count one matching
// ErrQuantSize.
package quant
