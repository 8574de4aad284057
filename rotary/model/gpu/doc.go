// Package gpu is the model's GPU backend: Backend implements model.Backend
// on a cuda.Device, with the model's CUDA kernels — everything of a Qwen MoE
// layer except the matrix products and the experts, which come from package
// rotary/moe — and their Go launch wrappers (Kernels).
//
// Backend keeps activations in a per-step arena of device memory (one
// allocation once it has grown to the largest step, the tensors at the same
// addresses step after step), the sequence state and the non-expert weights
// in device memory, and queues everything on one compute stream. The routed
// experts live in the slot planes of a rotary.Runtime opened on the same
// device. By default residency is decided on the host: per MoE layer the
// routing is computed on the device and read back (one small copy and
// synchronisation per layer), the experts are acquired with the compute
// stream waiting for the copies of the misses on rotary's copy stream, and
// rotary/moe's kernels compute on the slots in place; an event recorded
// after them guards the slots until the kernels are done. With
// WithDeviceResidency the routing stays on the device, where package
// rotary/device's kernels resolve it to slots and copy the misses in on the
// compute stream, and a decode step synchronizes only to read its logits.
// WithGraphs then captures a sequence's decode step once as a CUDA graph and
// replays it at each later position (model.StepGrapher): a decode step costs
// the host three driver calls. The routing hook still sees every layer's
// routing, copied to pinned memory with the step's work
// (model.RoutingLogger).
//
// A failure ends its step: every later operation of the step returns it,
// and the next BeginStep starts clean unless the stream faulted (a device
// error leaves it failed for good) or a state tensor could not be
// allocated.
//
// The kernels are CUDA C in the package's .cu files, compiled at run time by
// NVRTC through cuda.Device.Load (Programs lists them; each source is
// cuda.Prelude, the package's helpers, then the file). The host backend
// (cuda.NewHost) runs the same source on the CPU through its emulator, which
// is how the package's tests prove them against the CPU backend
// (rotary/model/cpu) without a GPU. What the emulator cannot show — memory
// ordering on a real device, races between blocks, timing — waits for one.
//
// Kernels, loaded once per device with Load, queues launches on a stream:
//
//   - RMSNorm; AddNorm, a layer's residual sum (optionally gated, with a
//     second term) fused with the next RMSNorm;
//   - NormRope, per-head RMS norm and NEOX rope of the queries and keys in one
//     launch (heads laid out with a stride and offset, as qwen35moe's
//     interleaved query and gate), storing the keys and values into the KV
//     cache;
//   - Attend, causal softmax attention over the cache with grouped KV heads
//     and an optional sigmoid output gate: for decode a block per KV head
//     and its query heads, for prefill a block per head and eight tokens,
//     each key and value row read once per block; the sequence split so a
//     long context fills the GPU (a partial softmax per split, then a
//     combine);
//   - ConvSiLU, Gated DeltaNet's causal convolution continuing from its
//     state; DeltaNet, the gated delta rule with the L2 norms of queries and
//     keys fused in, the state kept in registers across the batch, and
//     optionally the gated output norm; GatedRMSNorm on its own;
//   - Route, softmax (or sigmoid) of router logits, top-k and
//     renormalisation, with expert choices identical to the CPU backend's;
//   - Add, SwiGLU, AddGated. (The embedding gather of every type is
//     rotary/moe's Embed.)
//
// A decode step of an attention layer takes NormRope, Attend (two launches
// once the context outgrows one split of 128 positions), AddNorm, Route,
// SwiGLU and AddNorm; a DeltaNet layer ConvSiLU, DeltaNet (its output norm
// fused), AddNorm, Route, SwiGLU and AddNorm: six launches (seven for
// attention past one split) beside the matrix products and the experts.
// Backend, which follows model.Backend's operations, uses these but one: it
// runs GatedRMSNorm apart from DeltaNet, and the residual sums separately
// from routing; with the matrix products, a decode layer takes 17
// (qwen3moe) to 25 (qwen35moe) launches.
//
// Arithmetic follows the CPU backend (and so ggml) where it decides results:
// the order of a norm's operations, rope angles reached by repeated float
// multiplication, exp(x) of routing as a rounded double exp with the softmax
// sum in double in expert order, so that routing picks the same experts bit
// for bit. Sums of many terms are trees of float rather than the CPU's
// ordered sums: each test states its tolerance.
//
// Every wrapper checks its arguments (shapes, buffer sizes, supported sizes)
// before queuing anything: a bad one is an error matching ErrShape.
// Kernels run asynchronously, so faults while they run surface at
// the stream's next synchronisation, as cuda reports them.
package gpu
