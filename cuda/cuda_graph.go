package cuda

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"
)

// Capture on a GPU is in global mode (CU_STREAM_CAPTURE_MODE_GLOBAL). The
// capture modes decide which threads may not make "unsafe" calls (a
// cuCtxSynchronize, a synchronous copy) while a stream captures: global
// forbids them on every thread, thread-local only on the thread that began
// the capture. A goroutine is not tied to an OS thread (doc.go), so
// thread-local mode would forbid them on whichever goroutine next runs on
// that thread and allow them on the capturing goroutine once it has moved:
// a rule no Go program can follow. Global mode is one rule for the process,
// and the one the package keeps on both backends: while a stream captures,
// its Query and Synchronize, and the device's Synchronize, Alloc, Free,
// AllocHost, FreeHost, Register and Unregister fail with ErrCapture,
// checked before the driver is called, so the capture survives and the host
// backend refuses what a GPU would.

// cudaLaunch is a kernel launch captured on a GPU, and its node in the
// graph.
type cudaLaunch struct {
	k      *cudaKernel
	cfg    LaunchConfig
	args   []Arg
	params []uint64
	node   cuGraphNode
	twin   bool // identical to another launch of the capture
}

// cudaCapture is what a capturing stream remembers beside the driver: the
// launches, to find their nodes for SetKernelArgs, and every buffer, host
// memory and event the captured work uses, to refuse launching a graph
// whose memory was freed or whose event was closed.
type cudaCapture struct {
	mu       sync.Mutex
	launches []cudaLaunch
	bufs     []Buffer
	hosts    []*hostRecord
	events   []*cudaEvent
}

func (c *cudaCapture) use(bufs ...Buffer) {
	c.mu.Lock()
	c.bufs = append(c.bufs, bufs...)
	c.mu.Unlock()
}

func (c *cudaCapture) useEvent(e *cudaEvent) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

// capturing returns the capture s is in, or nil.
func (s *cudaStream) capturing() *cudaCapture {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	return s.capture
}

// captureCopy checks a copy queued while s captures, and notes its buffer.
func (s *cudaStream) captureCopy(op string, host []byte, b Buffer) error {
	c := s.capturing()
	if c == nil {
		return nil
	}
	if len(host) == 0 {
		c.use(b)
		return nil
	}
	r := s.dev.led.pinnedRecord(host)
	if r == nil {
		return fmt.Errorf("cuda: %s on capturing stream %d: host memory is not pinned or registered: %w", op, s.num, ErrCapture)
	}
	c.use(b)
	c.mu.Lock()
	c.hosts = append(c.hosts, r)
	c.mu.Unlock()
	return nil
}

// BeginCapture implements Stream.
func (s *cudaStream) BeginCapture() error {
	return s.do("BeginCapture", func() error {
		s.capMu.Lock()
		defer s.capMu.Unlock()
		if s.capture != nil {
			return fmt.Errorf("cuda: BeginCapture: stream %d is capturing already: %w", s.num, ErrCapture)
		}
		if err := s.dev.drv.streamBeginCapture(s.dev.ctx, s.h); err != nil {
			return fmt.Errorf("cuda: BeginCapture: %w", err)
		}
		s.capture = &cudaCapture{}
		s.dev.captures.Add(1)
		return nil
	})
}

