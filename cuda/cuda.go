package cuda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// cudaDevice is a Device on a GPU, using the device's primary context: it is
// the context the CUDA runtime would use, needs no creation parameters (whose
// cuCtxCreate signature changed in CUDA 13), and is the same on 12 and 13.
type cudaDevice struct {
	calls    callCounter
	drv      driver
	compiler func() (compiler, error)
	cfg      config
	log      *slog.Logger
	dev      cuDevice
	ctx      cuContext
	info     Info
	led      *ledger
	kernels  *kernelCache

	// life is held for reading by every call into the driver and for writing
	// by Close, so Close never pulls the context from under a call.
	life   sync.RWMutex
	closed bool

	mu       sync.Mutex // guards the sets below
	streams  map[*cudaStream]struct{}
	events   map[*cudaEvent]struct{}
	modules  map[*cudaModule]struct{}
	graphs   map[*cudaGraph]struct{}
	execs    map[*cudaGraphExec]struct{}
	nStreams int

	captures atomic.Int32 // streams capturing
	// released counts frees, unregistrations, unloads and closed events, so
	// that a GraphExec checks what it uses again only after one.
	released atomic.Uint64
}

var _ Device = (*cudaDevice)(nil)

// Open opens CUDA device ordinal, loading the driver on first use. Without a
// driver it fails with ErrNoDriver, naming the libraries it tried; without
// such a device, with ErrNoDevice. It takes Options: the shared ones and
// WithCacheDir (the host backend's own options do not compile here). NVRTC
// is loaded by the first Load.
func Open(ctx context.Context, ordinal int, opts ...Option) (Device, error) {
	cfg, err := newCUDAConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	drv, err := loadDriver()
	if err != nil {
		return nil, err
	}
	return openDevice(drv, loadNVRTC, ordinal, cfg)
}

// openDevice opens a device through drv, loading the compiler with
// loadCompiler when a program is first loaded.
func openDevice(drv driver, loadCompiler func() (compiler, error), ordinal int, cfg config) (*cudaDevice, error) {
	d := &cudaDevice{
		drv:      drv,
		compiler: loadCompiler,
		cfg:      cfg,
		log:      cfg.log,
		streams:  make(map[*cudaStream]struct{}),
		events:   make(map[*cudaEvent]struct{}),
		modules:  make(map[*cudaModule]struct{}),
		graphs:   make(map[*cudaGraph]struct{}),
		execs:    make(map[*cudaGraphExec]struct{}),
	}
	var err error
	if d.dev, err = drv.deviceGet(ordinal); err != nil {
		return nil, fmt.Errorf("cuda: Open(%d): %w", ordinal, err)
	}
	info := Info{Kind: KindCUDA, Ordinal: ordinal}
	if info.DriverVersion, err = drv.driverVersion(); err != nil {
		return nil, err
	}
	if info.Name, err = drv.deviceName(d.dev); err != nil {
		return nil, err
	}
	if info.ComputeMajor, err = drv.deviceAttribute(d.dev, attrComputeMajor); err != nil {
		return nil, err
	}
	if info.ComputeMinor, err = drv.deviceAttribute(d.dev, attrComputeMinor); err != nil {
		return nil, err
	}
	if info.TotalMemory, err = drv.deviceTotalMem(d.dev); err != nil {
		return nil, err
	}
	capacity := info.TotalMemory
	if cfg.capacity > 0 {
		capacity = min(capacity, cfg.capacity)
		info.TotalMemory = capacity
	}
	d.info = info
	d.led = newLedger(capacity, cfg.allocFault)
	dir, err := cacheDir(cfg)
	if err != nil {
		d.log.Warn("cuda: kernel disk cache off", slog.Any("err", err))
	}
	d.kernels = newKernelCache(dir)
	if d.ctx, err = drv.primaryCtxRetain(d.dev); err != nil {
		return nil, fmt.Errorf("cuda: Open(%d): %w", ordinal, err)
	}
	d.log.Info("cuda: device opened", slog.Int("ordinal", ordinal), slog.String("name", info.Name),
		slog.Int("cc_major", info.ComputeMajor), slog.Int("cc_minor", info.ComputeMinor),
		slog.Int64("memory", info.TotalMemory), slog.Int("driver", info.DriverVersion), slog.String("kernel_cache", dir))
	return d, nil
}

