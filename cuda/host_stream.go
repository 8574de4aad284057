package cuda

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// completion is the outcome of one Record (or of a Synchronize marker): when
// the work queued before it finished, on the device's clock, and the stream's
// error by then. Under WithVirtualClock it is filled in when queued, and has
// completed once the host clock reaches at.
type completion struct {
	done chan struct{}
	at   time.Duration
	err  error
}

// newCompletion makes a completion; under WithVirtualClock, whose
// completions are filled in as they are queued, without a channel.
func (h *HostDevice) newCompletion() *completion {
	if h.cfg.virtual {
		return &completion{}
	}
	return &completion{done: make(chan struct{})}
}

func (c *completion) complete(at time.Duration, err error) {
	c.at, c.err = at, err
	if c.done != nil {
		close(c.done)
	}
}

// hostOp is one queued operation. wait, run and mark are each optional and
// happen in that order.
type hostOp struct {
	wait *completion // wait for this first; its error fails the stream
	// run does the work and returns its modeled duration on link. It is
	// skipped once the stream has failed.
	run  func() (time.Duration, error)
	link link
	mark *completion // completed after run, with the stream's error
	// held is the device memory run touches, kept mapped until the
	// operation is done.
	held []*deviceMemory
}

// done releases what op held.
func (op *hostOp) done() {
	for _, m := range op.held {
		m.release()
	}
}

// hold keeps the memory of allocs mapped for an operation; it fails for an
// allocation freed since it was looked up.
func hold(allocs ...*allocation) ([]*deviceMemory, error) {
	var held []*deviceMemory
	for _, a := range allocs {
		if a.mem == nil {
			continue
		}
		if !a.mem.hold() {
			for _, m := range held {
				m.release()
			}
			return nil, fmt.Errorf("buffer at %#x freed: %w", a.addr, ErrInvalidHandle)
		}
		held = append(held, a.mem)
	}
	return held, nil
}

// hostStream is a Stream of the host backend: without a virtual clock, a
// goroutine working through a FIFO queue.
type hostStream struct {
	dev *HostDevice
	num int

	mu      sync.Mutex // guards closed, capture and sends on queue
	closed  bool
	capture *hostGraph // what the stream captures into, between BeginCapture and EndCapture
	queue   chan hostOp
	exited  chan struct{}

	pending atomic.Int64 // operations queued and not yet done

	errMu sync.Mutex
	err   error // the first failure; the stream stays failed

	tail time.Duration // virtual: when the last operation ends (guarded by dev.timeMu)
	// inGraph is set while a GraphExec replays on the stream, whose
	// operations then cost no call each: the graph's launch was the call
	// (guarded by dev.timeMu).
	inGraph bool

	// batch, on a stand-in for the stream during a GraphExec's replay,
	// collects the operations instead of queueing them, so that they are
	// queued together or not at all.
	batch *[]hostOp
}

// hostQueueDepth bounds a stream's queue, as the driver's does: a producer
// far ahead of its stream blocks.
const hostQueueDepth = 1024

func newHostStream(h *HostDevice, num int) *hostStream {
	s := &hostStream{dev: h, num: num}
	if !h.cfg.virtual {
		s.queue = make(chan hostOp, hostQueueDepth)
		s.exited = make(chan struct{})
		go s.work()
	}
	return s
}

func (s *hostStream) work() {
	defer close(s.exited)
	for op := range s.queue {
		if op.wait != nil {
			<-op.wait.done
			if op.wait.err != nil {
				s.fail(op.wait.err)
			}
		}
		if op.run != nil && s.failure() == nil {
			start := s.dev.Now()
			d, err := s.runOp(op)
			if err != nil {
				s.fail(err)
			} else if op.link != linkNone && d > 0 {
				_, end := s.dev.reserve(op.link, start, d)
				sleepUntil(s.dev.start.Add(end))
			}
		}
		op.done()
		// The operation counts as done before its mark completes: whoever
		// the mark wakes (Synchronize) may Query at once and must find the
		// stream idle.
		s.pending.Add(-1)
		if op.mark != nil {
			op.mark.complete(s.dev.Now(), s.failure())
		}
	}
}

// runOp runs op's work, turning a panic into a failure of the stream.
func (s *hostStream) runOp(op hostOp) (d time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cuda: stream %d: %v: %w", s.num, r, ErrLaunchFailed)
		}
	}()
	return op.run()
}

