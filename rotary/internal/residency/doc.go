// Package residency is the residency core of a layer: the tables that say
// which expert each slot of the layer's plane holds, and the decisions that
// change them (which slot a missing expert takes, which resident expert an
// eviction policy gives up), with no locks, no driver and no copies.
//
// It is the one implementation of those decisions. rotary's Runtime wraps a
// Table in its layer lock and does the copies and the fences itself; the
// simulator runs the Runtime; and Table.Resolve, a whole step's decisions
// at once, is the host twin of the device-side resolve kernel
// (rotary/device), which tests compare it with. The tables are plain arrays
// indexed by expert or slot in the layout a device keeps them in.
package residency
