// Package synth writes synthetic GGUF models on top of experts.Writer.
//
// Write and NewWriter produce complete models (tokenizer, metadata, every
// tensor with seeded random weights) with the shapes and quantization mix of
// real ones (Presets): the 20 GB qwen35moe-35b-a3b for benchmarks, tiny ones
// for tests. The same preset and seed always give the same bytes.
//
// ShapeWriter declares a weightless model of a given Shape (its MoE layers,
// experts and their sizes), and OpenShape opens any Writer's model without
// writing its data (a sparse file: the real header, zeros after it), for
// planning and simulation without writing gigabytes.
package synth
