// Package profile counts which experts a Mixture-of-Experts model routes to,
// chooses the hot ones to pin, and defines the project's routing trace
// formats; its subpackage chart draws profiles. It is a leaf: it imports
// nothing else of this module, and the model is identified by a plain
// ModelID the caller fills from its GGUF.
//
//   - A Recorder takes one Record call per layer per token (lock per layer, no
//     allocation) and produces a Profile: per layer and expert the selection
//     count and routing-weight mass, a histogram of reuse distances (tokens
//     since the layer last selected the expert), optionally co-activation counts,
//     cross-layer transition counts (what prefetch.Transition learns from) and a
//     bounded raw trace.
//   - A Profile is saved as versioned JSON with the model's identity; Load
//     validates it, LoadFor also checks the model (ErrModelMismatch), Merge adds
//     profiles of one model.
//   - SelectHotSet chooses experts to pin within a byte budget, per layer or
//     globally, maximising the expected hits; global selection is an exact
//     knapsack over the layers' size classes (see its doc).
//   - WriteCSV writes the numbers behind the charts of package chart (a
//     layers × experts heatmap and the per-layer popularity curves), which
//     keeps the image and font code out of programs that only count.
//   - A Trace is a recorded routing sequence (per token, per layer, the experts
//     and optionally their weights). It has two encodings, JSON lines and a
//     compact binary form, with streaming writers and readers (TRACE.md gives
//     the byte layout), and readers for the external traces the project
//     benchmarks on: DeepSeek-V2-Lite CSV, Mixtral-8x7B JSONL and granite JSON
//     (OpenTrace detects the format).
package profile
