package cuda

import (
	"fmt"
	"log/slog"
	"time"
)

// Option configures Open, the CUDA backend.
type Option interface{ applyCUDA(*config) }

// HostOption configures NewHost, the host backend. Options that only the host
// backend understands (virtual time, timing, fault injection into copies,
// memory without data) are HostOptions only, so handing one to Open does not
// compile.
type HostOption interface{ applyHost(*config) }

// SharedOption configures either backend: it is an Option and a HostOption.
type SharedOption interface {
	Option
	HostOption
}

// hostOption and sharedOption are the kinds of option there are: a new
// option is one of them around a func that sets its field of config. (An
// option for Open alone would be a third, func(*config) with applyCUDA
// only; there is none yet.)
type (
	hostOption   func(*config)
	sharedOption func(*config)
)

func (f hostOption) applyHost(c *config)   { f(c) }
func (f sharedOption) applyCUDA(c *config) { f(c) }
func (f sharedOption) applyHost(c *config) { f(c) }

// config collects the options of both backends.
type config struct {
	log        *slog.Logger
	capacity   int64 // 0: the device's own size (CUDA) or defaultHostCapacity
	allocFault func(AllocInfo) error

	cacheDir    string
	cacheDirSet bool

	timing     Timing
	virtual    bool
	noData     bool
	copyFault  func(CopyInfo) error
	asyncFault func(CopyInfo) error

	schedule   Schedule
	emuWorkers int // 0: defaultEmuWorkers
}

// defaultHostCapacity is the host backend's device memory without
// WithCapacity: the 16 GB card rotary targets.
const defaultHostCapacity = 16 << 30

// newCUDAConfig applies Open's options and checks the result.
func newCUDAConfig(opts []Option) (config, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o.applyCUDA(&c)
		}
	}
	return c, c.validate()
}

// newHostConfig applies NewHost's options and checks the result.
func newHostConfig(opts []HostOption) (config, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o.applyHost(&c)
		}
	}
	return c, c.validate()
}