// sleepUntil sleeps until t, spinning for the last stretch that the timer
// would overshoot.
func sleepUntil(t time.Time) {
	const slack = 100 * time.Microsecond
	for {
		d := time.Until(t)
		switch {
		case d <= 0:
			return
		case d > 2*slack:
			time.Sleep(d - slack)
		default:
			runtime.Gosched()
		}
	}
}

// reserve books d on link from no earlier than earliest and returns when the
// booking starts and ends.
func (h *HostDevice) reserve(l link, earliest, d time.Duration) (start, end time.Duration) {
	if !h.cfg.virtual {
		h.timeMu.Lock()
		defer h.timeMu.Unlock()
	}
	start = max(earliest, h.links[l])
	end = start + d
	h.links[l] = end
	return start, end
}

// submit queues op, or under WithVirtualClock runs it now in virtual time.
// Once it returns, what op held is released or will be when op is done.
func (s *hostStream) submit(op hostOp) error {
	if s.batch != nil {
		*s.batch = append(*s.batch, op)
		return nil
	}
	if s.dev.cfg.virtual {
		defer op.done()
		return s.runVirtual(op)
	}
	if err := s.enqueue(op); err != nil {
		op.done()
		return err
	}
	return nil
}

// submitAll queues ops with nothing between them, or none of them.
func (s *hostStream) submitAll(ops []hostOp) error {
	if s.dev.cfg.virtual {
		for i, op := range ops {
			err := s.runVirtual(op)
			op.done()
			if err != nil {
				abandon(ops[i+1:], err)
				return err
			}
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.dev.check("stream")
	if s.closed {
		err = fmt.Errorf("cuda: stream %d: %w", s.num, ErrClosed)
	}
	if err != nil {
		abandon(ops, err)
		return err
	}
	s.pending.Add(int64(len(ops)))
	for _, op := range ops {
		s.queue <- op
	}
	return nil
}

// abandon releases operations that will not be queued, and completes their
// marks with err, so that nothing waits for them.
func abandon(ops []hostOp, err error) {
	for _, op := range ops {
		op.done()
		if op.mark != nil {
			op.mark.complete(op.mark.at, err)
		}
	}
}

func (s *hostStream) enqueue(op hostOp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("cuda: stream %d: %w", s.num, ErrClosed)
	}
	if err := s.dev.check("stream"); err != nil {
		return err
	}
	s.pending.Add(1)
	s.queue <- op
	return nil
}

// runVirtual runs op at once, in queue order across all streams, placing it
// in virtual time: it starts when the host queued it, the stream's previous
// operation ended, the awaited event completed and its link is free.
func (s *hostStream) runVirtual(op hostOp) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("cuda: stream %d: %w", s.num, ErrClosed)
	}
	if err := s.dev.check("stream"); err != nil {
		return err
	}
	h := s.dev
	h.timeMu.Lock()
	defer h.timeMu.Unlock()
	if !s.inGraph {
		h.hostNow += h.cfg.timing.CallOverhead
	}
	s.tail = max(s.tail, h.hostNow)
	if op.wait != nil {
		s.tail = max(s.tail, op.wait.at)
		if op.wait.err != nil {
			s.fail(op.wait.err)
		}
	}
	if op.run != nil && s.failure() == nil {
		d, err := s.runOp(op)
		if err != nil {
			s.fail(err)
		} else if op.link != linkNone {
			_, s.tail = h.reserve(op.link, s.tail, d)
		}
	}
	if op.mark != nil {
		op.mark.complete(s.tail, s.failure())
	}
	return nil
}

func (s *hostStream) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
}

func (s *hostStream) failure() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// copyCost is the modeled duration of moving n bytes in direction kind;
// pinned says whether the host side is pinned or registered.
func (h *HostDevice) copyCost(kind CopyKind, n int64, pinned bool) time.Duration {
	t := h.cfg.timing
	var bw float64
	switch kind {
	case CopyHtoD, CopyDtoH:
		bw = t.PinnedBandwidth
		if !pinned && t.PageableBandwidth > 0 {
			bw = t.PageableBandwidth
		}
		if bw == 0 {
			return t.CopyLatency
		}
		return t.CopyLatency + time.Duration(float64(n)/bw*1e9)
	default:
		if t.DeviceBandwidth == 0 {
			return 0
		}
		return time.Duration(float64(n) / t.DeviceBandwidth * 1e9)
	}
}

