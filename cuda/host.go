package cuda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// HostDevice is the host backend: a Device whose memory is Go memory, whose
// streams are goroutines working through FIFO queues, and whose kernels are
// the Go functions of Program.Host. It runs and tests GPU programs on any
// machine, emulates a card of a chosen size (WithCapacity), can model the time
// transfers take (WithTiming), simulate in virtual time (WithVirtualClock) and
// inject failures (WithAllocFault, WithCopyFault, WithAsyncCopyFault).
type HostDevice struct {
	calls callCounter
	cfg   config
	log   *slog.Logger
	led   *ledger
	start time.Time

	// timeMu guards the timelines; under WithVirtualClock it also serializes
	// the operations, which run as they are queued.
	timeMu  sync.Mutex
	hostNow time.Duration           // the host's virtual clock
	links   [numLinks]time.Duration // when each link is next free
	copies  int                     // copies queued, for CopyInfo.N

	mu       sync.Mutex
	closed   bool
	nextAddr uint64
	streams  map[*hostStream]struct{}
	events   map[*hostEvent]struct{}
	modules  map[*hostModule]struct{}
	graphs   map[*hostGraph]struct{}
	execs    map[*hostGraphExec]struct{}
	nStreams int

	captures atomic.Int32 // streams capturing
}

// link is a resource operations queue for, in modeled time.
type link int

const (
	linkHtoD link = iota
	linkDtoH
	linkDevice // device-to-device copies and memsets
	linkCompute
	numLinks
	linkNone link = -1
)

// hostAddrBase is where the host backend's synthetic device addresses (under
// WithoutData) start, far from 0 so a zero address is never valid. Buffers
// with bytes have the address of their bytes.
const hostAddrBase = 1 << 40

// hostAlign is the alignment of the host backend's buffers, as cuMemAlloc's.
const hostAlign = 256

var _ Device = (*HostDevice)(nil)

// NewHost creates a host backend device. It takes HostOptions: the shared
// ones (WithCapacity, WithLogger, WithAllocFault) and the host backend's own;
// a bad value (a negative capacity or cost) fails with ErrInvalidValue.
func NewHost(opts ...HostOption) (*HostDevice, error) {
	cfg, err := newHostConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.capacity == 0 {
		cfg.capacity = defaultHostCapacity
	}
	if cfg.emuWorkers == 0 {
		cfg.emuWorkers = defaultEmuWorkers()
	}
	return &HostDevice{
		cfg:      cfg,
		log:      cfg.log,
		led:      newLedger(cfg.capacity, cfg.allocFault),
		start:    time.Now(),
		nextAddr: hostAddrBase,
		streams:  make(map[*hostStream]struct{}),
		events:   make(map[*hostEvent]struct{}),
		modules:  make(map[*hostModule]struct{}),
		graphs:   make(map[*hostGraph]struct{}),
		execs:    make(map[*hostGraphExec]struct{}),
	}, nil
}

// Info implements Device.
func (h *HostDevice) Info() Info {
	return Info{Kind: KindHost, Name: "host", TotalMemory: h.cfg.capacity}
}

// MemInfo implements Device.
func (h *HostDevice) MemInfo() (free, total int64, err error) {
	if err := h.check("MemInfo"); err != nil {
		return 0, 0, err
	}
	return h.led.available(), h.cfg.capacity, nil
}

func (h *HostDevice) check(op string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("cuda: %s: device: %w", op, ErrClosed)
	}
	return nil
}

// Alloc implements Device.
func (h *HostDevice) Alloc(size int64) (Buffer, error) {
	if err := h.check("Alloc"); err != nil {
		return Buffer{}, err
	}
	if err := whileCapturing("Alloc", h.captures.Load()); err != nil {
		return Buffer{}, err
	}
	if err := h.led.admit(AllocDevice, size); err != nil {
		return Buffer{}, err
	}
	if h.cfg.noData {
		h.mu.Lock()
		addr := h.nextAddr
		h.nextAddr += (uint64(size) + hostAlign - 1) / hostAlign * hostAlign
		h.mu.Unlock()
		return h.led.addDevice(addr, size, nil)
	}
	mem, err := newDeviceMemory(size)
	if err != nil {
		h.led.unreserve(size)
		return Buffer{}, err
	}
	b, err := h.led.addDevice(uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem.data)))), size, mem)
	if err != nil {
		mem.free()
	}
	return b, err
}

