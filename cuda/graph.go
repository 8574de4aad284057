package cuda

import "fmt"

// Graph is work captured from a stream (Stream.BeginCapture, EndCapture):
// the copies, memsets, kernel launches and event records and waits queued
// on the stream while it captured, in their order, not run. Instantiate
// turns it into a GraphExec, which replays the whole sequence on a stream at
// the cost of one call; that is what makes a decode step of hundreds of
// launches cheap (each launch through cgo costs ~4 µs, a graph launch about
// the same for all of them).
//
// A graph refers to the buffers, kernels and events it captured, not to
// copies of them: they must stay alive while it, or a GraphExec made from
// it, may run. A captured host-to-device or device-to-host copy reads or
// writes its host memory at every replay, so that memory must be pinned or
// registered (capturing a copy from pageable memory is ErrCapture). A
// captured Record makes its event complete at each replay, and a captured
// Wait waits, at each replay, for the most recent Record of its event then
// (CU_EVENT_RECORD_EXTERNAL and CU_EVENT_WAIT_EXTERNAL on a GPU), so a
// replayed step can signal a copy stream and wait for one.
type Graph interface {
	// Launches is the number of kernel launches captured. GraphExec's
	// SetKernelArgs numbers them from 0 in the order they were queued.
	Launches() int
	// Instantiate makes an executable copy of the graph. The graph may be
	// closed afterwards; the GraphExec stays valid.
	Instantiate() (GraphExec, error)
	// Close releases the graph.
	Close() error
}

// GraphExec is an instantiated Graph, ready to be launched.
type GraphExec interface {
	// Launch queues the graph's work on s, as one operation in s's order.
	// s must not be capturing (graphs within graphs are not supported).
	Launch(s Stream) error
	// SetKernelArgs replaces the arguments of kernel launch number launch
	// (in capture order) for the launches of this GraphExec queued from now
	// on. The kernel and its shape stay; the new arguments must be as many
	// and of the same kinds as the captured ones (a pointer may become
	// another pointer, Ptr or HostPtr). A launch identical to another of
	// the capture (kernel, shape and arguments) cannot be updated
	// (ErrInvalidValue): a GPU lists a graph's nodes in no documented order,
	// and the two nodes cannot be told apart; capture such launches with an
	// argument that differs if one is to change.
	SetKernelArgs(launch int, args ...Arg) error
	// Close releases the GraphExec once its queued launches complete.
	Close() error
}

// checkArgUpdate checks that args may replace old in a captured launch.
func checkArgUpdate(old, args []Arg) error {
	if len(args) != len(old) {
		return fmt.Errorf("%d arguments for a launch captured with %d: %w", len(args), len(old), ErrInvalidValue)
	}
	for i, a := range args {
		if a.kind != old[i].kind && !(a.isPointer() && old[i].isPointer()) {
			return fmt.Errorf("argument %d is %v, captured as %v: %w", i, a.kind, old[i].kind, ErrInvalidValue)
		}
	}
	return nil
}

func (a Arg) isPointer() bool { return a.kind == argBuffer || a.kind == argHost }

// argSize is the size in bytes of the kernel parameter an argument stands
// for.
func (a Arg) argSize() int {
	switch a.kind {
	case argInt32, argUint32, argFloat32:
		return 4
	}
	return 8
}

// sameArgs reports whether two argument lists pass the same values.
func sameArgs(a, b []Arg) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.kind != y.kind || x.bits != y.bits || x.buf != y.buf || x.off != y.off || x.host.id != y.host.id {
			return false
		}
	}
	return true
}

// twins reports, for each of n captured launches, whether another is
// identical to it; same(i, j) compares two.
func twins(n int, same func(i, j int) bool) []bool {
	t := make([]bool, n)
	for i := range n {
		for j := i + 1; j < n; j++ {
			if same(i, j) {
				t[i], t[j] = true, true
			}
		}
	}
	return t
}

// errTwin is SetKernelArgs' refusal to update a launch with a twin.
func errTwin(launch int) error {
	return fmt.Errorf("cuda: GraphExec.SetKernelArgs: launch %d is identical to another launch of the capture: %w", launch, ErrInvalidValue)
}

// whileCapturing fails a call that a GPU forbids while any stream captures
// in global mode (an allocation, a free, a registration, a synchronization
// of the device), so that the host backend refuses what a GPU would.
func whileCapturing(op string, captures int32) error {
	if captures > 0 {
		return fmt.Errorf("cuda: %s: a stream is capturing: %w", op, ErrCapture)
	}
	return nil
}