// queueCopy counts a copy, consults the fault injectors, and queues move,
// which does the copy when the stream reaches it.
func (s *hostStream) queueCopy(info CopyInfo, l link, cost time.Duration, allocs []*allocation, move func()) error {
	h := s.dev
	h.timeMu.Lock()
	h.copies++
	info.N = h.copies
	h.timeMu.Unlock()
	info.Stream = s.num
	if f := h.cfg.copyFault; f != nil {
		if err := f(info); err != nil {
			return fmt.Errorf("cuda: %s on stream %d: injected fault: %w", info.Kind, s.num, err)
		}
	}
	var async error
	if f := h.cfg.asyncFault; f != nil {
		if err := f(info); err != nil {
			async = fmt.Errorf("cuda: %s on stream %d: injected fault: %w", info.Kind, s.num, err)
		}
	}
	held, err := hold(allocs...)
	if err != nil {
		return fmt.Errorf("cuda: %s on stream %d: %w", info.Kind, s.num, err)
	}
	return s.submit(hostOp{link: l, held: held, run: func() (time.Duration, error) {
		if async != nil {
			return 0, async
		}
		if !h.cfg.noData {
			move()
		}
		return cost, nil
	}})
}

// CopyHtoD implements Stream.
func (s *hostStream) CopyHtoD(dst Buffer, dstOff int64, src []byte) error {
	s.count(&s.dev.calls.copies)
	a, off, err := s.dev.led.lookup(dst, dstOff, int64(len(src)))
	if err != nil {
		return fmt.Errorf("cuda: CopyHtoD: %w", err)
	}
	if ok, err := s.captureCopy("CopyHtoD", src, func(t *hostStream) error { return t.CopyHtoD(dst, dstOff, src) }); ok {
		return err
	}
	info := CopyInfo{Kind: CopyHtoD, Size: int64(len(src)), Dst: dst, DstOff: dstOff}
	cost := s.dev.copyCost(CopyHtoD, info.Size, s.dev.led.isPinned(src))
	return s.queueCopy(info, linkHtoD, cost, []*allocation{a}, func() { copy(a.data[off:], src) })
}

// CopyDtoH implements Stream.
func (s *hostStream) CopyDtoH(dst []byte, src Buffer, srcOff int64) error {
	s.count(&s.dev.calls.copies)
	a, off, err := s.dev.led.lookup(src, srcOff, int64(len(dst)))
	if err != nil {
		return fmt.Errorf("cuda: CopyDtoH: %w", err)
	}
	if ok, err := s.captureCopy("CopyDtoH", dst, func(t *hostStream) error { return t.CopyDtoH(dst, src, srcOff) }); ok {
		return err
	}
	info := CopyInfo{Kind: CopyDtoH, Size: int64(len(dst)), Src: src, SrcOff: srcOff}
	cost := s.dev.copyCost(CopyDtoH, info.Size, s.dev.led.isPinned(dst))
	return s.queueCopy(info, linkDtoH, cost, []*allocation{a}, func() { copy(dst, a.data[off:off+info.Size]) })
}

// CopyDtoD implements Stream.
func (s *hostStream) CopyDtoD(dst Buffer, dstOff int64, src Buffer, srcOff, n int64) error {
	s.count(&s.dev.calls.copies)
	da, doff, err := s.dev.led.lookup(dst, dstOff, n)
	if err != nil {
		return fmt.Errorf("cuda: CopyDtoD: destination %w", err)
	}
	sa, soff, err := s.dev.led.lookup(src, srcOff, n)
	if err != nil {
		return fmt.Errorf("cuda: CopyDtoD: source %w", err)
	}
	if ok, err := s.captureCall(func(t *hostStream) error { return t.CopyDtoD(dst, dstOff, src, srcOff, n) }); ok {
		return err
	}
	info := CopyInfo{Kind: CopyDtoD, Size: n, Dst: dst, DstOff: dstOff, Src: src, SrcOff: srcOff}
	cost := s.dev.copyCost(CopyDtoD, n, true)
	return s.queueCopy(info, linkDevice, cost, []*allocation{da, sa}, func() { copy(da.data[doff:doff+n], sa.data[soff:soff+n]) })
}

