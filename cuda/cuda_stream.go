package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
	"unsafe"
)

// cudaStream is a Stream of a GPU.
type cudaStream struct {
	dev *cudaDevice
	h   cuStream
	num int

	mu     sync.RWMutex // read-held by calls on the stream, write-held by Close
	closed bool

	capMu   sync.Mutex
	capture *cudaCapture // between BeginCapture and EndCapture
}

// do runs fn with the device and the stream held open.
func (s *cudaStream) do(op string, fn func() error) error {
	if err := s.dev.enter(op); err != nil {
		return err
	}
	defer s.dev.leave()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("cuda: %s: stream %d: %w", op, s.num, ErrClosed)
	}
	return fn()
}

// CopyHtoD implements Stream.
func (s *cudaStream) CopyHtoD(dst Buffer, dstOff int64, src []byte) error {
	s.dev.calls.copies.Add(1)
	return s.do("CopyHtoD", func() error {
		a, off, err := s.dev.led.lookup(dst, dstOff, int64(len(src)))
		if err != nil {
			return fmt.Errorf("cuda: CopyHtoD: %w", err)
		}
		if err := s.captureCopy("CopyHtoD", src, dst); err != nil {
			return err
		}
		if len(src) == 0 {
			return nil
		}
		return s.dev.drv.memcpyHtoDAsync(s.dev.ctx, a.addr+uint64(off), src, s.h)
	})
}

// CopyDtoH implements Stream.
func (s *cudaStream) CopyDtoH(dst []byte, src Buffer, srcOff int64) error {
	s.dev.calls.copies.Add(1)
	return s.do("CopyDtoH", func() error {
		a, off, err := s.dev.led.lookup(src, srcOff, int64(len(dst)))
		if err != nil {
			return fmt.Errorf("cuda: CopyDtoH: %w", err)
		}
		if err := s.captureCopy("CopyDtoH", dst, src); err != nil {
			return err
		}
		if len(dst) == 0 {
			return nil
		}
		return s.dev.drv.memcpyDtoHAsync(s.dev.ctx, dst, a.addr+uint64(off), s.h)
	})
}

// CopyDtoD implements Stream.
func (s *cudaStream) CopyDtoD(dst Buffer, dstOff int64, src Buffer, srcOff, n int64) error {
	s.dev.calls.copies.Add(1)
	return s.do("CopyDtoD", func() error {
		da, doff, err := s.dev.led.lookup(dst, dstOff, n)
		if err != nil {
			return fmt.Errorf("cuda: CopyDtoD: destination %w", err)
		}
		sa, soff, err := s.dev.led.lookup(src, srcOff, n)
		if err != nil {
			return fmt.Errorf("cuda: CopyDtoD: source %w", err)
		}
		if c := s.capturing(); c != nil {
			c.use(dst, src)
		}
		if n == 0 {
			return nil
		}
		return s.dev.drv.memcpyDtoDAsync(s.dev.ctx, da.addr+uint64(doff), sa.addr+uint64(soff), n, s.h)
	})
}

// Memset implements Stream.
func (s *cudaStream) Memset(dst Buffer, off, n int64, value byte) error {
	s.dev.calls.copies.Add(1)
	return s.do("Memset", func() error {
		a, aoff, err := s.dev.led.lookup(dst, off, n)
		if err != nil {
			return fmt.Errorf("cuda: Memset: %w", err)
		}
		if c := s.capturing(); c != nil {
			c.use(dst)
		}
		if n == 0 {
			return nil
		}
		return s.dev.drv.memsetD8Async(s.dev.ctx, a.addr+uint64(aoff), value, n, s.h)
	})
}