// Free implements Device.
func (h *HostDevice) Free(b Buffer) error {
	if err := h.check("Free"); err != nil {
		return err
	}
	if err := whileCapturing("Free", h.captures.Load()); err != nil {
		return err
	}
	a, err := h.led.removeDevice(b)
	if err != nil {
		return err
	}
	if a.mem != nil {
		a.mem.free()
	}
	return nil
}

// AllocHost implements Device. The memory is ordinary Go memory that the
// timing model treats as pinned.
func (h *HostDevice) AllocHost(size int64, flags HostAllocFlag) (HostBuffer, error) {
	if err := h.check("AllocHost"); err != nil {
		return HostBuffer{}, err
	}
	if err := whileCapturing("AllocHost", h.captures.Load()); err != nil {
		return HostBuffer{}, err
	}
	if err := flags.check(); err != nil {
		return HostBuffer{}, err
	}
	if err := h.led.admit(AllocPinned, size); err != nil {
		return HostBuffer{}, err
	}
	mem := make([]byte, size)
	return h.led.addHost(AllocPinned, mem, mappedAddr(mem, flags&HostAllocDeviceMap != 0))
}

// FreeHost implements Device.
func (h *HostDevice) FreeHost(hb HostBuffer) error {
	if err := h.check("FreeHost"); err != nil {
		return err
	}
	if err := whileCapturing("FreeHost", h.captures.Load()); err != nil {
		return err
	}
	_, err := h.led.removeHost(hb, AllocPinned)
	return err
}

// Register implements Device. It records the memory, which the timing model
// then treats as pinned, and keeps it alive until Unregister.
func (h *HostDevice) Register(mem []byte, flags RegisterFlag) (HostBuffer, error) {
	if err := h.check("Register"); err != nil {
		return HostBuffer{}, err
	}
	if err := whileCapturing("Register", h.captures.Load()); err != nil {
		return HostBuffer{}, err
	}
	if err := flags.check(); err != nil {
		return HostBuffer{}, err
	}
	if err := h.led.admit(AllocRegister, int64(len(mem))); err != nil {
		return HostBuffer{}, err
	}
	return h.led.addHost(AllocRegister, mem, mappedAddr(mem, flags&RegisterDeviceMap != 0))
}

// mappedAddr is the device address of host memory mapped into the host
// backend's device: its own address, as under CUDA's unified addressing.
func mappedAddr(mem []byte, mapped bool) uint64 {
	if !mapped {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
}

// Unregister implements Device.
func (h *HostDevice) Unregister(hb HostBuffer) error {
	if err := h.check("Unregister"); err != nil {
		return err
	}
	if err := whileCapturing("Unregister", h.captures.Load()); err != nil {
		return err
	}
	_, err := h.led.removeHost(hb, AllocRegister)
	return err
}

// Bytes is the memory behind a device buffer, for host kernels and tests. It
// fails for a freed buffer and under WithoutData.
func (h *HostDevice) Bytes(b Buffer) ([]byte, error) {
	if h.cfg.noData {
		return nil, fmt.Errorf("cuda: Bytes(%v): device memory has no bytes under WithoutData: %w", b, ErrInvalidValue)
	}
	a, off, err := h.led.lookup(b, 0, b.size)
	if err != nil {
		return nil, fmt.Errorf("cuda: Bytes: %w", err)
	}
	return a.data[off : off+b.size : off+b.size], nil
}

// Now is the device's clock: the virtual host time under WithVirtualClock,
// otherwise the time since NewHost.
func (h *HostDevice) Now() time.Duration {
	if h.cfg.virtual {
		h.timeMu.Lock()
		defer h.timeMu.Unlock()
		return h.hostNow
	}
	return time.Since(h.start)
}

// Advance models d of host work: it moves the virtual host clock, or sleeps
// without WithVirtualClock.
func (h *HostDevice) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	if !h.cfg.virtual {
		time.Sleep(d)
		return
	}
	h.timeMu.Lock()
	h.hostNow += d
	h.timeMu.Unlock()
}