// Memset implements Stream.
func (s *hostStream) Memset(dst Buffer, off, n int64, value byte) error {
	s.count(&s.dev.calls.copies)
	a, aoff, err := s.dev.led.lookup(dst, off, n)
	if err != nil {
		return fmt.Errorf("cuda: Memset: %w", err)
	}
	if ok, err := s.captureCall(func(t *hostStream) error { return t.Memset(dst, off, n, value) }); ok {
		return err
	}
	info := CopyInfo{Kind: CopyMemset, Size: n, Dst: dst, DstOff: off}
	cost := s.dev.copyCost(CopyMemset, n, true)
	return s.queueCopy(info, linkDevice, cost, []*allocation{a}, func() {
		b := a.data[aoff : aoff+n]
		for i := range b {
			b[i] = value
		}
	})
}

// maxThreadsPerBlock is CUDA's limit on a block's size.
const maxThreadsPerBlock = 1024

// maxDynamicShared is the dynamic shared memory a launch may ask for without
// raising the kernel's limit (cuFuncSetAttribute, which this package does
// not call): more fails on a GPU, so it fails in the emulator.
const maxDynamicShared = 48 << 10

// checkLaunch checks a launch's shape as the driver would, filling zero Y and
// Z with 1.
func checkLaunch(cfg *LaunchConfig) error {
	for _, d := range []*Dim3{&cfg.Grid, &cfg.Block} {
		if d.Y == 0 {
			d.Y = 1
		}
		if d.Z == 0 {
			d.Z = 1
		}
	}
	if cfg.Grid.X == 0 || cfg.Block.X == 0 {
		return fmt.Errorf("empty grid %v or block %v: %w", cfg.Grid, cfg.Block, ErrInvalidValue)
	}
	if uint64(cfg.Block.X)*uint64(cfg.Block.Y)*uint64(cfg.Block.Z) > maxThreadsPerBlock {
		return fmt.Errorf("block %v over %d threads: %w", cfg.Block, maxThreadsPerBlock, ErrInvalidValue)
	}
	return nil
}

// Launch implements Stream.
func (s *hostStream) Launch(k Kernel, cfg LaunchConfig, args ...Arg) error {
	s.count(&s.dev.calls.launches)
	hk, ok := k.(*hostKernel)
	if !ok || hk.mod.dev != s.dev {
		return fmt.Errorf("cuda: Launch: kernel %v is not this device's: %w", k, ErrInvalidHandle)
	}
	if hk.mod.isClosed() {
		return fmt.Errorf("cuda: Launch %s: module %s: %w", hk.name, hk.mod.name, ErrClosed)
	}
	if err := checkLaunch(&cfg); err != nil {
		return fmt.Errorf("cuda: Launch %s: %w", hk.name, err)
	}
	if hk.emu != nil {
		if err := hk.emu.checkArgs(args); err != nil {
			return fmt.Errorf("cuda: Launch %s: %w", hk.name, err)
		}
		if s.dev.cfg.noData {
			return fmt.Errorf("cuda: Launch %s: an emulated kernel needs device memory with bytes, not WithoutData: %w", hk.name, ErrInvalidValue)
		}
		if cfg.SharedMem > maxDynamicShared {
			return fmt.Errorf("cuda: Launch %s: %d bytes of dynamic shared memory, over the %d a launch gets: %w",
				hk.name, cfg.SharedMem, maxDynamicShared, ErrInvalidValue)
		}
	}
	// The arguments are copied: the caller may reuse its slice before the
	// kernel runs.
	l := &HostLaunch{Kernel: hk.name, Config: cfg, args: slices.Clone(args), mem: make([][]byte, len(args)), noData: s.dev.cfg.noData}
	allocs, hosts, err := s.dev.bindArgs(args, l.mem)
	if err != nil {
		return fmt.Errorf("cuda: Launch %s: %w", hk.name, err)
	}
	if g := s.capturing(); g != nil {
		return g.add(hostNode{kernel: hk, cfg: cfg, args: l.args})
	}
	held, err := hold(allocs...)
	if err != nil {
		return fmt.Errorf("cuda: Launch %s: %w", hk.name, err)
	}
	latency := s.dev.cfg.timing.LaunchLatency
	if hk.emu != nil {
		run := emuRun{cfg: cfg, args: emuArgs(args), schedule: s.dev.cfg.schedule, workers: s.dev.cfg.emuWorkers}
		return s.submit(hostOp{link: linkCompute, held: held, run: func() (time.Duration, error) {
			// Host memory may be Go memory: pinned, C may use it.
			var pin runtime.Pinner
			defer pin.Unpin()
			for _, r := range hosts {
				pin.Pin(unsafe.SliceData(r.mem))
			}
			if _, err := hk.emu.run(run); err != nil {
				return 0, fmt.Errorf("cuda: kernel %s: %v: %w", hk.name, err, ErrLaunchFailed)
			}
			return latency, nil
		}})
	}
	return s.submit(hostOp{link: linkCompute, held: held, run: func() (time.Duration, error) {
		if err := hk.fn(l); err != nil {
			return 0, fmt.Errorf("cuda: kernel %s: %w: %w", hk.name, err, ErrLaunchFailed)
		}
		return latency + l.duration, nil
	}})
}