// enter starts a call into the driver: it fails once the device is closed,
// and otherwise holds Close off until leave.
func (d *cudaDevice) enter(op string) error {
	d.life.RLock()
	if d.closed {
		d.life.RUnlock()
		return fmt.Errorf("cuda: %s: device: %w", op, ErrClosed)
	}
	return nil
}

func (d *cudaDevice) leave() { d.life.RUnlock() }

// Info implements Device.
func (d *cudaDevice) Info() Info { return d.info }

// MemInfo implements Device.
func (d *cudaDevice) MemInfo() (free, total int64, err error) {
	if err := d.enter("MemInfo"); err != nil {
		return 0, 0, err
	}
	defer d.leave()
	free, total, err = d.drv.memGetInfo(d.ctx)
	if err != nil {
		return 0, 0, err
	}
	return min(free, d.led.available()), min(total, d.info.TotalMemory), nil
}

// Alloc implements Device.
func (d *cudaDevice) Alloc(size int64) (Buffer, error) {
	if err := d.enter("Alloc"); err != nil {
		return Buffer{}, err
	}
	defer d.leave()
	if err := whileCapturing("Alloc", d.captures.Load()); err != nil {
		return Buffer{}, err
	}
	if err := d.led.admit(AllocDevice, size); err != nil {
		return Buffer{}, err
	}
	p, err := d.drv.memAlloc(d.ctx, size)
	if err != nil {
		d.led.unreserve(size)
		return Buffer{}, fmt.Errorf("cuda: Alloc(%d): %w", size, err)
	}
	b, err := d.led.addDevice(p, size, nil)
	if err != nil {
		return Buffer{}, errors.Join(err, d.drv.memFree(d.ctx, p))
	}
	return b, nil
}

// Free implements Device.
func (d *cudaDevice) Free(b Buffer) error {
	if err := d.enter("Free"); err != nil {
		return err
	}
	defer d.leave()
	if err := whileCapturing("Free", d.captures.Load()); err != nil {
		return err
	}
	a, err := d.led.removeDevice(b)
	if err != nil {
		return err
	}
	d.released.Add(1)
	return d.drv.memFree(d.ctx, a.addr)
}

// AllocHost implements Device.
func (d *cudaDevice) AllocHost(size int64, flags HostAllocFlag) (HostBuffer, error) {
	if err := d.enter("AllocHost"); err != nil {
		return HostBuffer{}, err
	}
	defer d.leave()
	if err := whileCapturing("AllocHost", d.captures.Load()); err != nil {
		return HostBuffer{}, err
	}
	if err := flags.check(); err != nil {
		return HostBuffer{}, err
	}
	if err := d.led.admit(AllocPinned, size); err != nil {
		return HostBuffer{}, err
	}
	mem, err := d.drv.memHostAlloc(d.ctx, size, uint32(flags))
	if err != nil {
		return HostBuffer{}, fmt.Errorf("cuda: AllocHost(%d): %w", size, err)
	}
	var devAddr uint64
	if flags&HostAllocDeviceMap != 0 {
		if devAddr, err = d.drv.memHostGetDevicePointer(d.ctx, mem); err != nil {
			return HostBuffer{}, errors.Join(err, d.drv.memFreeHost(d.ctx, mem))
		}
	}
	h, err := d.led.addHost(AllocPinned, mem, devAddr)
	if err != nil {
		return HostBuffer{}, errors.Join(err, d.drv.memFreeHost(d.ctx, mem))
	}
	return h, nil
}

// FreeHost implements Device.
func (d *cudaDevice) FreeHost(h HostBuffer) error {
	if err := d.enter("FreeHost"); err != nil {
		return err
	}
	defer d.leave()
	if err := whileCapturing("FreeHost", d.captures.Load()); err != nil {
		return err
	}
	r, err := d.led.removeHost(h, AllocPinned)
	if err != nil {
		return err
	}
	d.released.Add(1)
	return d.drv.memFreeHost(d.ctx, r.mem)
}

