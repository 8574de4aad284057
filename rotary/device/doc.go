// Package device keeps the residency of rotary's MoE layers on the GPU, so
// that a decode step needs no host round trip: the router's expert ids stay
// in device memory, a resolve kernel maps them to slots and makes the
// eviction decisions (LRU or LFU, with the host runtime's tie-break), and a
// fill kernel copies the misses into their slots straight from the model
// file, registered and mapped into the device. The host never waits inside
// a step; the hits and misses reach rotary's Stats through counters in
// mapped memory.
//
// A Resolver takes layers over from a rotary.Runtime opened
// WithDeviceResidency (Runtime.Handover), with the tables the runtime kept
// until then. Its kernels are the same CUDA C on a GPU and, through the
// cuda host backend's emulator, on the CPU; residency.Table.Resolve is their
// host twin, which the tests hold them to decision for decision.
package device