// bindArgs checks a launch's arguments and finds the allocations and host
// memory they point to; mem, when not nil, receives each pointer
// argument's bytes.
func (h *HostDevice) bindArgs(args []Arg, mem [][]byte) (allocs []*allocation, hosts []*hostRecord, err error) {
	for i, a := range args {
		switch a.kind {
		case argBuffer:
			al, off, err := h.led.lookup(a.buf, a.off, 0)
			if err != nil {
				return nil, nil, fmt.Errorf("argument %d: %w", i, err)
			}
			allocs = append(allocs, al)
			if mem != nil && !h.cfg.noData {
				end := off + a.buf.size - a.off
				mem[i] = al.data[off:end:end]
			}
		case argHost:
			r, err := h.led.hostLookup(a.host)
			if err != nil {
				return nil, nil, fmt.Errorf("argument %d: %w", i, err)
			}
			if err := checkHostPtr(r, a.off); err != nil {
				return nil, nil, fmt.Errorf("argument %d: %w", i, err)
			}
			hosts = append(hosts, r)
			if mem != nil {
				mem[i] = r.mem[a.off:]
			}
		case 0:
			return nil, nil, fmt.Errorf("argument %d is a zero Arg: %w", i, ErrInvalidValue)
		}
	}
	return allocs, hosts, nil
}

// Record implements Stream.
func (s *hostStream) Record(e Event) error {
	s.count(&s.dev.calls.events)
	he, err := s.dev.event(e)
	if err != nil {
		return fmt.Errorf("cuda: Record: %w", err)
	}
	if ok, err := s.captureCall(func(t *hostStream) error { return t.Record(he) }); ok {
		return err
	}
	c := s.dev.newCompletion()
	if err := s.submit(hostOp{mark: c}); err != nil {
		return err
	}
	he.mu.Lock()
	he.last = c
	he.mu.Unlock()
	return nil
}

// Wait implements Stream.
func (s *hostStream) Wait(e Event) error {
	s.count(&s.dev.calls.events)
	he, err := s.dev.event(e)
	if err != nil {
		return fmt.Errorf("cuda: Wait: %w", err)
	}
	if ok, err := s.captureCall(func(t *hostStream) error { return t.Wait(he) }); ok {
		return err
	}
	he.mu.Lock()
	c := he.last
	he.mu.Unlock()
	if c == nil {
		return nil
	}
	return s.submit(hostOp{wait: c})
}

// Query implements Stream.
func (s *hostStream) Query() (bool, error) {
	s.count(&s.dev.calls.queries)
	if s.capturing() != nil {
		return false, fmt.Errorf("cuda: Stream.Query: stream %d is capturing: %w", s.num, ErrCapture)
	}
	if s.dev.cfg.virtual {
		h := s.dev
		h.timeMu.Lock()
		done := s.tail <= h.hostNow
		if !done {
			h.hostNow += max(h.cfg.timing.CallOverhead, time.Microsecond)
		}
		h.timeMu.Unlock()
		return done, s.failure()
	}
	return s.pending.Load() == 0, s.failure()
}

// Synchronize implements Stream.
func (s *hostStream) Synchronize(ctx context.Context) error {
	s.count(&s.dev.calls.syncs)
	if s.capturing() != nil {
		return fmt.Errorf("cuda: Stream.Synchronize: stream %d is capturing: %w", s.num, ErrCapture)
	}
	c := s.dev.newCompletion()
	if err := s.submit(hostOp{mark: c}); err != nil {
		return err
	}
	return s.dev.await(ctx, c)
}

// await waits for c, or for ctx; under WithVirtualClock it moves the host
// clock to c's time instead.
func (h *HostDevice) await(ctx context.Context, c *completion) error {
	if h.cfg.virtual {
		h.timeMu.Lock()
		h.hostNow = max(h.hostNow, c.at)
		h.timeMu.Unlock()
		return c.err
	}
	select {
	case <-c.done:
		return c.err
	default:
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("cuda: synchronize: %w", ctx.Err())
	}
}