// Register implements Device.
func (d *cudaDevice) Register(mem []byte, flags RegisterFlag) (HostBuffer, error) {
	if err := d.enter("Register"); err != nil {
		return HostBuffer{}, err
	}
	defer d.leave()
	if err := whileCapturing("Register", d.captures.Load()); err != nil {
		return HostBuffer{}, err
	}
	if err := flags.check(); err != nil {
		return HostBuffer{}, err
	}
	if err := d.led.admit(AllocRegister, int64(len(mem))); err != nil {
		return HostBuffer{}, err
	}
	if err := d.drv.memHostRegister(d.ctx, mem, uint32(flags)); err != nil {
		return HostBuffer{}, fmt.Errorf("cuda: Register(%d bytes): %w", len(mem), err)
	}
	var devAddr uint64
	var err error
	if flags&RegisterDeviceMap != 0 {
		if devAddr, err = d.drv.memHostGetDevicePointer(d.ctx, mem); err != nil {
			return HostBuffer{}, errors.Join(err, d.drv.memHostUnregister(d.ctx, mem))
		}
	}
	h, err := d.led.addHost(AllocRegister, mem, devAddr)
	if err != nil {
		return HostBuffer{}, errors.Join(err, d.drv.memHostUnregister(d.ctx, mem))
	}
	return h, nil
}

// Unregister implements Device.
func (d *cudaDevice) Unregister(h HostBuffer) error {
	if err := d.enter("Unregister"); err != nil {
		return err
	}
	defer d.leave()
	if err := whileCapturing("Unregister", d.captures.Load()); err != nil {
		return err
	}
	r, err := d.led.removeHost(h, AllocRegister)
	if err != nil {
		return err
	}
	d.released.Add(1)
	return d.drv.memHostUnregister(d.ctx, r.mem)
}

// NewStream implements Device.
func (d *cudaDevice) NewStream() (Stream, error) {
	if err := d.enter("NewStream"); err != nil {
		return nil, err
	}
	defer d.leave()
	h, err := d.drv.streamCreate(d.ctx, streamNonBlocking)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nStreams++
	s := &cudaStream{dev: d, h: h, num: d.nStreams}
	d.streams[s] = struct{}{}
	return s, nil
}

// NewEvent implements Device.
func (d *cudaDevice) NewEvent(flags EventFlag) (Event, error) {
	if err := d.enter("NewEvent"); err != nil {
		return nil, err
	}
	defer d.leave()
	if err := flags.check(); err != nil {
		return nil, err
	}
	h, err := d.drv.eventCreate(d.ctx, uint32(flags))
	if err != nil {
		return nil, err
	}
	e := &cudaEvent{dev: d, h: h, flags: flags}
	d.mu.Lock()
	d.events[e] = struct{}{}
	d.mu.Unlock()
	return e, nil
}

// Synchronize implements Device.
// Calls implements Device.
func (d *cudaDevice) Calls() Calls { return d.calls.snapshot() }

func (d *cudaDevice) Synchronize(ctx context.Context) error {
	d.calls.syncs.Add(1)
	if err := whileCapturing("Synchronize", d.captures.Load()); err != nil {
		return err
	}
	return d.wait(ctx, "Synchronize", nil, func() error {
		if err := d.enter("Synchronize"); err != nil {
			return err
		}
		defer d.leave()
		return d.drv.ctxSynchronize(d.ctx)
	})
}

// wait runs block, a blocking driver call, unless ctx ends first. query, if
// not nil, answers without blocking whether there is anything to wait for.
// Both take the locks they need themselves, so that the caller holds none
// while it waits: the driver cannot abandon a wait, so after ctx ends block
// runs on in a goroutine, holding the device open until it returns.
func (d *cudaDevice) wait(ctx context.Context, op string, query func() (bool, error), block func() error) error {
	if ctx.Done() == nil {
		return block()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cuda: %s: %w", op, err)
	}
	if query != nil {
		if done, err := query(); done || err != nil {
			return err
		}
	}
	result := make(chan error, 1)
	go func() { result <- block() }()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("cuda: %s: %w", op, ctx.Err())
	}
}

