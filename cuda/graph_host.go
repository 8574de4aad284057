package cuda

import (
	"fmt"
	"slices"
	"sync"
)

// hostNode is one captured operation of the host backend: a kernel launch,
// whose arguments a GraphExec may replace, or any other operation, which
// replays by queueing the same call again.
type hostNode struct {
	kernel *hostKernel // a launch
	cfg    LaunchConfig
	args   []Arg
	call   func(s *hostStream) error // anything else
}

// replay queues the node's work on s again; every check runs again, so a
// buffer freed since the capture fails the launch of the graph.
func (n *hostNode) replay(s *hostStream) error {
	if n.kernel != nil {
		return s.Launch(n.kernel, n.cfg, n.args...)
	}
	return n.call(s)
}

// hostGraph is a Graph of the host backend, and the recording of a stream
// capturing into it.
type hostGraph struct {
	dev *HostDevice

	mu       sync.Mutex
	nodes    []hostNode
	launches []int  // indices in nodes of the launches, in capture order
	twins    []bool // by launch: identical to another launch (set by EndCapture)
	closed   bool
}

func (g *hostGraph) add(n hostNode) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n.kernel != nil {
		g.launches = append(g.launches, len(g.nodes))
	}
	g.nodes = append(g.nodes, n)
	return nil
}

// Launches implements Graph.
func (g *hostGraph) Launches() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.launches)
}

// Instantiate implements Graph.
func (g *hostGraph) Instantiate() (GraphExec, error) {
	if err := g.dev.check("Graph.Instantiate"); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, fmt.Errorf("cuda: Graph.Instantiate: graph: %w", ErrClosed)
	}
	x := &hostGraphExec{dev: g.dev, nodes: slices.Clone(g.nodes), launches: g.launches, twins: g.twins}
	for i := range x.nodes {
		x.nodes[i].args = slices.Clone(x.nodes[i].args)
	}
	g.dev.mu.Lock()
	defer g.dev.mu.Unlock()
	if g.dev.closed {
		return nil, fmt.Errorf("cuda: Graph.Instantiate: device: %w", ErrClosed)
	}
	g.dev.execs[x] = struct{}{}
	return x, nil
}

// Close implements Graph.
func (g *hostGraph) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("cuda: Graph.Close: %w", ErrClosed)
	}
	g.closed = true
	g.nodes = nil
	g.dev.mu.Lock()
	delete(g.dev.graphs, g)
	g.dev.mu.Unlock()
	return nil
}

// hostGraphExec is a GraphExec of the host backend.
type hostGraphExec struct {
	dev *HostDevice

	mu       sync.Mutex
	nodes    []hostNode
	launches []int
	twins    []bool
	closed   bool
}

// Launch implements GraphExec: it queues the captured operations on s
// again, in order and together (work other goroutines queue on s lands
// before or after them), or, when one fails its checks, none of them.
func (x *hostGraphExec) Launch(s Stream) error {
	x.dev.calls.launches.Add(1)
	hs, ok := s.(*hostStream)
	if !ok || hs.dev != x.dev {
		return fmt.Errorf("cuda: GraphExec.Launch: stream %v is not this device's: %w", s, ErrInvalidHandle)
	}
	if hs.capturing() != nil {
		return fmt.Errorf("cuda: GraphExec.Launch: stream %d is capturing: %w", hs.num, ErrCapture)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return fmt.Errorf("cuda: GraphExec.Launch: %w", ErrClosed)
	}
	if h := x.dev; h.cfg.virtual {
		// One call for the whole graph, as on a GPU.
		h.timeMu.Lock()
		h.hostNow += h.cfg.timing.CallOverhead
		hs.inGraph = true
		h.timeMu.Unlock()
		defer func() {
			h.timeMu.Lock()
			hs.inGraph = false
			h.timeMu.Unlock()
		}()
	}
	var ops []hostOp
	standIn := &hostStream{dev: hs.dev, num: hs.num, batch: &ops}
	for i := range x.nodes {
		if err := x.nodes[i].replay(standIn); err != nil {
			err = fmt.Errorf("cuda: GraphExec.Launch: operation %d of %d: %w", i, len(x.nodes), err)
			abandon(ops, err)
			return err
		}
	}
	return hs.submitAll(ops)
}