// EndCapture implements Stream.
func (s *cudaStream) EndCapture() (Graph, error) {
	var g *cudaGraph
	err := s.do("EndCapture", func() error {
		s.capMu.Lock()
		c := s.capture
		s.capture = nil
		s.capMu.Unlock()
		if c == nil {
			return fmt.Errorf("cuda: EndCapture: stream %d is not capturing: %w", s.num, ErrCapture)
		}
		s.dev.captures.Add(-1)
		h, err := s.dev.drv.streamEndCapture(s.dev.ctx, s.h)
		if err != nil {
			return fmt.Errorf("cuda: EndCapture: %w", err)
		}
		nodes, err := s.dev.drv.graphKernelNodes(s.dev.ctx, h)
		if err == nil {
			err = matchNodes(c.launches, nodes)
		}
		if err != nil {
			return fmt.Errorf("cuda: EndCapture: %w (graph destroyed: %v)", err, s.dev.drv.graphDestroy(s.dev.ctx, h))
		}
		g = &cudaGraph{dev: s.dev, h: h, launches: c.launches, bufs: c.bufs, hosts: c.hosts, events: c.events}
		s.dev.mu.Lock()
		s.dev.graphs[g] = struct{}{}
		s.dev.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// matchNodes finds each captured launch's node among the graph's kernel
// nodes, which the driver lists in no documented order: the node of the
// same function, shape and parameter values. Identical launches (twins)
// take their nodes in the driver's order, which may not be theirs, so
// SetKernelArgs refuses them.
func matchNodes(launches []cudaLaunch, nodes []kernelNode) error {
	tw := twins(len(launches), func(i, j int) bool {
		a, b := &launches[i], &launches[j]
		return a.k == b.k && a.cfg == b.cfg && sameArgs(a.args, b.args)
	})
	for i := range launches {
		launches[i].twin = tw[i]
	}
	if len(nodes) != len(launches) {
		return fmt.Errorf("%d kernel nodes for %d captured launches: %w", len(nodes), len(launches), ErrCapture)
	}
	used := make([]bool, len(nodes))
	for i := range launches {
		l := &launches[i]
		j := slices.IndexFunc(nodes, func(n kernelNode) bool {
			return n.f == l.k.f && n.cfg == l.cfg && paramsEqual(n.params, l.args, l.params)
		})
		for j >= 0 && used[j] {
			k := slices.IndexFunc(nodes[j+1:], func(n kernelNode) bool {
				return n.f == l.k.f && n.cfg == l.cfg && paramsEqual(n.params, l.args, l.params)
			})
			if k < 0 {
				j = -1
				break
			}
			j += 1 + k
		}
		if j < 0 {
			return fmt.Errorf("launch %d (%s) has no node in the captured graph: %w", i, l.k.name, ErrCapture)
		}
		used[j] = true
		l.node = nodes[j].h
	}
	return nil
}

// paramsEqual reports whether a node's parameters (a void** array) hold the
// packed values of args, each compared over its parameter's size.
func paramsEqual(ptrs unsafe.Pointer, args []Arg, packed []uint64) bool {
	if len(args) == 0 {
		return true
	}
	if ptrs == nil {
		return false
	}
	for i, p := range unsafe.Slice((*unsafe.Pointer)(ptrs), len(args)) {
		n := args[i].argSize()
		var want [8]byte
		binary.LittleEndian.PutUint64(want[:], packed[i])
		if p == nil || !bytes.Equal(unsafe.Slice((*byte)(p), n), want[:n]) {
			return false
		}
	}
	return true
}

// cudaGraph is a Graph on a GPU. The driver's graph lives until it is
// closed and its GraphExecs are: cuGraphExecKernelNodeSetParams names a
// node of the graph the GraphExec came from.
type cudaGraph struct {
	dev      *cudaDevice
	h        cuGraph
	launches []cudaLaunch
	bufs     []Buffer
	hosts    []*hostRecord
	events   []*cudaEvent

	mu        sync.Mutex
	closed    bool
	execs     int // GraphExecs not closed
	destroyed bool
}

// release destroys the driver's graph once nothing needs it; g.mu is held.
func (g *cudaGraph) release() error {
	if !g.closed || g.execs > 0 || g.destroyed {
		return nil
	}
	g.destroyed = true
	return g.dev.drv.graphDestroy(g.dev.ctx, g.h)
}

// Launches implements Graph.
func (g *cudaGraph) Launches() int { return len(g.launches) }

// Instantiate implements Graph.
func (g *cudaGraph) Instantiate() (GraphExec, error) {
	if err := g.dev.enter("Graph.Instantiate"); err != nil {
		return nil, err
	}
	defer g.dev.leave()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, fmt.Errorf("cuda: Graph.Instantiate: graph: %w", ErrClosed)
	}
	h, err := g.dev.drv.graphInstantiate(g.dev.ctx, g.h)
	if err != nil {
		return nil, fmt.Errorf("cuda: Graph.Instantiate: %w", err)
	}
	g.execs++
	x := &cudaGraphExec{dev: g.dev, h: h, graph: g, launches: slices.Clone(g.launches)}
	g.dev.mu.Lock()
	g.dev.execs[x] = struct{}{}
	g.dev.mu.Unlock()
	return x, nil
}

// Close implements Graph.
func (g *cudaGraph) Close() error {
	if err := g.dev.enter("Graph.Close"); err != nil {
		return err
	}
	defer g.dev.leave()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("cuda: Graph.Close: %w", ErrClosed)
	}
	g.closed = true
	g.dev.mu.Lock()
	delete(g.dev.graphs, g)
	g.dev.mu.Unlock()
	return g.release()
}

// cudaGraphExec is a GraphExec on a GPU.
type cudaGraphExec struct {
	dev   *cudaDevice
	h     cuGraphExec
	graph *cudaGraph // kept until this closes; its memory, never changed

	mu       sync.Mutex
	launches []cudaLaunch // with the arguments set last
	closed   bool
	checked  bool   // whether the memory and kernels were found alive
	gen      uint64 // dev.released when they were
}

// Launch implements GraphExec. It checks first that the memory, kernels and
// events the graph uses were not freed, unloaded or closed (the driver
// would not notice), again only after something was.
func (x *cudaGraphExec) Launch(s Stream) error {
	x.dev.calls.launches.Add(1)
	cs, ok := s.(*cudaStream)
	if !ok || cs.dev != x.dev {
		return fmt.Errorf("cuda: GraphExec.Launch: stream %v is not this device's: %w", s, ErrInvalidHandle)
	}
	return cs.do("GraphExec.Launch", func() error {
		if cs.capturing() != nil {
			return fmt.Errorf("cuda: GraphExec.Launch: stream %d is capturing: %w", cs.num, ErrCapture)
		}
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.closed {
			return fmt.Errorf("cuda: GraphExec.Launch: %w", ErrClosed)
		}
		if err := x.check(); err != nil {
			return fmt.Errorf("cuda: GraphExec.Launch: %w", err)
		}
		if err := x.dev.drv.graphLaunch(x.dev.ctx, x.h, cs.h); err != nil {
			return fmt.Errorf("cuda: GraphExec.Launch: %w", err)
		}
		return nil
	})
}

// check checks, after a release since the last check, that the graph's
// memory, kernels and events are alive; x.mu is held.
func (x *cudaGraphExec) check() error {
	gen := x.dev.released.Load()
	if x.checked && gen == x.gen {
		return nil
	}
	for _, b := range x.graph.bufs {
		if _, _, err := x.dev.led.lookup(b, 0, 0); err != nil {
			return err
		}
	}
	for _, e := range x.graph.events {
		if err := e.do("GraphExec.Launch", func() error { return nil }); err != nil {
			return err
		}
	}
	for _, r := range x.graph.hosts {
		if !x.dev.led.hostAlive(r) {
			return fmt.Errorf("host memory of a captured copy freed or unregistered: %w", ErrInvalidHandle)
		}
	}
	for i, l := range x.launches {
		if err := x.dev.packArgs(l.args, make([]uint64, len(l.args))); err != nil {
			return fmt.Errorf("launch %d (%s): %w", i, l.k.name, err)
		}
		if err := l.k.mod.alive(); err != nil {
			return fmt.Errorf("launch %d (%s): %w", i, l.k.name, err)
		}
	}
	x.checked, x.gen = true, gen
	return nil
}

// SetKernelArgs implements GraphExec.
func (x *cudaGraphExec) SetKernelArgs(launch int, args ...Arg) error {
	if err := x.dev.enter("GraphExec.SetKernelArgs"); err != nil {
		return err
	}
	defer x.dev.leave()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs: %w", ErrClosed)
	}
	if launch < 0 || launch >= len(x.launches) {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs: launch %d of %d: %w", launch, len(x.launches), ErrInvalidValue)
	}
	l := &x.launches[launch]
	if l.twin {
		return errTwin(launch)
	}
	if err := checkArgUpdate(l.args, args); err != nil {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs %s: %w", l.k.name, err)
	}
	params := make([]uint64, len(args))
	if err := x.dev.packArgs(args, params); err != nil {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs %s: %w", l.k.name, err)
	}
	if err := x.dev.drv.graphExecKernelNodeSetParams(x.dev.ctx, x.h, l.node, l.k.f, l.cfg, params); err != nil {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs %s: %w", l.k.name, err)
	}
	l.args, l.params = slices.Clone(args), params
	return nil
}

// Close implements GraphExec.
func (x *cudaGraphExec) Close() error {
	if err := x.dev.enter("GraphExec.Close"); err != nil {
		return err
	}
	defer x.dev.leave()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return fmt.Errorf("cuda: GraphExec.Close: %w", ErrClosed)
	}
	x.closed = true
	x.dev.mu.Lock()
	delete(x.dev.execs, x)
	x.dev.mu.Unlock()
	err := x.dev.drv.graphExecDestroy(x.dev.ctx, x.h)
	return errors.Join(err, x.graph.dropExec())
}

// dropExec forgets a closed GraphExec of g.
func (g *cudaGraph) dropExec() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.execs--
	return g.release()
}

// alive fails for an unloaded module.
func (m *cudaModule) alive() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return fmt.Errorf("module %s: %w", m.name, ErrClosed)
	}
	return nil
}