// Stats implements Device.
func (d *cudaDevice) Stats() Stats {
	var s Stats
	d.led.stats(&s)
	d.mu.Lock()
	s.Streams, s.Events, s.Modules = len(d.streams), len(d.events), len(d.modules)
	s.Graphs, s.GraphExecs = len(d.graphs), len(d.execs)
	d.mu.Unlock()
	return s
}

// Close implements Device: it waits for the device's work, then destroys
// and frees everything and releases the primary context.
func (d *cudaDevice) Close() error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return fmt.Errorf("cuda: Close: device: %w", ErrClosed)
	}
	d.closed = true
	// A capture under way would make the synchronization fail (global
	// mode): it ends first.
	var errs []error
	d.mu.Lock()
	for s := range d.streams {
		errs = append(errs, s.dropCapture())
	}
	d.mu.Unlock()
	errs = append(errs, d.drv.ctxSynchronize(d.ctx))
	d.mu.Lock()
	for x := range d.execs {
		errs = append(errs, d.drv.graphExecDestroy(d.ctx, x.h), x.graph.dropExec())
	}
	for g := range d.graphs {
		g.mu.Lock()
		g.closed = true
		errs = append(errs, g.release())
		g.mu.Unlock()
	}
	d.graphs, d.execs = nil, nil
	for m := range d.modules {
		errs = append(errs, d.drv.moduleUnload(d.ctx, m.h))
	}
	for e := range d.events {
		errs = append(errs, d.drv.eventDestroy(d.ctx, e.h))
	}
	for s := range d.streams {
		errs = append(errs, d.drv.streamDestroy(d.ctx, s.h))
	}
	nModules, nEvents, nStreams := len(d.modules), len(d.events), len(d.streams)
	d.modules, d.events, d.streams = nil, nil, nil
	d.mu.Unlock()
	allocs, hosts := d.led.drain()
	for _, a := range allocs {
		errs = append(errs, d.drv.memFree(d.ctx, a.addr))
	}
	for _, r := range hosts {
		if r.kind == AllocPinned {
			errs = append(errs, d.drv.memFreeHost(d.ctx, r.mem))
		} else {
			errs = append(errs, d.drv.memHostUnregister(d.ctx, r.mem))
		}
	}
	errs = append(errs, d.drv.primaryCtxRelease(d.dev))
	d.log.Info("cuda: device closed", slog.Int("buffers", len(allocs)), slog.Int("host_buffers", len(hosts)),
		slog.Int("streams", nStreams), slog.Int("events", nEvents), slog.Int("modules", nModules))
	return errors.Join(errs...)
}

// packArgs checks a launch's arguments and packs each into the 8 bytes the
// driver reads its parameter from (little-endian, so a 4-byte parameter reads
// the low half).
func (d *cudaDevice) packArgs(args []Arg, params []uint64) error {
	if len(args) > maxKernelArgs {
		return fmt.Errorf("%d arguments, at most %d: %w", len(args), maxKernelArgs, ErrInvalidValue)
	}
	for i, a := range args {
		switch a.kind {
		case argBuffer:
			if _, _, err := d.led.lookup(a.buf, a.off, 0); err != nil {
				return fmt.Errorf("argument %d: %w", i, err)
			}
			params[i] = a.buf.addr + uint64(a.off)
		case argHost:
			r, err := d.led.hostLookup(a.host)
			if err != nil {
				return fmt.Errorf("argument %d: %w", i, err)
			}
			if err := checkHostPtr(r, a.off); err != nil {
				return fmt.Errorf("argument %d: %w", i, err)
			}
			params[i] = r.devAddr + uint64(a.off)
		case 0:
			return fmt.Errorf("argument %d is a zero Arg: %w", i, ErrInvalidValue)
		default:
			params[i] = a.bits
		}
	}
	return nil
}