// SetKernelArgs implements GraphExec.
func (x *hostGraphExec) SetKernelArgs(launch int, args ...Arg) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs: %w", ErrClosed)
	}
	if launch < 0 || launch >= len(x.launches) {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs: launch %d of %d: %w", launch, len(x.launches), ErrInvalidValue)
	}
	if x.twins[launch] {
		return errTwin(launch)
	}
	n := &x.nodes[x.launches[launch]]
	if err := checkArgUpdate(n.args, args); err != nil {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs %s: %w", n.kernel.name, err)
	}
	if emu := n.kernel.emu; emu != nil {
		if err := emu.checkArgs(args); err != nil {
			return fmt.Errorf("cuda: GraphExec.SetKernelArgs %s: %w", n.kernel.name, err)
		}
	}
	if _, _, err := x.dev.bindArgs(args, nil); err != nil {
		return fmt.Errorf("cuda: GraphExec.SetKernelArgs %s: %w", n.kernel.name, err)
	}
	n.args = slices.Clone(args)
	return nil
}

// Close implements GraphExec. Launches already queued hold what they use.
func (x *hostGraphExec) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return fmt.Errorf("cuda: GraphExec.Close: %w", ErrClosed)
	}
	x.closed = true
	x.nodes = nil
	x.dev.mu.Lock()
	delete(x.dev.execs, x)
	x.dev.mu.Unlock()
	return nil
}

// capturing returns the graph s is capturing into, or nil.
func (s *hostStream) capturing() *hostGraph {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.capture
}

// BeginCapture implements Stream.
func (s *hostStream) BeginCapture() error {
	if err := s.dev.check("BeginCapture"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("cuda: BeginCapture: stream %d: %w", s.num, ErrClosed)
	}
	if s.capture != nil {
		return fmt.Errorf("cuda: BeginCapture: stream %d is capturing already: %w", s.num, ErrCapture)
	}
	s.capture = &hostGraph{dev: s.dev}
	s.dev.captures.Add(1)
	return nil
}

// EndCapture implements Stream.
func (s *hostStream) EndCapture() (Graph, error) {
	s.mu.Lock()
	g := s.capture
	s.capture = nil
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("cuda: EndCapture: stream %d: %w", s.num, ErrClosed)
	}
	if g == nil {
		return nil, fmt.Errorf("cuda: EndCapture: stream %d is not capturing: %w", s.num, ErrCapture)
	}
	s.dev.captures.Add(-1)
	// The same rule as on a GPU, though the host could tell them apart.
	g.twins = twins(len(g.launches), func(i, j int) bool {
		a, b := &g.nodes[g.launches[i]], &g.nodes[g.launches[j]]
		return a.kernel == b.kernel && a.cfg == b.cfg && sameArgs(a.args, b.args)
	})
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	if s.dev.closed {
		return nil, fmt.Errorf("cuda: EndCapture: device: %w", ErrClosed)
	}
	s.dev.graphs[g] = struct{}{}
	return g, nil
}

// captureCall records an operation other than a launch, when s captures;
// captured says whether it did.
func (s *hostStream) captureCall(call func(*hostStream) error) (captured bool, err error) {
	g := s.capturing()
	if g == nil {
		return false, nil
	}
	return true, g.add(hostNode{call: call})
}

// captureCopy records a copy between the device and host memory, when s
// captures, as captureCall does. The memory must be pinned or registered,
// at the capture and at every replay, which reads or writes it again.
func (s *hostStream) captureCopy(op string, host []byte, call func(*hostStream) error) (captured bool, err error) {
	if s.capturing() == nil {
		return false, nil
	}
	if !s.dev.led.isPinned(host) {
		return true, fmt.Errorf("cuda: %s on capturing stream %d: host memory is not pinned or registered: %w", op, s.num, ErrCapture)
	}
	return s.captureCall(func(t *hostStream) error {
		if !t.dev.led.isPinned(host) {
			return fmt.Errorf("cuda: %s: host memory of a captured copy freed or unregistered: %w", op, ErrInvalidHandle)
		}
		return call(t)
	})
}
