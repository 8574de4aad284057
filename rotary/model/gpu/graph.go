package gpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/model"
)

// WithGraphs replays decode steps as CUDA graphs (model.StepGrapher): the
// second one-token step of a sequence is captured, and each later one is
// launched as one graph, so that a decode step costs the host a launch and
// the read-back of its logits. It needs WithDeviceResidency (a step that
// waits for its routing cannot be captured). The step's token and position
// reach the kernels through device memory, and attention splits the whole
// cache (Attention.PosAt), in captured steps and in the steps before, so
// that a replayed step computes bit for bit what the same step would
// without the graph.
func WithGraphs() BackendOption { return func(o *backendOptions) { o.graphs = true } }

// maxGraphs is how many captured steps the backend keeps (the most recent
// sequences'), each holding the device's graph resources.
const maxGraphs = 4

// maxSeen bounds the keys the backend remembers having run once or failed
// to capture (a sequence per Generate, say).
const maxSeen = 64

// stepGraph is a captured decode step.
type stepGraph struct {
	key  model.StepKey
	exec cuda.GraphExec
	gen  uint64 // the arena's generation at the capture
	// acquires is the MoE layers the step resolves, counted again at each
	// replay (Backend.Acquires).
	acquires int64
	logits   model.Tensor // what the step computes its logits into
	// routes is the step's routing log (its copies are nodes of the graph),
	// into the log's stage as it was at generation routesGen.
	routes    []logEntry
	routesGen uint64
}

// graphs is the backend's state of WithGraphs.
type graphs struct {
	// host and dev hold the decode step's token and position (int32 each):
	// the host writes host, and every decode step starts with a copy to dev,
	// which a replay repeats.
	host cuda.HostBuffer
	dev  cuda.Buffer

	steps []stepGraph              // captured, oldest first
	seen  map[model.StepKey]uint64 // keys run once without capture: the arena generation + 1
	never map[model.StepKey]bool   // keys whose capture failed

	decoding  bool          // the step under way is a decode step (dev holds its token and position)
	capturing bool          // ... and the stream is capturing it
	key       model.StepKey // the step under way's
	acquires  int64         // Backend.Acquires when the capture began
	noCapture bool          // tests: the steps run as captured ones would, uncaptured
}

// initGraphs allocates the step's token and position.
func (b *Backend) initGraphs() error {
	if !b.opts.graphs {
		return nil
	}
	if b.res == nil {
		return errors.New("gpu: WithGraphs needs WithDeviceResidency")
	}
	g := &b.graph
	var err error
	if g.host, err = b.dev.AllocHost(8, 0); err != nil {
		return fmt.Errorf("gpu: the decode step's pinned token and position: %w", err)
	}
	if g.dev, err = b.dev.Alloc(8); err != nil {
		return fmt.Errorf("gpu: the decode step's token and position: %w", err)
	}
	g.seen, g.never = map[model.StepKey]uint64{}, map[model.StepKey]bool{}
	return nil
}

// freeGraphs releases what initGraphs and the captures allocated; the
// stream must be idle.
func (b *Backend) freeGraphs() error {
	g := &b.graph
	var errs []error
	for _, s := range g.steps {
		errs = append(errs, s.exec.Close())
	}
	g.steps = nil
	if g.host.Len() > 0 {
		errs = append(errs, b.dev.FreeHost(g.host))
		g.host = cuda.HostBuffer{}
	}
	if !g.dev.IsZero() {
		errs = append(errs, b.dev.Free(g.dev))
		g.dev = cuda.Buffer{}
	}
	return errors.Join(errs...)
}