// EventTime is when e's most recent Record completed, on the clock of Now. It
// fails with ErrNotReady before that, and for an event never recorded.
func (h *HostDevice) EventTime(e Event) (time.Duration, error) {
	he, err := h.event(e)
	if err != nil {
		return 0, fmt.Errorf("cuda: EventTime: %w", err)
	}
	c, err := he.recorded("EventTime")
	if err != nil {
		return 0, err
	}
	if !h.completed(c) {
		return 0, fmt.Errorf("cuda: EventTime: %w", ErrNotReady)
	}
	return c.at, nil
}

// NewStream implements Device.
func (h *HostDevice) NewStream() (Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("cuda: NewStream: device: %w", ErrClosed)
	}
	h.nStreams++
	s := newHostStream(h, h.nStreams)
	h.streams[s] = struct{}{}
	return s, nil
}

// NewEvent implements Device.
func (h *HostDevice) NewEvent(flags EventFlag) (Event, error) {
	if err := flags.check(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("cuda: NewEvent: device: %w", ErrClosed)
	}
	e := &hostEvent{dev: h, flags: flags}
	h.events[e] = struct{}{}
	return e, nil
}

// hostModule is a Program bound on the host backend.
type hostModule struct {
	dev     *HostDevice
	name    string
	source  string
	kernels map[string]HostKernel
	emu     *emuLibrary // the emulated kernels, nil when there are none
	noEmu   error       // why kernels without Go twins cannot run, when they cannot

	mu     sync.Mutex
	closed bool
}

type hostKernel struct {
	mod  *hostModule
	name string
	fn   HostKernel // the Go twin, or nil
	emu  *emuKernel // the emulated kernel, when there is no Go twin
}

func (k *hostKernel) Name() string { return k.name }

// Load implements Device. A kernel with a Go twin in Program.Host runs it;
// every other extern "C" __global__ kernel of Program.Source runs in the
// emulator, compiled by the host's C++ compiler (or found in the cache).
// Each Go kernel must be declared __global__ in the source (when there is
// one), so the two cannot drift apart by a name. Without an emulator (no cgo,
// no C++ compiler) a program with Go twins still loads, and its other
// kernels fail with ErrNoEmulator; one with none fails to load.
func (h *HostDevice) Load(ctx context.Context, p *Program) (Module, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p == nil || (len(p.Host) == 0 && p.Source == "") {
		return nil, fmt.Errorf("cuda: Load: program without kernels: %w", ErrInvalidValue)
	}
	for name, fn := range p.Host {
		if fn == nil {
			return nil, fmt.Errorf("cuda: Load %s: host kernel %s is nil: %w", p.Name, name, ErrInvalidValue)
		}
		if p.Source != "" && !declaresKernel(p.Source, name) {
			return nil, fmt.Errorf("cuda: Load %s: host kernel %s is not a __global__ function of the source: %w", p.Name, name, ErrNotFound)
		}
	}
	m := &hostModule{dev: h, name: p.Name, source: p.Source, kernels: make(map[string]HostKernel, len(p.Host))}
	for name, fn := range p.Host {
		m.kernels[name] = fn
	}
	var emulated []string
	for _, name := range globalKernels(p.Source) {
		if p.Host[name] == nil {
			emulated = append(emulated, name)
		}
	}
	if len(emulated) > 0 || len(p.Host) == 0 {
		if err := checkKernelMacros(p.Name, p.Source); err != nil {
			return nil, err
		}
	}
	if len(emulated) == 0 && len(p.Host) == 0 {
		return nil, fmt.Errorf("cuda: Load %s: no extern \"C\" __global__ kernel in the source: %w", p.Name, ErrInvalidValue)
	}
	if len(emulated) > 0 {
		lib, err := loadEmulated(ctx, p, emulated, h.cfg, h.log)
		switch {
		case errors.Is(err, ErrNoEmulator) && len(p.Host) > 0:
			h.log.Debug("cuda: no emulator; only the Go kernels run", slog.String("program", p.Name), slog.Any("err", err))
			m.noEmu = err
		case err != nil:
			return nil, err
		default:
			m.emu = lib
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("cuda: Load: device: %w", ErrClosed)
	}
	h.modules[m] = struct{}{}
	return m, nil
}

// declaresKernel reports whether src declares a __global__ function name.
func declaresKernel(src, name string) bool {
	re := regexp.MustCompile(`__global__[^;{}]*?\b` + regexp.QuoteMeta(name) + `\s*\(`)
	return re.MatchString(src)
}

// Kernel implements Module.
func (m *hostModule) Kernel(name string) (Kernel, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("cuda: Kernel(%s): module %s: %w", name, m.name, ErrClosed)
	}
	if fn, ok := m.kernels[name]; ok {
		return &hostKernel{mod: m, name: name, fn: fn}, nil
	}
	if m.emu != nil {
		if k, ok := m.emu.kernels[name]; ok {
			return &hostKernel{mod: m, name: name, emu: k}, nil
		}
	}
	if m.noEmu != nil && slices.Contains(globalKernels(m.source), name) {
		return nil, fmt.Errorf("cuda: Kernel(%s): module %s: no Go twin, and %w", name, m.name, m.noEmu)
	}
	why := "no such kernel"
	if declaresKernel(m.source, name) {
		why = "declared in the source, but not extern \"C\" and without a Go twin in Program.Host"
	}
	return nil, fmt.Errorf("cuda: Kernel(%s): module %s: %s: %w", name, m.name, why, ErrNotFound)
}

