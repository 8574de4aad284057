package gpu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/device"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/moe"
)

// Backend implements model.Backend on a cuda.Device: activations, the
// sequence state and the non-expert weights live in device memory, every
// operation is queued on one compute stream, and the routed experts are
// computed in place in the slot planes of a rotary.Runtime opened on the
// same device, which streams the misses on its own copy stream.
//
// Per MoE layer the host reads back the routing (the host-driven path: one
// small copy and synchronisation per layer), acquires the layer's experts
// from the runtime with the compute stream waiting for their copies, uploads
// the tokens' slot ids and queues the slot-plane MoE kernels; the experts are
// released with an event recorded after them, so a slot is not refilled
// while a kernel may still read it.
//
// A Backend serves one model.Net (its steps run one at a time) and is not
// safe for concurrent use otherwise. Close it after the runtime: the runtime
// keeps the backend's events until it closes.
type Backend struct {
	dev    cuda.Device
	rt     *rotary.Runtime
	stream cuda.Stream
	ks     *Kernels
	mk     *moe.Kernels
	opts   backendOptions

	// err is the first failure of the step, returned by every later
	// operation of it; the next BeginStep forgets it if the stream is sound
	// (a cancelled context, a bad shape), not if the stream faulted.
	err error
	// lost is why a state tensor has no memory: every later operation
	// fails with it, as the sequence that holds the tensor cannot run.
	lost error

	arena   arena
	states  []cuda.Buffer             // NewState allocations, freed by Close
	weights map[weightKey]cuda.Buffer // uploaded non-expert weights
	// Pinned host memory for read-backs and for the step's small uploads
	// (token and slot ids); uploaded is the upload bytes the step has used.
	readback, uploads staging
	uploaded          int64
	// reused are the step's buffers that one call after another reuses,
	// by use: the stream runs calls in order, so a call's scratch is dead
	// once the next call's kernels start.
	reused [numUses]cuda.Buffer
	// quantized is the input whose 8-bit activations the workspace holds
	// after a decode MatMul, until another operation runs.
	quantized Matrix
	planes    map[int]*layerMoE // by layer, made on first use

	route   routeBufs
	routing routing // the device side of the last Route

	// res decides residency on the device (WithDeviceResidency): Route
	// reads nothing back and MoE resolves the slots with its kernels.
	res *device.Resolver
	// graph is WithGraphs' captures; idle says the stream has no work
	// queued (a read-back waited for it), so a step need not wait again.
	graph graphs
	idle  bool
	// routes is model.RoutingLogger's log of the step's routing.
	routes routeLog

	// The counters are read by another goroutine's Stats while a step runs.
	acquires atomic.Int64
	wait     atomic.Int64 // nanoseconds in AcquireInto
}

// Acquires counts the MoE layers whose experts were acquired.
func (b *Backend) Acquires() int { return int(b.acquires.Load()) }

// Wait is the time the runtime took to acquire experts: its bookkeeping,
// reads into the host tier and queuing the copies (the compute stream, not
// the host, waits for the copies themselves).
func (b *Backend) Wait() time.Duration { return time.Duration(b.wait.Load()) }

// backendOptions are the settings of NewBackend.
type backendOptions struct {
	arena    int64
	onDevice bool
	graphs   bool
	routed   func(layer int, ids []int)
	calls    []moe.CallOption // of every MatMul and MoE
	// prequantized is calls and moe.Prequantized, for a MatMul whose input
	// the last one quantized.
	prequantized []moe.CallOption
}

// BackendOption configures NewBackend.
type BackendOption func(*backendOptions)

// WithFloatActivations computes every matrix product with float
// activations (moe.FloatActivations): decode too takes the prefill kernels,
// slower, but its results are those of a float reference, llama.cpp's run
// of the dequantised model, which is how tests hold the whole forward pass
// to the oracle. By default decode quantizes the activations to 8 bits, as
// llama.cpp does, but in another order of float sums than its CPU backend.
func WithFloatActivations() BackendOption {
	return func(o *backendOptions) { o.calls = []moe.CallOption{moe.FloatActivations()} }
}

// WithArenaBytes sizes the step arena's first allocation (StepBytes of the
// largest step, so that it never grows); by default it starts small and
// grows in the first steps.
func WithArenaBytes(n int64) BackendOption { return func(o *backendOptions) { o.arena = n } }

