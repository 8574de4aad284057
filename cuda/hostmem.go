package cuda

import (
	"runtime"
	"sync"
)

// deviceMemory is the mapping behind a host backend buffer (hostmem_*.go).
// Freeing it while queued copies or kernels still use it would pull the
// bytes from under them, so each queued operation holds the memory it
// touches, and the mapping goes once it is freed and no longer held.
type deviceMemory struct {
	mu      sync.Mutex
	mapping []byte // what mapDeviceMemory returned
	data    []byte // the buffer's bytes within it
	holds   int
	freed   bool
}

// newDeviceMemory maps size bytes. Should the device be dropped without
// Close, the mapping goes with its allocation's record.
func newDeviceMemory(size int64) (*deviceMemory, error) {
	mapping, data, err := mapDeviceMemory(size)
	if err != nil {
		return nil, err
	}
	return &deviceMemory{mapping: mapping, data: data}, nil
}

// track ties m's lifetime to a, its record in the ledger.
func (m *deviceMemory) track(a *allocation) {
	runtime.AddCleanup(a, func(m *deviceMemory) { m.free() }, m)
}

// hold keeps the bytes mapped until release; it fails once they are freed.
func (m *deviceMemory) hold() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.freed {
		return false
	}
	m.holds++
	return true
}

func (m *deviceMemory) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holds--
	m.unmapIfDone()
}

// free unmaps the bytes now, or when the last hold is released.
func (m *deviceMemory) free() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.freed = true
	m.unmapIfDone()
}

func (m *deviceMemory) unmapIfDone() {
	if m.freed && m.holds == 0 && m.mapping != nil {
		unmapDeviceMemory(m.mapping)
		m.mapping, m.data = nil, nil
	}
}
