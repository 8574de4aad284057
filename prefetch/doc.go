// Package prefetch predicts which experts the next MoE layer will route a
// token to and copies them while the current layer computes, so that PCIe is
// busy while the GPU is and fewer of the next layer's experts are misses.
//
// A Predictor scores the next layer's experts from what is known once a layer
// has routed (a History: its experts, the layers before, the previous token,
// the hidden state where the caller has it). Transition scores from
// cross-layer co-activation statistics learned from a router profile or a
// trace; GateAhead applies the next layer's router to the current hidden
// state through a Gate (a GEMV on the CPU, MatrixGate; a kernel on a GPU);
// Combine weighs several, per layer.
//
// A Prefetcher drives rotary.Runtime.PrefetchN with a predictor's top
// candidates: after a layer's Acquire (so its demand misses are queued
// first), within a budget of bytes per token, moving only experts that are
// not resident and evicting neither pinned experts, nor experts held by a
// Set, nor experts it predicts. rotary.Stats.Prefetch reports how useful
// the copies were and the predictions' recall and precision. A predictor or
// runtime error turns prefetching off (logged once); the caller's
// generation goes on.
package prefetch