// WithRoutedHook calls fn with each MoE layer's routed experts (distinct,
// ascending) once they are acquired, before the layer's kernels are queued:
// a prefetcher's cue. fn must not keep ids.
func WithRoutedHook(fn func(layer int, ids []int)) BackendOption {
	return func(o *backendOptions) { o.routed = fn }
}

// WithDeviceResidency decides the experts' residency on the device
// (package rotary/device): the backend takes every MoE layer of the runtime
// over, which must have been opened with rotary.WithDeviceResidency. A
// decode step then waits for the device only to read its logits: Route
// leaves the expert ids on the device (Routing.IDs is nil until ReadRouting
// reads them), and MoE queues the resolve, fill and expert kernels without
// waiting. The runtime's Stats count the device's hits and misses;
// WithRoutedHook sees the routed experts only of the layers whose routing
// was read.
func WithDeviceResidency() BackendOption { return func(o *backendOptions) { o.onDevice = true } }

// weightKey identifies a weight by the memory it views.
type weightKey struct {
	data *byte
	n    int
}

// layerMoE is what a layer's MoE reuses from step to step.
type layerMoE struct {
	plane  moe.Plane
	set    rotary.Set
	slotOf []int32    // [expert]: its slot in the current set
	slots  []int32    // the slot of each routed (token, k)
	done   cuda.Event // recorded after the layer's MoE kernels
}

// routeBufs holds the last routing: on the device for MoE, on the host for
// the model.
type routeBufs struct {
	ids     []int32
	weights []float32
}

