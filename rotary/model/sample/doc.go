// Package sample chooses the next token from a model's logits, with the
// samplers llama.cpp uses by default and in the same order:
//
//	penalties → top-k → top-p → min-p → temperature → draw
//
// Penalties look at the last tokens of the history: a token present there
// has a positive logit divided by the repetition penalty (a negative one
// multiplied), then its count times the frequency penalty and the presence
// penalty subtracted. Top-p and min-p therefore see the untempered
// distribution of what top-k kept; the temperature only shapes the final
// draw. Temperature 0 is greedy: the arg-max of the penalized logits, lowest
// id on ties, with no random number drawn.
//
// Draws come from a PCG generator seeded by the Seed option, so a run is
// reproducible (the generator differs from llama.cpp's mt19937, so the same
// seed does not give llama.cpp's tokens). A Sampler keeps its buffers, so
// sampling allocates nothing once it has seen the vocabulary size.
package sample