// BeginDecode implements model.StepGrapher. Without WithGraphs it is
// BeginStep.
func (b *Backend) BeginDecode(key model.StepKey, token int32, pos int) model.Tensor {
	g := &b.graph
	if !b.opts.graphs {
		b.BeginStep()
		return nil
	}
	if i := g.find(key, b.arena.gen, b.routes.stage.gen); i >= 0 {
		// The stream is idle (the last step read its logits) unless that
		// step failed; the host may then write the token and position.
		if err := b.idleStream(); err != nil {
			b.fail(err)
			return g.steps[i].logits // the read of the logits reports it
		}
		b.err = b.lost
		if b.err != nil {
			return g.steps[i].logits
		}
		b.writeStep(token, pos)
		b.idle = false
		if err := g.steps[i].exec.Launch(b.stream); err != nil {
			b.fail(fmt.Errorf("gpu: replaying a decode step: %w", err))
			return g.steps[i].logits
		}
		b.acquires.Add(g.steps[i].acquires)
		b.routes.entries = append(b.routes.entries[:0], g.steps[i].routes...)
		return g.steps[i].logits
	}
	b.BeginStep()
	if b.err != nil {
		return nil
	}
	g.decoding, g.key = true, key
	gen := b.arena.gen
	if g.seen[key] == gen+1 && !g.never[key] && !g.noCapture {
		if err := b.stream.BeginCapture(); err != nil {
			b.fail(fmt.Errorf("gpu: capturing a decode step: %w", err))
			return nil
		}
		g.capturing, g.acquires = true, b.acquires.Load()
	} else {
		if len(g.seen) >= maxSeen {
			clear(g.seen) // sequences long gone: forgetting them only delays a capture
		}
		g.seen[key] = gen + 1
	}
	b.writeStep(token, pos)
	if err := b.stream.CopyHtoD(g.dev, 0, g.host.Bytes()); err != nil {
		b.fail(fmt.Errorf("gpu: uploading the decode step's token and position: %w", err))
	}
	return nil
}

// forget marks key as never to be captured again.
func (g *graphs) forget(key model.StepKey) {
	if len(g.never) >= maxSeen {
		clear(g.never)
	}
	g.never[key] = true
}

// writeStep writes the step's token and position to the pinned memory the
// step's first copy reads.
func (b *Backend) writeStep(token int32, pos int) {
	v := cuda.View[int32](b.graph.host.Bytes())
	v[0], v[1] = token, int32(pos)
}

// find returns the index of the captured step of key at arena generation
// gen and routing log generation routesGen, -1 if there is none.
func (g *graphs) find(key model.StepKey, gen, routesGen uint64) int {
	for i, s := range g.steps {
		if s.key == key && s.gen == gen && s.routesGen == routesGen {
			return i
		}
	}
	return -1
}

// EndDecode implements model.StepGrapher: a complete step being captured
// becomes a graph, launched at once, that keeps its logits' tensor for the
// replays; one whose capture failed (an operation failed, or tried what a
// capture forbids) is dropped unrun, and its key is not captured again; an
// incomplete one is dropped.
func (b *Backend) EndDecode(logits model.Tensor) error {
	g := &b.graph
	g.decoding = false
	if !g.capturing {
		return nil
	}
	g.capturing = false
	graph, err := b.stream.EndCapture()
	err = errors.Join(b.err, err)
	var exec cuda.GraphExec
	if err == nil && logits != nil {
		exec, err = graph.Instantiate()
	}
	if graph != nil {
		err = errors.Join(err, graph.Close())
	}
	if err == nil && logits != nil {
		err = exec.Launch(b.stream)
	}
	if err != nil || logits == nil {
		// Nothing of the step ran. A step cut short is dropped; one whose
		// capture failed runs again uncaptured (the model's part), and its
		// key is not captured again.
		b.acquires.Store(g.acquires)
		if exec != nil {
			err = errors.Join(err, exec.Close())
		}
		if err == nil {
			return nil
		}
		g.forget(g.key)
		b.err = nil
		return fmt.Errorf("gpu: capturing a decode step: %w", err)
	}
	if len(g.steps) == maxGraphs {
		// The stream runs the old graph's launches before the close
		// takes effect.
		if err := g.steps[0].exec.Close(); err != nil {
			b.fail(err)
		}
		g.steps = g.steps[1:]
	}
	routes, routesGen := b.routes.logged()
	g.steps = append(g.steps, stepGraph{key: g.key, exec: exec, gen: b.arena.gen, acquires: b.acquires.Load() - g.acquires,
		routes: routes, routesGen: routesGen, logits: logits})
	return nil
}

// idleStream waits for the stream unless it is known to be idle.
func (b *Backend) idleStream() error {
	if b.idle {
		return nil
	}
	if err := b.stream.Synchronize(context.Background()); err != nil {
		return err
	}
	b.idle = true
	return nil
}

// stepPos is the device memory holding a decode step's position when the
// step may be captured, for the kernels that read it (Attention.PosAt).
func (b *Backend) stepPos() cuda.Buffer {
	if !b.graph.decoding {
		return cuda.Buffer{}
	}
	buf, _ := b.graph.dev.Slice(4, 4)
	return buf
}

// stepToken is the device memory holding a decode step's token when the
// step may be captured.
func (b *Backend) stepToken() (cuda.Buffer, bool) {
	if !b.graph.decoding {
		return cuda.Buffer{}, false
	}
	buf, _ := b.graph.dev.Slice(0, 4)
	return buf, true
}