// Close implements Module.
func (m *hostModule) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("cuda: module %s: %w", m.name, ErrClosed)
	}
	m.closed = true
	m.mu.Unlock()
	m.dev.mu.Lock()
	delete(m.dev.modules, m)
	m.dev.mu.Unlock()
	return nil
}

func (m *hostModule) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Synchronize implements Device.
func (h *HostDevice) Synchronize(ctx context.Context) error {
	h.calls.syncs.Add(1)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fmt.Errorf("cuda: Synchronize: device: %w", ErrClosed)
	}
	if err := whileCapturing("Synchronize", h.captures.Load()); err != nil {
		h.mu.Unlock()
		return err
	}
	streams := make([]*hostStream, 0, len(h.streams))
	for s := range h.streams {
		streams = append(streams, s)
	}
	h.mu.Unlock()
	var errs []error
	for _, s := range streams {
		if err := s.Synchronize(ctx); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Calls implements Device.
func (h *HostDevice) Calls() Calls { return h.calls.snapshot() }

// Stats implements Device.
func (h *HostDevice) Stats() Stats {
	var s Stats
	h.led.stats(&s)
	h.mu.Lock()
	s.Streams, s.Events, s.Modules = len(h.streams), len(h.events), len(h.modules)
	s.Graphs, s.GraphExecs = len(h.graphs), len(h.execs)
	h.mu.Unlock()
	return s
}

// Close implements Device. It waits for the streams' queued work, then drops
// every handle; the errors of failed work are not reported again.
func (h *HostDevice) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fmt.Errorf("cuda: Close: device: %w", ErrClosed)
	}
	h.closed = true
	streams := h.streams
	h.streams = make(map[*hostStream]struct{})
	h.events = make(map[*hostEvent]struct{})
	modules := h.modules
	h.modules = make(map[*hostModule]struct{})
	graphs, execs := h.graphs, h.execs
	h.graphs, h.execs = make(map[*hostGraph]struct{}), make(map[*hostGraphExec]struct{})
	h.mu.Unlock()

	for g := range graphs {
		g.mu.Lock()
		g.closed, g.nodes = true, nil
		g.mu.Unlock()
	}
	for x := range execs {
		x.mu.Lock()
		x.closed, x.nodes = true, nil
		x.mu.Unlock()
	}

	for s := range streams {
		s.shutdown()
	}
	for m := range modules {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
	}
	allocs, hosts := h.led.drain()
	for _, a := range allocs {
		if a.mem != nil {
			a.mem.free()
		}
	}
	h.log.Debug("cuda: host device closed", slog.Int("buffers", len(allocs)), slog.Int("host_buffers", len(hosts)),
		slog.Int("streams", len(streams)), slog.Int("modules", len(modules)))
	return nil
}