// completed reports whether c has completed by the host's clock.
func (h *HostDevice) completed(c *completion) bool {
	if h.cfg.virtual {
		h.timeMu.Lock()
		defer h.timeMu.Unlock()
		return c.at <= h.hostNow
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close implements Stream.
func (s *hostStream) Close() error {
	if !s.shutdown() {
		return fmt.Errorf("cuda: stream %d: %w", s.num, ErrClosed)
	}
	s.dev.mu.Lock()
	delete(s.dev.streams, s)
	s.dev.mu.Unlock()
	return nil
}

// shutdown stops the stream taking work and waits for its queue to drain.
// It reports false if the stream was closed already.
func (s *hostStream) shutdown() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	if s.capture != nil {
		s.capture = nil
		s.dev.captures.Add(-1)
	}
	if s.queue != nil {
		close(s.queue)
	}
	s.mu.Unlock()
	if s.exited != nil {
		<-s.exited
	}
	return true
}

// hostEvent is an Event of the host backend.
type hostEvent struct {
	dev   *HostDevice
	flags EventFlag

	mu     sync.Mutex
	last   *completion // the most recent Record's
	closed bool
}

// event checks that e is a live event of h.
func (h *HostDevice) event(e Event) (*hostEvent, error) {
	he, ok := e.(*hostEvent)
	if !ok || he.dev != h {
		return nil, fmt.Errorf("event %v is not this device's: %w", e, ErrInvalidHandle)
	}
	he.mu.Lock()
	closed := he.closed
	he.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("event: %w", ErrClosed)
	}
	if err := h.check("event"); err != nil {
		return nil, err
	}
	return he, nil
}

// recorded returns the most recent Record's completion.
func (e *hostEvent) recorded(op string) (*completion, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		return nil, fmt.Errorf("cuda: %s: event never recorded: %w", op, ErrInvalidHandle)
	}
	return e.last, nil
}

// Query implements Event.
func (e *hostEvent) Query() (bool, error) {
	e.dev.calls.queries.Add(1)
	if _, err := e.dev.event(e); err != nil {
		return false, fmt.Errorf("cuda: Event.Query: %w", err)
	}
	e.mu.Lock()
	c := e.last
	e.mu.Unlock()
	if c == nil {
		return true, nil
	}
	if !e.dev.completed(c) {
		if e.dev.cfg.virtual {
			e.dev.Advance(max(e.dev.cfg.timing.CallOverhead, time.Microsecond))
		}
		return false, nil
	}
	return true, c.err
}

// Synchronize implements Event.
func (e *hostEvent) Synchronize(ctx context.Context) error {
	e.dev.calls.syncs.Add(1)
	if _, err := e.dev.event(e); err != nil {
		return fmt.Errorf("cuda: Event.Synchronize: %w", err)
	}
	e.mu.Lock()
	c := e.last
	e.mu.Unlock()
	if c == nil {
		return nil
	}
	return e.dev.await(ctx, c)
}

// Since implements Event.
func (e *hostEvent) Since(start Event) (time.Duration, error) {
	if _, err := e.dev.event(e); err != nil {
		return 0, fmt.Errorf("cuda: Event.Since: %w", err)
	}
	hs, err := e.dev.event(start)
	if err != nil {
		return 0, fmt.Errorf("cuda: Event.Since: start %w", err)
	}
	if (e.flags|hs.flags)&EventDisableTiming != 0 {
		return 0, fmt.Errorf("cuda: Event.Since: event created with EventDisableTiming: %w", ErrInvalidHandle)
	}
	c0, err := hs.recorded("Event.Since")
	if err != nil {
		return 0, err
	}
	c1, err := e.recorded("Event.Since")
	if err != nil {
		return 0, err
	}
	if !e.dev.completed(c0) || !e.dev.completed(c1) {
		return 0, fmt.Errorf("cuda: Event.Since: %w", ErrNotReady)
	}
	return c1.at - c0.at, nil
}

// Close implements Event.
func (e *hostEvent) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fmt.Errorf("cuda: Event.Close: %w", ErrClosed)
	}
	e.closed = true
	e.mu.Unlock()
	e.dev.mu.Lock()
	delete(e.dev.events, e)
	e.dev.mu.Unlock()
	return nil
}

// count counts a call of the stream, unless the stream stands in for one
// that replays a graph: the graph's launch was the call.
func (s *hostStream) count(c *atomic.Uint64) {
	if s.batch == nil {
		c.Add(1)
	}
}