// NewBackend loads the model's kernels on dev and prepares the compute
// stream. rt must have been opened over m on dev: MoE computes on its slot
// planes. The backend's own memory (weights, state, the step arena) is
// allocated as the model asks for it.
func NewBackend(ctx context.Context, dev cuda.Device, m *experts.Model, rt *rotary.Runtime, opts ...BackendOption) (_ *Backend, err error) {
	if dev == nil || m == nil || rt == nil {
		return nil, errors.New("gpu: NewBackend needs a device, a model and a runtime")
	}
	b := &Backend{dev: dev, rt: rt, weights: map[weightKey]cuda.Buffer{}, planes: map[int]*layerMoE{}}
	for _, o := range opts {
		if o != nil {
			o(&b.opts)
		}
	}
	b.opts.prequantized = append(slices.Clone(b.opts.calls), moe.Prequantized())
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()
	types := modelTypes(m)
	if b.ks, err = Load(ctx, dev); err != nil {
		return nil, err
	}
	if b.mk, err = moe.Load(ctx, dev, moe.WithTypes(types...)); err != nil {
		return nil, err
	}
	if b.stream, err = dev.NewStream(); err != nil {
		return nil, fmt.Errorf("gpu: creating the compute stream: %w", err)
	}
	if b.opts.onDevice {
		if b.res, err = device.New(ctx, dev, rt); err != nil {
			return nil, fmt.Errorf("gpu: %w", err)
		}
	}
	if err := b.initGraphs(); err != nil {
		return nil, err
	}
	b.arena = arena{dev: dev}
	if b.opts.arena > 0 {
		if err := b.arena.grow(b.opts.arena); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// modelTypes lists the types of m's matrices that the matrix kernels read.
func modelTypes(m *experts.Model) []experts.Type {
	var ts []experts.Type
	for _, t := range m.File.Tensors() {
		if moe.Supported(t.Type) == nil && !slices.Contains(ts, t.Type) {
			ts = append(ts, t.Type)
		}
	}
	return ts
}

// ArenaBytes is the device memory the step arena holds, and the most a
// step has taken of it (StepBytes bounds that).
func (b *Backend) ArenaBytes() (held, peak int64) { return b.arena.size(), b.arena.peak }

// Stream is the compute stream: everything the backend computes is queued
// on it.
func (b *Backend) Stream() cuda.Stream { return b.stream }

// Close waits for the queued work and frees everything the backend
// allocated. Close the runtime first (see Backend).
func (b *Backend) Close() error {
	var errs []error
	if b.stream != nil {
		// A failure of the stream was reported by the operation that met
		// it (b.err): Close only waits for the stream to be done.
		if err := b.stream.Synchronize(context.Background()); b.err == nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, b.freeGraphs(), b.arena.free())
	if b.stream != nil {
		errs = append(errs, b.stream.Close())
		b.stream = nil
	}
	for _, l := range b.planes {
		if l.done != nil {
			errs = append(errs, l.done.Close())
		}
	}
	b.planes = nil
	for _, w := range b.weights {
		errs = append(errs, b.dev.Free(w))
	}
	b.weights = nil
	for _, s := range b.states {
		errs = append(errs, b.dev.Free(s))
	}
	b.states = nil
	errs = append(errs, b.readback.free(b.dev), b.uploads.free(b.dev), b.routes.stage.free(b.dev))
	if b.res != nil {
		errs = append(errs, b.res.Close())
		b.res = nil
	}
	if b.mk != nil {
		errs = append(errs, b.mk.Close())
		b.mk = nil
	}
	if b.ks != nil {
		errs = append(errs, b.ks.Close())
		b.ks = nil
	}
	return errors.Join(errs...)
}

// Drain waits for the work queued on the compute stream, so that memory its
// kernels read (the runtime's slot planes) can be freed. A failure of the
// stream that an operation already reported is not reported again.
func (b *Backend) Drain(ctx context.Context) error {
	if err := b.stream.Synchronize(ctx); b.err == nil {
		return err
	}
	return nil
}

// fail records the first error of the backend and returns the one to report.
func (b *Backend) fail(err error) error {
	if err != nil && b.err == nil {
		b.err = err
	}
	return err
}

// use is what a reused buffer of a step is for.
type use int

const (
	useScratch use = iota // the kernels' workspace: MatMul, MoE, Attend
	useRouting            // Route's ids and weights, read by the layer's MoE
	useIDs                // uploaded token or slot ids
	numUses
)

// reuse returns the step's buffer for u, of at least n bytes: the one the
// last call for u had, or a larger one from the arena.
func (b *Backend) reuse(u use, n int64) (cuda.Buffer, error) {
	if n == 0 {
		return cuda.Buffer{}, nil
	}
	if b.reused[u].Size() >= n {
		return b.reused[u].Slice(0, n)
	}
	buf, err := b.arena.take(n)
	if err != nil {
		return cuda.Buffer{}, err
	}
	b.reused[u] = buf
	return buf.Slice(0, n)
}

// tensor is the backend's model.Tensor: Rows×Cols float32 values at the
// start of Buf.
type tensor struct {
	m Matrix
}

func (t *tensor) Rows() int { return t.m.Rows }
func (t *tensor) Cols() int { return t.m.Cols }

// matrix returns the backend's view of t, which must come from this
// backend: another backend's tensor is a programming error.
func matrix(t model.Tensor) Matrix {
	gt, ok := t.(*tensor)
	if !ok {
		panic(fmt.Sprintf("gpu: tensor %T does not belong to the GPU backend", t))
	}
	return gt.m
}

// BeginStep implements model.Backend: the arena's tensors are reused. The
// work of the last step that reads them is queued on the same stream, so it
// completes before this step's writes.
func (b *Backend) BeginStep() {
	// The step reuses the upload staging memory from its start: the copies
	// of the last step must have read it. A step ends with a read-back,
	// after which the stream is known to be idle and the wait is skipped. A
	// stream that faulted keeps failing: the step fails with its error.
	if err := b.idleStream(); err != nil {
		b.fail(err)
		return
	}
	b.err = b.lost
	b.graph.decoding = false
	b.routes.reset()
	b.uploaded = 0
	b.reused = [numUses]cuda.Buffer{}
	b.quantized = Matrix{}
	if err := b.arena.reset(); err != nil {
		b.fail(err)
	}
}

// NewTensor implements model.Backend, from the step's arena.
func (b *Backend) NewTensor(rows, cols int) model.Tensor {
	buf, err := b.arena.take(4 * int64(rows) * int64(cols))
	if err != nil {
		b.fail(fmt.Errorf("gpu: a %d×%d tensor: %w", rows, cols, err))
	}
	return &tensor{Matrix{Buf: buf, Rows: rows, Cols: cols}}
}

// NewState implements model.Backend.
func (b *Backend) NewState(rows, cols int) model.Tensor {
	t := &tensor{Matrix{Rows: rows, Cols: cols}}
	n := 4 * int64(rows) * int64(cols)
	buf, err := b.dev.Alloc(max(n, 4))
	if err != nil {
		err = fmt.Errorf("gpu: a %d×%d state tensor: %w", rows, cols, err)
		if b.lost == nil {
			b.lost = err
		}
		b.fail(err)
		return t
	}
	b.states = append(b.states, buf)
	t.m.Buf = buf
	b.idle = false
	if err := b.stream.Memset(buf, 0, buf.Size(), 0); err != nil {
		b.fail(fmt.Errorf("gpu: clearing a state tensor: %w", err))
	}
	return t
}

// Zero implements model.Backend.
func (b *Backend) Zero(t model.Tensor) error {
	return b.run(func() error {
		m := matrix(t)
		return b.stream.Memset(m.Buf, 0, 4*int64(m.Len()), 0)
	})
}

// Slice implements model.Backend.
func (b *Backend) Slice(t model.Tensor, lo, hi int) model.Tensor {
	m := matrix(t)
	out := &tensor{Matrix{Rows: hi - lo, Cols: m.Cols}}
	buf, err := m.Buf.Slice(4*int64(lo)*int64(m.Cols), 4*int64(hi-lo)*int64(m.Cols))
	if err != nil {
		b.fail(fmt.Errorf("gpu: rows [%d, %d) of a %d×%d tensor: %w", lo, hi, m.Rows, m.Cols, err))
	}
	out.m.Buf = buf
	return out
}

// Read implements model.Backend: it waits for the stream.
func (b *Backend) Read(dst []float32, t model.Tensor) error {
	if b.err != nil {
		return b.err
	}
	m := matrix(t)
	n := min(len(dst), m.Len())
	host, err := b.readback.get(b, 0, 4*int64(n))
	if err != nil {
		return b.fail(err)
	}
	if err := b.stream.CopyDtoH(host, m.Buf, 0); err != nil {
		return b.fail(fmt.Errorf("gpu: reading a tensor back: %w", err))
	}
	if err := b.stream.Synchronize(context.Background()); err != nil {
		return b.fail(fmt.Errorf("gpu: reading a tensor back: %w", err))
	}
	b.idle = true
	copy(dst[:n], cuda.View[float32](host))
	return nil
}

// staging is pinned host memory that grows as needed.
type staging struct {
	buf cuda.HostBuffer
	gen uint64 // counts the reallocations: graphs captured before copy to the old memory
}

// get returns n bytes of the memory from byte off. Growing it waits for the
// stream first, since queued copies may still read the old memory.
func (s *staging) get(b *Backend, off, n int64) ([]byte, error) {
	if int64(s.buf.Len()) < off+n {
		if err := b.stream.Synchronize(context.Background()); err != nil {
			return nil, err
		}
		size := max(2*int64(s.buf.Len()), off+n, 64<<10)
		h, err := b.dev.AllocHost(size, 0)
		if err != nil {
			return nil, fmt.Errorf("gpu: %d bytes of pinned staging memory: %w", size, err)
		}
		copy(h.Bytes(), s.buf.Bytes())
		if err := s.free(b.dev); err != nil {
			return nil, errors.Join(err, b.dev.FreeHost(h))
		}
		s.buf = h
		s.gen++
	}
	return s.buf.Bytes()[off : off+n : off+n], nil
}

func (s *staging) free(dev cuda.Device) error {
	if s.buf.Len() == 0 {
		return nil
	}
	err := dev.FreeHost(s.buf)
	s.buf = cuda.HostBuffer{}
	return err
}

// upload returns w in device memory, copying it on first use.
func (b *Backend) upload(w model.Weight) (cuda.Buffer, error) {
	if len(w.Data) == 0 {
		return cuda.Buffer{}, fmt.Errorf("gpu: weight %q has no data", w.Name)
	}
	key := weightKey{unsafe.SliceData(w.Data), len(w.Data)}
	if buf, ok := b.weights[key]; ok {
		return buf, nil
	}
	buf, err := b.dev.Alloc(int64(len(w.Data)))
	if err != nil {
		return cuda.Buffer{}, fmt.Errorf("gpu: weight %q (%d bytes): %w", w.Name, len(w.Data), err)
	}
	// The data is the mapped model file (or memory the model keeps): it
	// outlives the copy.
	b.idle = false
	if err := b.stream.CopyHtoD(buf, 0, w.Data); err != nil {
		return cuda.Buffer{}, errors.Join(fmt.Errorf("gpu: uploading weight %q: %w", w.Name, err), b.dev.Free(buf))
	}
	b.weights[key] = buf
	return buf, nil
}

// Upload copies the weights to the device now rather than at their first
// use (model.Net.Weights lists a model's), calling progress with the bytes
// done and in all after each, and waits for the copies.
func (b *Backend) Upload(ctx context.Context, ws []model.Weight, progress func(done, total int64)) error {
	var total, done int64
	for _, w := range ws {
		total += int64(len(w.Data))
	}
	for _, w := range ws {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := b.upload(w); err != nil {
			return b.fail(err)
		}
		done += int64(len(w.Data))
		if progress != nil {
			progress(done, total)
		}
	}
	return b.fail(b.stream.Synchronize(ctx))
}

// floats is an F32 weight of n values in device memory.
func (b *Backend) floats(w model.Weight, n int) (cuda.Buffer, error) {
	if w.Type != experts.TypeF32 || w.Rows*w.Cols != n {
		return cuda.Buffer{}, fmt.Errorf("gpu: %s: want %d F32 values, have %d×%d of %v", w.Name, n, w.Rows, w.Cols, w.Type)
	}
	return b.upload(w)
}

// weightMatrix is w in device memory for the matrix kernels.
func (b *Backend) weightMatrix(w model.Weight) (moe.Matrix, error) {
	buf, err := b.upload(w)
	if err != nil {
		return moe.Matrix{}, err
	}
	return moe.Matrix{Buf: buf, Type: w.Type, Rows: w.Rows, Cols: w.Cols}, nil
}

// run reports the sticky error, or runs op and makes its failure sticky.
func (b *Backend) run(op func() error) error {
	if b.err != nil {
		return b.err
	}
	b.idle = false
	b.quantized = Matrix{} // the operation may write the input, or the workspace
	return b.fail(op())
}

// Embed implements model.Backend.
func (b *Backend) Embed(dst model.Tensor, table model.Weight, tokens []int32) error {
	return b.run(func() error {
		tm, err := b.weightMatrix(table)
		if err != nil {
			return err
		}
		ids, ok := b.stepToken()
		if !ok || len(tokens) != 1 {
			if ids, err = b.uploadInts(tokens); err != nil {
				return err
			}
		}
		return b.mk.Embed(b.stream, matrix(dst).Buf, tm, ids, len(tokens))
	})
}

// uploadInts copies vals to the step's buffer of ids (uploadTo).
func (b *Backend) uploadInts(vals []int32) (cuda.Buffer, error) {
	buf, err := b.reuse(useIDs, 4*int64(len(vals)))
	if err != nil {
		return cuda.Buffer{}, err
	}
	return buf, b.uploadTo(buf, vals)
}

// uploadTo copies vals to dst through the pinned staging memory, in stream
// order after the kernels that read the last upload. Every upload of a
// step takes its own staging bytes, so a queued copy never reads bytes a
// later one wrote.
func (b *Backend) uploadTo(dst cuda.Buffer, vals []int32) error {
	n := 4 * int64(len(vals))
	host, err := b.uploads.get(b, b.uploaded, n)
	if err != nil {
		return err
	}
	b.uploaded += n
	copy(host, cuda.Bytes(vals))
	return b.stream.CopyHtoD(dst, 0, host)
}

// MatMul implements model.Backend.
// The matrices that share an input (a layer's queries, keys and values;
// the router and the shared expert) are multiplied one after the other, so
// a decode quantizes their input once: the workspace keeps it for the next
// MatMul of the same input.
func (b *Backend) MatMul(dst, x model.Tensor, w model.Weight) error {
	last := b.quantized
	return b.run(func() error {
		wm, err := b.weightMatrix(w)
		if err != nil {
			return err
		}
		xm := matrix(x)
		opts := b.opts.calls
		quantizes := moe.Quantizes(xm.Rows, wm, opts...)
		if quantizes && last == xm {
			opts = b.opts.prequantized
		}
		scratch, err := b.reuse(useScratch, moe.MatMulScratch(xm.Rows, wm, opts...))
		if err != nil {
			return err
		}
		if err := b.mk.MatMul(b.stream, matrix(dst).Buf, xm.Buf, xm.Rows, wm, scratch, opts...); err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		if quantizes {
			b.quantized = xm
		} else {
			b.quantized = last // a product that does not quantize leaves the workspace alone
		}
		return nil
	})
}

// RMSNorm implements model.Backend.
func (b *Backend) RMSNorm(dst, x model.Tensor, w model.Weight, eps float32) error {
	return b.run(func() error {
		xm := matrix(x)
		wb, err := b.floats(w, xm.Cols)
		if err != nil {
			return err
		}
		return b.ks.RMSNorm(b.stream, matrix(dst), xm, wb, eps)
	})
}

// Add implements model.Backend.
func (b *Backend) Add(dst, x, y model.Tensor) error {
	return b.run(func() error { return b.ks.Add(b.stream, matrix(dst), matrix(x), matrix(y)) })
}

// SwiGLU implements model.Backend.
func (b *Backend) SwiGLU(dst, gate, up model.Tensor) error {
	return b.run(func() error { return b.ks.SwiGLU(b.stream, matrix(dst), matrix(gate), matrix(up)) })
}

// AddGated implements model.Backend.
func (b *Backend) AddGated(dst, x, y, gate model.Tensor) error {
	return b.run(func() error {
		return b.ks.AddGated(b.stream, matrix(dst), matrix(x), matrix(y), matrix(gate))
	})
}

// AddNorm implements model.Backend, in one launch.
func (b *Backend) AddNorm(sum, dst model.Tensor, r model.Residual, w model.Weight, eps float32) error {
	return b.run(func() error {
		res := Residual{A: matrix(r.A), B: matrix(r.B)}
		if r.Gate != nil {
			res.Gate = matrix(r.Gate)
		}
		if r.C != nil {
			res.C = matrix(r.C)
		}
		wb, err := b.floats(w, res.A.Cols)
		if err != nil {
			return err
		}
		return b.ks.AddNorm(b.stream, matrix(sum), matrix(dst), res, wb, eps)
	})
}

// Attend implements model.Backend: the queries' and keys' norm and rope
// and the keys' and values' store into the cache take one launch (NormRope),
// attention one or two. The norms are required: every model this backend
// runs has them, and the kernel stores the cache only behind them.
func (b *Backend) Attend(dst model.Tensor, a model.Attention) error {
	return b.run(func() error {
		if len(a.QNorm.Data) == 0 || len(a.KNorm.Data) == 0 {
			return fmt.Errorf("gpu: Attend without query and key norms: %w", ErrShape)
		}
		dim := a.QHeads.Dim
		qw, err := b.floats(a.QNorm, dim)
		if err != nil {
			return err
		}
		kw, err := b.floats(a.KNorm, dim)
		if err != nil {
			return err
		}
		cache := KVCache{K: matrix(a.Cache.K), V: matrix(a.Cache.V)}
		err = b.ks.NormRope(b.stream, QKNorm{
			Q: matrix(a.Q), QHeads: a.QHeads, QWeight: qw,
			K: matrix(a.K), KHeads: model.Heads{Count: a.KVHeads, Dim: dim, Stride: dim}, KWeight: kw,
			V: matrix(a.V), Cache: cache, Eps: a.Eps, Rope: a.Rope, Pos: a.Pos, PosAt: b.stepPos(),
		})
		if err != nil {
			return err
		}
		ga := Attention{
			Q: matrix(a.Q), QHeads: a.QHeads, KVHeads: a.KVHeads,
			Cache: cache, Pos: a.Pos, Scale: a.Scale, PosAt: b.stepPos(),
		}
		if a.Gate != nil {
			ga.Gate, ga.GateHeads = matrix(a.Gate), a.GateHeads
		}
		ws, err := b.reuse(useScratch, ga.WorkspaceBytes())
		if err != nil {
			return err
		}
		ga.Workspace = ws
		return b.ks.Attend(b.stream, matrix(dst), ga)
	})
}

// ConvSiLU implements model.Backend.
func (b *Backend) ConvSiLU(dst, x, state model.Tensor, kernel model.Weight) error {
	return b.run(func() error {
		kb, err := b.floats(kernel, kernel.Rows*kernel.Cols)
		if err != nil {
			return err
		}
		km := Matrix{Buf: kb, Rows: kernel.Rows, Cols: kernel.Cols}
		return b.ks.ConvSiLU(b.stream, matrix(dst), matrix(x), matrix(state), km)
	})
}

// DeltaNet implements model.Backend.
func (b *Backend) DeltaNet(dst model.Tensor, d model.DeltaNet) error {
	return b.run(func() error {
		dt, err := b.floats(d.DTBias, d.VHeads)
		if err != nil {
			return err
		}
		a, err := b.floats(d.A, d.VHeads)
		if err != nil {
			return err
		}
		return b.ks.DeltaNet(b.stream, matrix(dst), DeltaNet{
			QKV: matrix(d.QKV), Alpha: matrix(d.Alpha), Beta: matrix(d.Beta),
			DTBias: dt, A: a, State: matrix(d.State),
			KHeads: d.KHeads, VHeads: d.VHeads, HeadDim: d.HeadDim, Eps: d.Eps,
		})
	})
}

// GatedRMSNorm implements model.Backend.
func (b *Backend) GatedRMSNorm(dst, x, z model.Tensor, w model.Weight, eps float32) error {
	return b.run(func() error {
		n := w.Rows * w.Cols
		wb, err := b.floats(w, n)
		if err != nil {
			return err
		}
		return b.ks.GatedRMSNorm(b.stream, matrix(dst), matrix(x), matrix(z), wb, n, eps)
	})
}

// routing is the backend's tensor of a Routing: K ids (int32) and K weights
// (float32) per token in device memory.
type routing struct {
	logged       int64       // routeLog: the offset of its copy in the log, -1 if none
	both         cuda.Buffer // ids, then weights
	ids, weights cuda.Buffer
	rows, k      int
	// read is what ReadRouting read of ids: MoE uploads ids the model has
	// changed since (a replay).
	read []int32
}

func (r *routing) Rows() int { return r.rows }
func (r *routing) Cols() int { return r.k }

// Route implements model.Backend: the routing is computed on the device and
// read back (one copy and synchronisation) for the host to acquire the
// experts with; under WithDeviceResidency it stays on the device, and
// Routing.IDs and Weights are nil (ReadRouting reads them).
func (b *Backend) Route(logits model.Tensor, k int, normalize bool) (model.Routing, error) {
	var out model.Routing
	err := b.run(func() error {
		lm := matrix(logits)
		n := int64(lm.Rows) * int64(k)
		dev, err := b.reuse(useRouting, 8*n)
		if err != nil {
			return err
		}
		rt := &b.routing
		*rt = routing{logged: -1, both: dev, rows: lm.Rows, k: k, read: rt.read[:0]}
		if rt.ids, err = dev.Slice(0, 4*n); err != nil {
			return err
		}
		if rt.weights, err = dev.Slice(4*n, 4*n); err != nil {
			return err
		}
		if err := b.ks.Route(b.stream, Routing{IDs: rt.ids, Weights: rt.weights, K: k, Normalize: normalize}, lm); err != nil {
			return err
		}
		out = model.Routing{K: k, Tensor: rt}
		if b.res != nil {
			return b.routes.copy(b, rt)
		}
		return b.readRouting(&out)
	})
	return out, err
}

// ReadRouting implements model.RoutingReader: it reads the expert ids and
// weights Route left on the device into r (one copy and synchronisation).
func (b *Backend) ReadRouting(r *model.Routing) error {
	return b.run(func() error { return b.readRouting(r) })
}

func (b *Backend) readRouting(r *model.Routing) error {
	rt, ok := r.Tensor.(*routing)
	if !ok {
		return errors.New("gpu: ReadRouting of a routing this backend's Route did not make")
	}
	n := int64(rt.rows) * int64(rt.k)
	host, err := b.readback.get(b, 0, 8*n)
	if err != nil {
		return err
	}
	if err := b.stream.CopyDtoH(host, rt.both, 0); err != nil {
		return fmt.Errorf("gpu: reading the routing back: %w", err)
	}
	if err := b.stream.Synchronize(context.Background()); err != nil {
		return fmt.Errorf("gpu: reading the routing back: %w", err)
	}
	route := &b.route
	route.ids = append(route.ids[:0], cuda.View[int32](host[:4*n])...)
	route.weights = append(route.weights[:0], cuda.View[float32](host[4*n:])...)
	rt.read = append(rt.read[:0], route.ids...)
	r.IDs, r.Weights = route.ids, route.weights
	return nil
}

// MoE implements model.Backend: the layer's routed experts are acquired from
// the runtime (the compute stream waits for the copies of the misses),
// computed in their slots, and released behind an event.
func (b *Backend) MoE(ctx context.Context, dst, x model.Tensor, layer int, r model.Routing) error {
	return b.run(func() error {
		rt, ok := r.Tensor.(*routing)
		if !ok {
			return fmt.Errorf("gpu: MoE of layer %d: the routing was not made by this backend's Route", layer)
		}
		l, err := b.layer(layer)
		if err != nil {
			return err
		}
		if b.res != nil {
			return b.moeOnDevice(l, layer, matrix(dst), matrix(x), r, rt)
		}
		ids := model.RoutedExperts(r.IDs)
		start := time.Now()
		if err := b.rt.AcquireInto(ctx, layer, ids, b.stream, &l.set); err != nil {
			return fmt.Errorf("acquiring %d experts: %w", len(ids), err)
		}
		b.wait.Add(int64(time.Since(start)))
		b.acquires.Add(1)
		if b.opts.routed != nil {
			b.opts.routed(layer, ids)
		}
		err = b.moe(l, matrix(dst), matrix(x), r, rt)
		if err == nil {
			err = b.stream.Record(l.done)
		}
		ev := l.done
		if err != nil {
			// The kernels may not have been queued: wait for whatever was,
			// then give the slots back unguarded.
			ev = nil
			err = errors.Join(err, b.stream.Synchronize(context.Background()))
		}
		return errors.Join(err, b.rt.Release(&l.set, ev))
	})
}

// moeOnDevice queues the layer's resolve and fill kernels, then the
// slot-plane kernels on the slots they resolved. Ids the model changed
// after reading them (a replay) are uploaded first.
func (b *Backend) moeOnDevice(l *layerMoE, layer int, dst, x Matrix, r model.Routing, rt *routing) error {
	n := rt.rows * rt.k
	if r.IDs != nil && !slices.Equal(r.IDs, rt.read) {
		if err := b.uploadTo(rt.ids, r.IDs); err != nil {
			return fmt.Errorf("gpu: uploading the replayed routing: %w", err)
		}
	}
	if r.IDs != nil && b.opts.routed != nil {
		b.opts.routed(layer, model.RoutedExperts(r.IDs))
	}
	slots, err := b.reuse(useIDs, 4*int64(n))
	if err != nil {
		return err
	}
	if err := b.res.Resolve(b.stream, layer, rt.ids, n, slots); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	b.acquires.Add(1)
	b.routes.routed(layer, rt)
	scratch, err := b.reuse(useScratch, moe.MoEScratch(x.Rows, rt.k, l.plane, b.opts.calls...))
	if err != nil {
		return err
	}
	return b.mk.MoE(b.stream, dst.Buf, x.Buf, x.Rows, rt.k, slots, rt.weights, l.plane, scratch, b.opts.calls...)
}

// moe queues the slot-plane kernels for the acquired set of l.
func (b *Backend) moe(l *layerMoE, dst, x Matrix, r model.Routing, rt *routing) error {
	for _, v := range l.set.Experts {
		l.slotOf[v.Expert] = int32(v.Slot)
	}
	// Every routed id was acquired (RoutedExperts lists them all), so each
	// reads a slot written just now.
	l.slots = l.slots[:0]
	for _, id := range r.IDs {
		l.slots = append(l.slots, l.slotOf[id])
	}
	sb, err := b.uploadInts(l.slots)
	if err != nil {
		return err
	}
	scratch, err := b.reuse(useScratch, moe.MoEScratch(x.Rows, r.K, l.plane, b.opts.calls...))
	if err != nil {
		return err
	}
	return b.mk.MoE(b.stream, dst.Buf, x.Buf, x.Rows, r.K, sb, rt.weights, l.plane, scratch, b.opts.calls...)
}

// layer returns layer il's MoE state, describing its plane on first use.
func (b *Backend) layer(il int) (*layerMoE, error) {
	if l, ok := b.planes[il]; ok {
		return l, nil
	}
	rp, err := b.rt.Plane(il)
	if err != nil {
		return nil, err
	}
	p, err := moe.PlaneOf(rp)
	if err != nil {
		return nil, err
	}
	ev, err := b.dev.NewEvent(cuda.EventDisableTiming)
	if err != nil {
		return nil, fmt.Errorf("gpu: layer %d's MoE event: %w", il, err)
	}
	experts := 0
	for _, lp := range b.rt.Plan().Layers {
		if lp.Layer == il {
			experts = lp.Experts
		}
	}
	l := &layerMoE{plane: p, slotOf: make([]int32, experts), done: ev}
	b.planes[il] = l
	return l, nil
}
