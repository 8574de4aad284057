package cuda

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"
)

// handleIDs numbers allocations and host buffers across all devices, so a
// stale or foreign handle never matches a live one, even where the driver
// reuses addresses.
var handleIDs atomic.Uint64

// allocation is one Device.Alloc.
type allocation struct {
	addr uint64
	size int64
	data []byte        // the bytes on the host backend (nil under WithoutData and on CUDA)
	mem  *deviceMemory // the mapping behind data
}

// hostRecord is one AllocHost or Register.
type hostRecord struct {
	id      uint64
	kind    AllocKind // AllocPinned or AllocRegister
	mem     []byte
	start   uintptr // address of mem[0]
	devAddr uint64
}

func (r *hostRecord) end() uintptr { return r.start + uintptr(len(r.mem)) }

// ledger is the bookkeeping both backends share: live handles (so misuse is an
// error, not a crash), the capacity and its accounting, and fault injection.
type ledger struct {
	capacity int64
	fault    func(AllocInfo) error

	mu      sync.RWMutex
	used    int64
	counts  [AllocRegister + 1]int
	device  map[uint64]*allocation
	host    map[uint64]*hostRecord
	byStart []*hostRecord // host records sorted by start address
	pinned  int64
	regd    int64
	closed  bool // drained by Close: nothing more is admitted or added
}

func newLedger(capacity int64, fault func(AllocInfo) error) *ledger {
	return &ledger{
		capacity: capacity,
		fault:    fault,
		device:   make(map[uint64]*allocation),
		host:     make(map[uint64]*hostRecord),
	}
}

// admit counts an allocation of kind and size, asks the fault injector about
// it and, for device memory, reserves size bytes of the capacity. A caller
// whose allocation then fails gives the bytes back with unreserve.
func (l *ledger) admit(kind AllocKind, size int64) error {
	if size <= 0 {
		return fmt.Errorf("cuda: %s(%d): %w", kind, size, ErrInvalidValue)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("cuda: %s: device: %w", kind, ErrClosed)
	}
	l.counts[kind]++
	n := l.counts[kind]
	l.mu.Unlock()
	if l.fault != nil {
		if err := l.fault(AllocInfo{Kind: kind, N: n, Size: size}); err != nil {
			return fmt.Errorf("cuda: %s(%d): injected fault: %w", kind, size, err)
		}
	}
	if kind != AllocDevice {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if size > l.capacity-l.used {
		return fmt.Errorf("cuda: Alloc(%d): %d of %d bytes in use: %w", size, l.used, l.capacity, ErrOutOfMemory)
	}
	l.used += size
	return nil
}

func (l *ledger) unreserve(size int64) {
	l.mu.Lock()
	l.used -= size
	l.mu.Unlock()
}

// available is the capacity not in use.
func (l *ledger) available() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.capacity - l.used
}

// addDevice records an allocation admitted earlier, with the host backend's
// memory behind it (nil on CUDA and under WithoutData). It fails if the
// device was closed since, and the caller then frees what it allocated.
func (l *ledger) addDevice(addr uint64, size int64, mem *deviceMemory) (Buffer, error) {
	id := handleIDs.Add(1)
	a := &allocation{addr: addr, size: size, mem: mem}
	if mem != nil {
		a.data = mem.data
		mem.track(a)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Buffer{}, fmt.Errorf("cuda: Alloc: device: %w", ErrClosed)
	}
	l.device[id] = a
	return Buffer{addr: addr, size: size, id: id}, nil
}

// lookup checks that b is live and that [off, off+n) lies within it, and
// returns its allocation and the offset of off from the allocation's start.
func (l *ledger) lookup(b Buffer, off, n int64) (*allocation, int64, error) {
	l.mu.RLock()
	a := l.device[b.id]
	l.mu.RUnlock()
	if a == nil {
		return nil, 0, fmt.Errorf("%v: freed, zero or another device's: %w", b, ErrInvalidHandle)
	}
	if err := checkRange(b.size, off, n); err != nil {
		return nil, 0, fmt.Errorf("%v: %w", b, err)
	}
	return a, int64(b.addr-a.addr) + off, nil
}

// removeDevice forgets the allocation b and gives its bytes back.
func (l *ledger) removeDevice(b Buffer) (*allocation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.device[b.id]
	if a == nil {
		return nil, fmt.Errorf("cuda: Free(%v): freed, zero or another device's: %w", b, ErrInvalidHandle)
	}
	if a.addr != b.addr || a.size != b.size {
		return nil, fmt.Errorf("cuda: Free(%v): a slice of an allocation of %d bytes at %#x: %w", b, a.size, a.addr, ErrInvalidValue)
	}
	delete(l.device, b.id)
	l.used -= a.size
	return a, nil
}

