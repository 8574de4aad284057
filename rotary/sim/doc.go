// Package sim replays routing traces through rotary's runtime on the host
// backend in virtual time, to compare VRAM budgets, eviction policies,
// pinning and prefetchers before a GPU is involved, and generates synthetic
// traces with given routing statistics.
//
// Simulate runs a trace (profile.Trace, or SyntheticTrace's, which have the
// statistics of a Routing such as Qwen3Routing; MeasureRouting measures a
// trace's) once per Budget and Policy and reports hit rates, copies and
// bytes per token, prefetch recall and precision, stalls and tokens per
// second, on a model without weights (ShapeOf a trace, opened by
// experts.ShapeWriter and experts.OpenShape). A Policy's NewPrefetcher
// plugs in a prefetcher (prefetch.New), which the replay drives after each
// layer's Acquire, while the layer computes: its copies share the copy
// stream with the misses, and those that arrive late stall the compute
// stream.
//
// It is a package of its own so that a program using the runtime does not
// link the simulator.
package sim

import "errors"

// ErrInvalid: an argument is unusable (a trace of another shape than the
// model, no budgets, a warm-up longer than the trace, ...).
var ErrInvalid = errors.New("sim: invalid argument")