// validate checks the values the options set (options report nothing
// themselves, so that every constructor reports one error for all).
func (c *config) validate() error {
	if c.capacity < 0 {
		return fmt.Errorf("cuda: WithCapacity(%d): %w", c.capacity, ErrInvalidValue)
	}
	if err := c.timing.validate(); err != nil {
		return err
	}
	if c.emuWorkers < 0 {
		return fmt.Errorf("cuda: WithEmulatorWorkers(%d): %w", c.emuWorkers, ErrInvalidValue)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// WithLogger sets the logger (default: none). The package logs through
// log/slog, which keeps net/http (which package zap links) out of programs
// that import it; a zap logger plugs in through zap's slog handler
// (go.uber.org/zap/exp/zapslog: slog.New(zapslog.NewHandler(core))).
func WithLogger(log *slog.Logger) SharedOption {
	return sharedOption(func(c *config) { c.log = log })
}

// WithCapacity limits the device memory Alloc may use to bytes, so a large
// GPU, or the host backend, behaves like a smaller card: an allocation past it
// fails with ErrOutOfMemory and MemInfo reports it as the total. The host
// backend's default is 16 GiB.
func WithCapacity(bytes int64) SharedOption {
	return sharedOption(func(c *config) { c.capacity = bytes })
}

// AllocKind says what an allocation is for.
type AllocKind int

const (
	AllocDevice   AllocKind = iota + 1 // Device.Alloc
	AllocPinned                        // Device.AllocHost
	AllocRegister                      // Device.Register
)

func (k AllocKind) String() string {
	switch k {
	case AllocDevice:
		return "Alloc"
	case AllocPinned:
		return "AllocHost"
	case AllocRegister:
		return "Register"
	}
	return fmt.Sprintf("AllocKind(%d)", int(k))
}

// AllocInfo describes an allocation to a fault injector.
type AllocInfo struct {
	Kind AllocKind
	// N counts the allocations of this kind on the device, from 1, failed
	// ones included.
	N    int
	Size int64
}

// WithAllocFault calls fail before each allocation, pinned allocation and
// registration; a non-nil error fails it, wrapped (return ErrOutOfMemory to
// emulate a full card). For tests of code that must survive failures.
func WithAllocFault(fail func(AllocInfo) error) SharedOption {
	return sharedOption(func(c *config) { c.allocFault = fail })
}

// WithCacheDir sets the directory of the compiled-kernel cache: NVRTC's
// images on a GPU, the emulator's shared objects on the host backend; ""
// turns the disk cache off. The defaults are rotary/cuda/kernels and
// rotary/cuda/emulator under os.UserCacheDir.
func WithCacheDir(dir string) SharedOption {
	return sharedOption(func(c *config) { c.cacheDir, c.cacheDirSet = dir, true })
}

// Timing models how long the host backend's work takes, so CPU runs and
// simulations show transfer costs. The zero Timing makes everything free.
type Timing struct {
	// CopyLatency is a copy's fixed cost, on top of its bytes over the
	// bandwidth.
	CopyLatency time.Duration
	// PinnedBandwidth is host<->device bytes per second from memory allocated
	// by AllocHost or registered; 0 means copies cost only CopyLatency.
	PinnedBandwidth float64
	// PageableBandwidth is host<->device bytes per second from other host
	// memory; 0 means PinnedBandwidth.
	PageableBandwidth float64
	// DeviceBandwidth is bytes per second for device-to-device copies and
	// memsets; 0 means free.
	DeviceBandwidth float64
	// LaunchLatency is a kernel's cost on its stream before its own duration
	// (HostLaunch.SetDuration).
	LaunchLatency time.Duration
	// CallOverhead is the host time each queued operation costs under
	// WithVirtualClock (the real cost of the call through cgo on a GPU).
	CallOverhead time.Duration
}

// TimingH200 is what was measured on an H200 over PCIe Gen5 x16 from a Go
// binary: pinned copies 53 GB/s with ~4.4 µs fixed cost per copy (28 GB/s at
// 256 KiB chunks), pageable 6.5 GB/s, 4.3 µs per launch through cgo.
var TimingH200 = Timing{
	CopyLatency:       4400 * time.Nanosecond,
	PinnedBandwidth:   53e9,
	PageableBandwidth: 6.5e9,
	DeviceBandwidth:   2e12,
	LaunchLatency:     3 * time.Microsecond,
	CallOverhead:      4300 * time.Nanosecond,
}

func (t Timing) validate() error {
	if t.CopyLatency < 0 || t.LaunchLatency < 0 || t.CallOverhead < 0 ||
		t.PinnedBandwidth < 0 || t.PageableBandwidth < 0 || t.DeviceBandwidth < 0 {
		return fmt.Errorf("cuda: WithTiming(%+v): negative cost: %w", t, ErrInvalidValue)
	}
	return nil
}

// WithTiming makes the host backend's copies and kernels take modeled time:
// sleeping, or advancing the virtual clock under WithVirtualClock. Copies in
// one direction share one link, as on a GPU with one copy engine each way.
func WithTiming(t Timing) HostOption {
	return hostOption(func(c *config) { c.timing = t })
}

// WithVirtualClock runs the host backend in virtual time: each operation runs
// when it is queued, and its modeled duration (WithTiming,
// HostLaunch.SetDuration) moves a virtual timeline instead of sleeping. Stream
// order, event waits and the sharing of copy links hold in virtual time;
// events and HostDevice.Now report virtual times, and the host's own clock
// moves by Timing.CallOverhead per call, by Synchronize to the time waited for,
// and by HostDevice.Advance. A long trace simulates in the time its bookkeeping
// takes.
func WithVirtualClock() HostOption {
	return hostOption(func(c *config) { c.virtual = true })
}

// WithoutData makes the host backend's device memory accounting only: buffers
// have addresses and sizes but no bytes, copies and memsets are checked and
// timed but move nothing, and HostDevice.Bytes fails. For simulations whose
// buffers would not fit in RAM.
func WithoutData() HostOption {
	return hostOption(func(c *config) { c.noData = true })
}

// CopyKind is the direction of a copy.
type CopyKind int

const (
	CopyHtoD CopyKind = iota + 1
	CopyDtoH
	CopyDtoD
	CopyMemset // Stream.Memset, which the timing model treats as a device copy
)

func (k CopyKind) String() string {
	switch k {
	case CopyHtoD:
		return "CopyHtoD"
	case CopyDtoH:
		return "CopyDtoH"
	case CopyDtoD:
		return "CopyDtoD"
	case CopyMemset:
		return "Memset"
	}
	return fmt.Sprintf("CopyKind(%d)", int(k))
}

// CopyInfo describes a queued copy to a fault injector.
type CopyInfo struct {
	Kind CopyKind
	// N counts the copies queued on the device, from 1, failed ones included.
	N int
	// Stream is the stream's number on its device, from 1, in creation order.
	Stream int
	Size   int64
	// Dst and Src are the device buffers involved (zero for the host side),
	// DstOff and SrcOff the offsets into them.
	Dst, Src       Buffer
	DstOff, SrcOff int64
}

// WithCopyFault calls fail for each copy queued on the host backend; a
// non-nil error is returned by the copy call, wrapped, and nothing is queued.
func WithCopyFault(fail func(CopyInfo) error) HostOption {
	return hostOption(func(c *config) { c.copyFault = fail })
}

// WithAsyncCopyFault calls fail for each copy queued on the host backend; a
// non-nil error makes the copy fail when it runs, as a device fault would: the
// call succeeds, the copy moves nothing, and the stream's Synchronize and
// Query, and the events recorded on it from then on, report the error.
func WithAsyncCopyFault(fail func(CopyInfo) error) HostOption {
	return hostOption(func(c *config) { c.asyncFault = fail })
}

// Schedule is the order in which the emulator resumes a block's threads at
// each step (see WithSchedule). Code that is right only in one order — a
// missing __syncthreads, warp-synchronous code without __syncwarp — gives
// different answers under different schedules.
type Schedule struct {
	order scheduleOrder
	seed  uint64
}

type scheduleOrder int

// The orders, as the emulator's C side numbers them.
const (
	orderForward scheduleOrder = iota
	orderReverse
	orderRandom
)

var (
	// ScheduleForward resumes threads in the order of their linear index
	// (threadIdx.x fastest). It is the default.
	ScheduleForward = Schedule{order: orderForward}
	// ScheduleReverse resumes threads from the highest index down.
	ScheduleReverse = Schedule{order: orderReverse}
)

// ScheduleRandom resumes threads in an order shuffled afresh at every step
// from seed (and the block's index), the same for the same seed.
func ScheduleRandom(seed uint64) Schedule { return Schedule{order: orderRandom, seed: seed} }

func (s Schedule) String() string {
	switch s.order {
	case orderForward:
		return "forward"
	case orderReverse:
		return "reverse"
	}
	return fmt.Sprintf("random(%d)", s.seed)
}

// WithSchedule sets the order in which the host backend's emulator runs the
// threads of a block (default ScheduleForward). Run kernel tests under
// several schedules.
func WithSchedule(s Schedule) HostOption {
	return hostOption(func(c *config) { c.schedule = s })
}

// WithEmulatorWorkers sets how many OS threads run the blocks of an
// emulated grid at once (default: GOMAXPROCS, at most 8).
func WithEmulatorWorkers(n int) HostOption {
	return hostOption(func(c *config) { c.emuWorkers = n })
}