// Launch implements Stream.
func (s *cudaStream) Launch(k Kernel, cfg LaunchConfig, args ...Arg) error {
	s.dev.calls.launches.Add(1)
	ck, ok := k.(*cudaKernel)
	if !ok || ck.mod.dev != s.dev {
		return fmt.Errorf("cuda: Launch: kernel %v is not this device's: %w", k, ErrInvalidHandle)
	}
	return s.do("Launch", func() error {
		if err := checkLaunch(&cfg); err != nil {
			return fmt.Errorf("cuda: Launch %s: %w", ck.name, err)
		}
		params := make([]uint64, len(args))
		if err := s.dev.packArgs(args, params); err != nil {
			return fmt.Errorf("cuda: Launch %s: %w", ck.name, err)
		}
		ck.mod.mu.RLock()
		defer ck.mod.mu.RUnlock()
		if ck.mod.closed {
			return fmt.Errorf("cuda: Launch %s: module %s: %w", ck.name, ck.mod.name, ErrClosed)
		}
		if err := s.dev.drv.launchKernel(s.dev.ctx, ck.f, cfg, s.h, params); err != nil {
			return fmt.Errorf("cuda: Launch %s: %w", ck.name, err)
		}
		if c := s.capturing(); c != nil {
			c.mu.Lock()
			c.launches = append(c.launches, cudaLaunch{k: ck, cfg: cfg, args: slices.Clone(args), params: params})
			c.mu.Unlock()
		}
		return nil
	})
}

// Record implements Stream.
func (s *cudaStream) Record(e Event) error {
	s.dev.calls.events.Add(1)
	ce, err := s.dev.event(e)
	if err != nil {
		return fmt.Errorf("cuda: Record: %w", err)
	}
	return s.do("Record", func() error {
		return ce.do("Record", func() error {
			if c := s.capturing(); c != nil {
				c.useEvent(ce)
				// Recorded at every replay of the graph, not only ordering
				// work within the capture.
				return s.dev.drv.eventRecordWithFlags(s.dev.ctx, ce.h, s.h, eventRecordExternal)
			}
			return s.dev.drv.eventRecord(s.dev.ctx, ce.h, s.h)
		})
	})
}

// Wait implements Stream.
func (s *cudaStream) Wait(e Event) error {
	s.dev.calls.events.Add(1)
	ce, err := s.dev.event(e)
	if err != nil {
		return fmt.Errorf("cuda: Wait: %w", err)
	}
	return s.do("Wait", func() error {
		return ce.do("Wait", func() error {
			var flags uint32
			if c := s.capturing(); c != nil {
				c.useEvent(ce)
				flags = eventWaitExternal // a wait node, waiting at every replay
			}
			return s.dev.drv.streamWaitEvent(s.dev.ctx, s.h, ce.h, flags)
		})
	})
}

// Query implements Stream.
func (s *cudaStream) Query() (done bool, err error) {
	s.dev.calls.queries.Add(1)
	err = s.do("Stream.Query", func() error {
		if s.capturing() != nil {
			return fmt.Errorf("cuda: Stream.Query: stream %d is capturing: %w", s.num, ErrCapture)
		}
		done, err = s.dev.drv.streamQuery(s.dev.ctx, s.h)
		return err
	})
	return done, err
}

// Synchronize implements Stream.
func (s *cudaStream) Synchronize(ctx context.Context) error {
	s.dev.calls.syncs.Add(1)
	if s.capturing() != nil {
		return fmt.Errorf("cuda: Stream.Synchronize: stream %d is capturing: %w", s.num, ErrCapture)
	}
	return s.dev.wait(ctx, "Stream.Synchronize", s.Query, func() error {
		return s.do("Stream.Synchronize", func() error { return s.dev.drv.streamSynchronize(s.dev.ctx, s.h) })
	})
}

// Close implements Stream. The driver releases the stream once its queued
// work completes.
func (s *cudaStream) Close() error {
	if err := s.dev.enter("Stream.Close"); err != nil {
		return err
	}
	defer s.dev.leave()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("cuda: Stream.Close: stream %d: %w", s.num, ErrClosed)
	}
	s.closed = true
	s.dev.mu.Lock()
	delete(s.dev.streams, s)
	s.dev.mu.Unlock()
	return errors.Join(s.dropCapture(), s.dev.drv.streamDestroy(s.dev.ctx, s.h))
}

// dropCapture ends a capture under way and destroys its graph.
func (s *cudaStream) dropCapture() error {
	s.capMu.Lock()
	c := s.capture
	s.capture = nil
	s.capMu.Unlock()
	if c == nil {
		return nil
	}
	s.dev.captures.Add(-1)
	g, err := s.dev.drv.streamEndCapture(s.dev.ctx, s.h)
	if err != nil {
		return err
	}
	return s.dev.drv.graphDestroy(s.dev.ctx, g)
}

// cudaEvent is an Event of a GPU.
type cudaEvent struct {
	dev   *cudaDevice
	h     cuEvent
	flags EventFlag

	mu     sync.RWMutex // read-held by calls on the event, write-held by Close
	closed bool
}