// addHost records pinned or registered host memory; it fails if mem overlaps
// memory already recorded, or the device was closed since it was admitted.
func (l *ledger) addHost(kind AllocKind, mem []byte, devAddr uint64) (HostBuffer, error) {
	r := &hostRecord{
		id:      handleIDs.Add(1),
		kind:    kind,
		mem:     mem,
		start:   uintptr(unsafe.Pointer(unsafe.SliceData(mem))),
		devAddr: devAddr,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return HostBuffer{}, fmt.Errorf("cuda: %s: device: %w", kind, ErrClosed)
	}
	i := sort.Search(len(l.byStart), func(i int) bool { return l.byStart[i].start >= r.start })
	if (i < len(l.byStart) && l.byStart[i].start < r.end()) || (i > 0 && l.byStart[i-1].end() > r.start) {
		return HostBuffer{}, fmt.Errorf("cuda: %s(%d bytes at %#x): %w", kind, len(mem), r.start, ErrAlreadyRegistered)
	}
	l.byStart = append(l.byStart, nil)
	copy(l.byStart[i+1:], l.byStart[i:])
	l.byStart[i] = r
	l.host[r.id] = r
	if kind == AllocPinned {
		l.pinned += int64(len(mem))
	} else {
		l.regd += int64(len(mem))
	}
	return HostBuffer{mem: mem, id: r.id, devAddr: devAddr}, nil
}

// removeHost forgets host memory recorded by addHost with the same kind.
func (l *ledger) removeHost(h HostBuffer, kind AllocKind) (*hostRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.host[h.id]
	op := "FreeHost"
	if kind == AllocRegister {
		op = "Unregister"
	}
	switch {
	case r == nil && kind == AllocRegister:
		return nil, fmt.Errorf("cuda: %s: %w", op, ErrNotRegistered)
	case r == nil:
		return nil, fmt.Errorf("cuda: %s: freed, zero or another device's host buffer: %w", op, ErrInvalidHandle)
	case r.kind != kind:
		return nil, fmt.Errorf("cuda: %s of memory from %s: %w", op, r.kind, ErrInvalidValue)
	}
	delete(l.host, h.id)
	i := sort.Search(len(l.byStart), func(i int) bool { return l.byStart[i].start >= r.start })
	l.byStart = append(l.byStart[:i], l.byStart[i+1:]...)
	if kind == AllocPinned {
		l.pinned -= int64(len(r.mem))
	} else {
		l.regd -= int64(len(r.mem))
	}
	return r, nil
}

// hostLookup returns the live record of h.
func (l *ledger) hostLookup(h HostBuffer) (*hostRecord, error) {
	l.mu.RLock()
	r := l.host[h.id]
	l.mu.RUnlock()
	if r == nil {
		return nil, fmt.Errorf("host buffer freed, zero or another device's: %w", ErrInvalidHandle)
	}
	return r, nil
}

// checkHostPtr checks that byte off of r can be passed to a kernel.
func checkHostPtr(r *hostRecord, off int64) error {
	if r.devAddr == 0 {
		return fmt.Errorf("host buffer not mapped into the device (HostAllocDeviceMap, RegisterDeviceMap): %w", ErrInvalidValue)
	}
	return checkRange(int64(len(r.mem)), off, 0)
}

// isPinned reports whether p lies within pinned or registered memory.
func (l *ledger) isPinned(p []byte) bool { return len(p) == 0 || l.pinnedRecord(p) != nil }

// pinnedRecord is the pinned or registered memory that non-empty p lies
// within, or nil.
func (l *ledger) pinnedRecord(p []byte) *hostRecord {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	end := start + uintptr(len(p))
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := sort.Search(len(l.byStart), func(i int) bool { return l.byStart[i].start > start })
	if i > 0 && l.byStart[i-1].end() >= end {
		return l.byStart[i-1]
	}
	return nil
}

// hostAlive reports whether r is still recorded (not freed or unregistered).
func (l *ledger) hostAlive(r *hostRecord) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.host[r.id] == r
}

// stats fills the memory part of s.
func (l *ledger) stats(s *Stats) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s.DeviceBytes, s.DeviceBuffers = l.used, len(l.device)
	s.PinnedBytes, s.RegisteredBytes = l.pinned, l.regd
	for _, r := range l.host {
		if r.kind == AllocPinned {
			s.PinnedBuffers++
		} else {
			s.Registrations++
		}
	}
}

// drain forgets everything and admits nothing more, for Close, and returns
// what it forgot.
func (l *ledger) drain() ([]*allocation, []*hostRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	allocs := make([]*allocation, 0, len(l.device))
	for _, a := range l.device {
		allocs = append(allocs, a)
	}
	hosts := l.byStart
	l.device = make(map[uint64]*allocation)
	l.host = make(map[uint64]*hostRecord)
	l.byStart = nil
	l.used, l.pinned, l.regd = 0, 0, 0
	l.closed = true
	return allocs, hosts
}
