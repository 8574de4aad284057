package cuda

import "sync/atomic"

// Calls counts the calls a device's streams, events and graphs have made of
// the driver since the device opened: what a step of work costs the host,
// which through cgo is about 4 µs a launch and 7 µs a small read-back
// (measured on an H200). Every call is counted, failed or refused ones too; a
// call queued into a graph being captured counts once, when captured.
type Calls struct {
	Launches uint64 // kernel launches, a graph's launch counting one
	Copies   uint64 // copies and memsets
	Events   uint64 // event records and stream waits on events
	Queries  uint64 // queries of a stream or an event
	Syncs    uint64 // synchronisations of a stream, an event or the device
}

// Total is the number of calls.
func (c Calls) Total() uint64 { return c.Launches + c.Copies + c.Events + c.Queries + c.Syncs }

// Sub returns the calls since an earlier snapshot old.
func (c Calls) Sub(old Calls) Calls {
	return Calls{c.Launches - old.Launches, c.Copies - old.Copies, c.Events - old.Events,
		c.Queries - old.Queries, c.Syncs - old.Syncs}
}

// callCounter is a device's Calls, counted from any goroutine.
type callCounter struct {
	launches, copies, events, queries, syncs atomic.Uint64
}

func (c *callCounter) snapshot() Calls {
	return Calls{c.launches.Load(), c.copies.Load(), c.events.Load(), c.queries.Load(), c.syncs.Load()}
}