// event checks that e is one of d's events.
func (d *cudaDevice) event(e Event) (*cudaEvent, error) {
	ce, ok := e.(*cudaEvent)
	if !ok || ce.dev != d {
		return nil, fmt.Errorf("event %v is not this device's: %w", e, ErrInvalidHandle)
	}
	return ce, nil
}

// do runs fn with the event held open; the caller holds the device open.
func (e *cudaEvent) do(op string, fn func() error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return fmt.Errorf("cuda: %s: event: %w", op, ErrClosed)
	}
	return fn()
}

// call runs fn with the device and the event held open.
func (e *cudaEvent) call(op string, fn func() error) error {
	if err := e.dev.enter(op); err != nil {
		return err
	}
	defer e.dev.leave()
	return e.do(op, fn)
}

// Query implements Event.
func (e *cudaEvent) Query() (done bool, err error) {
	e.dev.calls.queries.Add(1)
	err = e.call("Event.Query", func() error {
		done, err = e.dev.drv.eventQuery(e.dev.ctx, e.h)
		return err
	})
	return done, err
}

// Synchronize implements Event.
func (e *cudaEvent) Synchronize(ctx context.Context) error {
	e.dev.calls.syncs.Add(1)
	return e.dev.wait(ctx, "Event.Synchronize", e.Query, func() error {
		return e.call("Event.Synchronize", func() error { return e.dev.drv.eventSynchronize(e.dev.ctx, e.h) })
	})
}

// Since implements Event.
func (e *cudaEvent) Since(start Event) (time.Duration, error) {
	s, err := e.dev.event(start)
	if err != nil {
		return 0, fmt.Errorf("cuda: Event.Since: start %w", err)
	}
	// Two events are held in address order, so that two calls on the same
	// pair cannot each hold one and wait for the other behind a Close.
	first, second := e, s
	if uintptr(unsafe.Pointer(s)) < uintptr(unsafe.Pointer(e)) {
		first, second = s, e
	}
	var ms float32
	err = first.call("Event.Since", func() error {
		return second.do("Event.Since", func() error {
			ms, err = e.dev.drv.eventElapsedTime(e.dev.ctx, s.h, e.h)
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(math.Round(float64(ms) * 1e6)), nil
}

// Close implements Event.
func (e *cudaEvent) Close() error {
	if err := e.dev.enter("Event.Close"); err != nil {
		return err
	}
	defer e.dev.leave()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("cuda: Event.Close: %w", ErrClosed)
	}
	e.closed = true
	e.dev.released.Add(1)
	e.dev.mu.Lock()
	delete(e.dev.events, e)
	e.dev.mu.Unlock()
	return e.dev.drv.eventDestroy(e.dev.ctx, e.h)
}

// cudaModule is a Program loaded on a GPU.
type cudaModule struct {
	dev  *cudaDevice
	h    cuModule
	name string

	mu      sync.RWMutex // read-held by launches, write-held by Close
	closed  bool
	kernels map[string]*cudaKernel
}

type cudaKernel struct {
	mod  *cudaModule
	name string
	f    cuFunction
}

func (k *cudaKernel) Name() string { return k.name }

// Kernel implements Module.
func (m *cudaModule) Kernel(name string) (Kernel, error) {
	if err := m.dev.enter("Kernel"); err != nil {
		return nil, err
	}
	defer m.dev.leave()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("cuda: Kernel(%s): module %s: %w", name, m.name, ErrClosed)
	}
	if k, ok := m.kernels[name]; ok {
		return k, nil
	}
	f, err := m.dev.drv.moduleGetFunction(m.dev.ctx, m.h, name)
	if err != nil {
		return nil, fmt.Errorf("cuda: Kernel(%s): module %s: %w", name, m.name, err)
	}
	k := &cudaKernel{mod: m, name: name, f: f}
	m.kernels[name] = k
	return k, nil
}

// Close implements Module.
func (m *cudaModule) Close() error {
	if err := m.dev.enter("Module.Close"); err != nil {
		return err
	}
	defer m.dev.leave()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("cuda: Module.Close: module %s: %w", m.name, ErrClosed)
	}
	m.closed = true
	m.dev.released.Add(1)
	m.dev.mu.Lock()
	delete(m.dev.modules, m)
	m.dev.mu.Unlock()
	return m.dev.drv.moduleUnload(m.dev.ctx, m.h)
}
