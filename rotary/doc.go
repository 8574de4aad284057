// Package rotary keeps the experts of a Mixture-of-Experts model where a
// program can use them: in VRAM when they are hot, in pinned host memory or
// the mapped model file otherwise, and moves them between on CUDA streams
// while the GPU computes.
//
// NewPlan splits a VRAM budget (ParseSize reads "16GiB") between the
// program's own buffers (the model's non-expert weights and WithReserve),
// experts pinned for good (WithHotSet, from profile.SelectHotSet) and dynamic
// slots, the same number for every layer; too small a budget is a
// *BudgetError naming the numbers. Each layer's slots form one device
// allocation, a plane laid out like the stacked expert tensors (slot s at
// byte s·ExpertBytes, gate|up|down back to back), so kernels address
// experts by slot; the residency tables (slot of each expert, expert of each
// slot, last use of each slot) are plain arrays a device-side table can
// mirror. The host tier registers the file's expert tensors as pinned memory
// when the host budget holds them all (HostMapped), or keeps an LRU of
// pinned expert copies (HostLRU), carved from large AllocHost chunks and
// filled from the mapping in the background; copies to the GPU always come
// from pinned memory.
//
// Open plans and follows the plan on a cuda.Device, or follows the one
// WithPlan hands it, so a program plans once. Acquire returns the device views
// of a layer's requested experts: hits at once, misses copied in one batch on
// the runtime's copy stream, with the caller's compute stream waiting on the
// batch's event, so the host blocks only when every slot it could evict is
// held; AcquireInto reuses a released Set, so hits allocate nothing. Release
// gives a Set back with an event after the work that reads it; the slots are
// not overwritten before the event completes. Prefetch (and PrefetchN,
// within a limit) starts copies ahead without blocking; Stats.Prefetch
// scores them. Eviction follows a Policy: LRU, LFU, or Belady's offline
// optimum for simulations. Stats count hits, misses, bytes, transfer and
// stall times per tier and layer.
//
// Residency can also be decided on the device: a runtime opened
// WithDeviceResidency maps the registered file into the device, and
// Handover gives a layer's tables to package rotary/device, whose kernels
// resolve a step's routed experts to slots and copy the misses without the
// host; Stats then count what the device reports. Both sides run the same
// decisions (the residency core the runtime wraps), so LRU and LFU evict
// the same experts on either.
//
// The subpackage sim replays routing traces through the same runtime on the
// host backend in virtual time, to compare budgets, policies and
// prefetchers (package prefetch) without a GPU.
package rotary
