package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/device"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
	"github.com/rotary-moe/rotary/rotary/model/gpu"
	"github.com/rotary-moe/rotary/rotary/model/tokenizer"
)

// Engine is a model ready to run: its forward pass on the CPU, its experts
// rotated by a rotary Runtime on a host device that emulates a card of the
// VRAM budget; or, WithDevice, its forward pass and its experts on a GPU.
type Engine struct {
	experts *experts.Model
	id      profile.ModelID
	dev     cuda.Device
	ownsDev bool         // the CPU path's host device: Close closes it
	cpu     *cpu.Backend // nil on a GPU
	gpu     *gpu.Backend // nil on the CPU
	rt      *rotary.Runtime
	src     *Source // the CPU backend's experts
	model   *model.Net
	vram    int64 // the budget planned in
	free    int64 // the device's free memory at New, WithDevice
	tok     *tokenizer.Tokenizer
	batch   int
	reserve int64

	positions int  // the sequence length Generate uses
	ownsModel bool // Open opened experts: Close closes it
	residency Residency

	// idle are sequences Generate has finished with, reused by the next
	// ones: a sequence's state is device memory that the backend frees only
	// at Close, and a GPU's captured decode steps are a sequence's.
	statesMu sync.Mutex
	idle     []*model.State
}

// Option configures New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	vram, host  int64
	hostSet     bool
	positions   int
	threads     int
	hot         *profile.Profile
	hotSet      bool
	pinFraction float64
	log         *slog.Logger
	modelOpts   []model.Option
	prefetch    func(*rotary.Runtime) (Prefetcher, error)
	dev         cuda.Device
	residency   Residency
}

// DefaultVRAM is the VRAM budget without WithVRAM: a 16 GiB card.
const DefaultVRAM = 16 << 30

// WithVRAM sets the device memory budget: the host device's capacity, and
// what rotary plans the experts' slots in after the model's non-expert
// weights and the sequence state (default DefaultVRAM).
func WithVRAM(bytes int64) Option { return optionFunc(func(c *config) { c.vram = bytes }) }

// WithHostBudget sets rotary's pinned host budget (rotary.WithHostBudget);
// the default is unlimited: the model file's mapping serves every miss.
func WithHostBudget(bytes int64) Option {
	return optionFunc(func(c *config) { c.host, c.hostSet = bytes, true })
}

// WithPositions sets how many positions a sequence holds at most, for the
// state the VRAM budget reserves (default 4096, at most the model's context).
func WithPositions(n int) Option { return optionFunc(func(c *config) { c.positions = n }) }

// WithThreads sets the CPU backend's goroutines (default, and 0: one per
// CPU).
func WithThreads(n int) Option { return optionFunc(func(c *config) { c.threads = n }) }

// WithHotProfile pins the hot set of a router profile of this model in VRAM:
// the experts with the most expected hits (profile.SelectHotSet, over all
// layers) in fraction of the experts' VRAM, at most what leaves every layer
// its top-k dynamic slots.
func WithHotProfile(p *profile.Profile, fraction float64) Option {
	return optionFunc(func(c *config) { c.hot, c.pinFraction, c.hotSet = p, fraction, true })
}

// WithLogger sets the logger of the runtime and the device (default: none).
func WithLogger(log *slog.Logger) Option { return optionFunc(func(c *config) { c.log = log }) }

// Prefetcher moves experts a later layer is likely to use while this one
// computes; package prefetch's Prefetcher is one. Routed is told each
// layer's routed experts once they are resident, before the layer computes
// (hidden is nil: the host-driven path does not hand out hidden states). It
// must not block on the copies it queues, and it reports its own failures
// (a prefetcher that fails turns itself off: generation goes on).
type Prefetcher interface {
	Routed(layer int, ids []int, hidden []float32)
}

// WithPrefetch makes a Prefetcher for the engine's runtime when the engine
// opens (nil: none, the default); an error from newPrefetcher fails New.
func WithPrefetch(newPrefetcher func(*rotary.Runtime) (Prefetcher, error)) Option {
	return optionFunc(func(c *config) { c.prefetch = newPrefetcher })
}

// WithDevice runs the forward pass on dev with the GPU backend
// (rotary/model/gpu), the experts rotated by rotary on the same device: a
// card (cuda.Open), or the host device (cuda.NewHost), whose emulator runs
// the same CUDA C on the CPU. The VRAM budget is the smaller of WithVRAM and
// the device's free memory. The engine does not close dev.
func WithDevice(dev cuda.Device) Option { return optionFunc(func(c *config) { c.dev = dev }) }

// Residency is where an engine on a device decides which experts its slots
// hold.
type Residency int

const (
	// ResidencyHost decides on the host (rotary's Acquire and Release):
	// each MoE layer reads its routing back. The default, and the only
	// residency of the CPU engine.
	ResidencyHost Residency = iota
	// ResidencyDevice decides on the device (package rotary/device): a
	// decode step waits for the device once, for its logits, and from a
	// sequence's third token on it is one CUDA graph (gpu.WithGraphs). It
	// needs the host budget to register the model file (rotary.HostMapped)
	// and no prefetcher.
	ResidencyDevice
)

func (r Residency) String() string {
	if r == ResidencyDevice {
		return "device"
	}
	return "host"
}

// ParseResidency reads "host" or "device".
func ParseResidency(s string) (Residency, error) {
	switch s {
	case "host":
		return ResidencyHost, nil
	case "device":
		return ResidencyDevice, nil
	}
	return 0, fmt.Errorf("engine: residency %q is neither host nor device", s)
}

// WithResidency sets where an engine on a device (WithDevice) decides
// residency (default ResidencyHost).
func WithResidency(r Residency) Option { return optionFunc(func(c *config) { c.residency = r }) }

// WithModelOptions adds options to model.New, such as a routing hook.
func WithModelOptions(opts ...model.Option) Option {
	return optionFunc(func(c *config) { c.modelOpts = append(c.modelOpts, opts...) })
}

// New opens an Engine over m, which must stay open until the Engine is
// closed. A budget too small for the model fails with an error matching
// rotary.ErrBudget; a model the forward pass does not run, with one matching
// model.ErrUnsupportedArch; an option out of its range (WithVRAM,
// WithPositions not positive, WithThreads or WithHostBudget negative,
// WithHotProfile of no profile) with an "engine:" error naming it; a
// WithHotProfile fraction outside (0, 1] with one matching rotary.ErrInvalid.
func New(ctx context.Context, m *experts.Model, opts ...Option) (_ *Engine, err error) {
	c := config{vram: DefaultVRAM, positions: 4096}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.vram <= 0 {
		return nil, fmt.Errorf("engine: WithVRAM(%d) is not positive", c.vram)
	}
	if c.positions <= 0 {
		return nil, fmt.Errorf("engine: WithPositions(%d) is not positive", c.positions)
	}
	if c.hostSet && c.host < 0 {
		return nil, fmt.Errorf("engine: WithHostBudget(%d) is negative", c.host)
	}
	if c.threads < 0 {
		return nil, fmt.Errorf("engine: WithThreads(%d) is negative", c.threads)
	}
	if c.hotSet && c.hot == nil {
		return nil, errors.New("engine: WithHotProfile(nil)")
	}
	switch {
	case c.residency != ResidencyHost && c.residency != ResidencyDevice:
		return nil, fmt.Errorf("engine: WithResidency(%d) is neither host nor device", c.residency)
	case c.residency == ResidencyDevice && c.dev == nil:
		return nil, errors.New("engine: WithResidency(ResidencyDevice) needs a device (WithDevice)")
	case c.residency == ResidencyDevice && c.prefetch != nil:
		return nil, errors.New("engine: a prefetcher needs ResidencyHost: on the device, residency is decided by the resolve kernel")
	}
	positions := min(c.positions, m.Params.ContextLength)
	e := &Engine{experts: m, id: ModelID(m), positions: positions, reserve: ReserveBytes(m.Params, positions, c.dev != nil), vram: c.vram, residency: c.residency}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if c.dev != nil {
		free, _, err := c.dev.MemInfo()
		if err != nil {
			return nil, fmt.Errorf("engine: the device's free memory: %w", err)
		}
		e.free, e.vram = free, min(c.vram, free)
	}

	ropts := []rotary.Option{rotary.WithVRAM(e.vram), rotary.WithReserve(e.reserve)}
	if c.hostSet {
		ropts = append(ropts, rotary.WithHostBudget(c.host))
	}
	if c.hotSet {
		// rotary checks the profile's shape; the tensor hash says it is
		// this very model.
		if err := c.hot.Check(e.id); err != nil {
			return nil, fmt.Errorf("engine: hot profile: %w", err)
		}
		ropts = append(ropts, rotary.WithHotProfile(c.hot, c.pinFraction))
	}

	// Plan first, once: the model's micro-batch depends on the slots, and the
	// runtime follows the same plan.
	plan, err := rotary.NewPlan(m, ropts...)
	if err != nil {
		if c.dev != nil && errors.Is(err, rotary.ErrBudget) {
			err = fmt.Errorf("%w (%s free on the device, budget %s)", err, rotary.FormatSize(e.free), rotary.FormatSize(e.vram))
		}
		return nil, err
	}
	e.batch = MaxBatch(plan)
	if c.dev != nil && (e.batch == 0 || e.batch > defaultGPUBatch) {
		e.batch = defaultGPUBatch // what the activations reserve is for
	}
	mopts := slices.Clone(c.modelOpts)
	if e.batch > 0 {
		mopts = append(mopts, model.WithMaxBatch(e.batch))
	}
	if c.dev != nil {
		err = e.openGPU(ctx, m, c, plan, mopts)
	} else {
		err = e.openCPU(ctx, m, c, plan, mopts)
	}
	if err != nil {
		return nil, err
	}
	if e.tok, err = tokenizer.FromGGUF(m.File); err != nil {
		return nil, err
	}
	return e, nil
}

// defaultGPUBatch is the GPU backend's micro-batch: prefill runs in
// batches of at most this many tokens, whose activations the VRAM budget
// reserves.
const defaultGPUBatch = 512

// openCPU runs the forward pass on the CPU, the experts in a host device of
// the VRAM budget's capacity.
func (e *Engine) openCPU(ctx context.Context, m *experts.Model, c config, plan *rotary.Plan, mopts []model.Option) (err error) {
	src := &lateSource{}
	e.cpu = cpu.New(c.threads, cpu.WithExperts(src))
	if e.model, err = model.New(m, e.cpu, mopts...); err != nil {
		return err
	}
	dev, err := cuda.NewHost(cuda.WithCapacity(c.vram), cuda.WithLogger(c.log))
	if err != nil {
		return err
	}
	e.dev, e.ownsDev = dev, true
	if e.rt, err = rotary.Open(ctx, m, e.dev, rotary.WithPlan(plan), rotary.WithLogger(c.log)); err != nil {
		return err
	}
	if e.src, err = NewSource(e.rt, dev); err != nil {
		return err
	}
	if c.prefetch != nil {
		if e.src.prefetch, err = c.prefetch(e.rt); err != nil {
			return fmt.Errorf("engine: WithPrefetch: %w", err)
		}
	}
	src.Source = e.src
	return nil
}

// openGPU runs the forward pass and the experts on c.dev.
func (e *Engine) openGPU(ctx context.Context, m *experts.Model, c config, plan *rotary.Plan, mopts []model.Option) (err error) {
	e.dev = c.dev
	ropts := []rotary.Option{rotary.WithPlan(plan), rotary.WithLogger(c.log)}
	gopts := []gpu.BackendOption{gpu.WithArenaBytes(gpu.StepBytes(m.Params, e.batch, e.positions))}
	if c.residency == ResidencyDevice {
		ropts = append(ropts, rotary.WithDeviceResidency())
		gopts = append(gopts, gpu.WithDeviceResidency(), gpu.WithGraphs())
	}
	if e.rt, err = rotary.Open(ctx, m, e.dev, ropts...); err != nil {
		return err
	}
	if c.prefetch != nil {
		pf, err := c.prefetch(e.rt)
		if err != nil {
			return fmt.Errorf("engine: WithPrefetch: %w", err)
		}
		gopts = append(gopts, gpu.WithRoutedHook(func(layer int, ids []int) { pf.Routed(layer, ids, nil) }))
	}
	if e.gpu, err = gpu.NewBackend(ctx, e.dev, m, e.rt, gopts...); err != nil {
		return err
	}
	e.model, err = model.New(m, e.gpu, mopts...)
	return err
}

// ReserveBytes is the VRAM New sets aside besides the weights for sequences
// of positions tokens: their state (StateBytes) and, on a device
// (WithDevice), the activations of a micro-batch (gpu.StepBytes) and the
// residency tables of ResidencyDevice (device.TableBytes, a few hundred KiB).
func ReserveBytes(h experts.HParams, positions int, onDevice bool) int64 {
	n := StateBytes(h, positions)
	if onDevice {
		n += gpu.StepBytes(h, defaultGPUBatch, positions) + device.TableBytes(h)
	}
	return n
}

// lateSource lets model.New check the model before the runtime exists.
type lateSource struct{ *Source }

// StateBytes is the memory of one sequence of positions tokens as the
// forward pass keeps it: the key and value caches of the attention layers
// and the convolution and recurrent state of the Gated DeltaNet layers, in
// float32. On a GPU it lives in VRAM next to the experts.
func StateBytes(h experts.HParams, positions int) int64 {
	var n int64
	for l := range h.NumLayers - h.NumNextNLayers {
		if h.IsFullAttention(l) {
			n += 2 * int64(positions) * int64(h.NumKVHeads*h.KeyDim)
			continue
		}
		headDim, kHeads, vHeads := h.SSMStateSize, h.SSMGroupCount, h.SSMTimeStepRank
		channels := (2*kHeads + vHeads) * headDim
		n += int64(max(h.SSMConvKernel-1, 0)*channels) + int64(vHeads*headDim*headDim)
	}
	return 4 * n
}

// takeState returns an empty sequence for Generate: an idle one, reset, or
// a new one.
func (e *Engine) takeState() (*model.State, error) {
	e.statesMu.Lock()
	n := len(e.idle)
	if n == 0 {
		e.statesMu.Unlock()
		return e.model.NewState(e.positions), nil
	}
	s := e.idle[n-1]
	e.idle = e.idle[:n-1]
	e.statesMu.Unlock()
	if err := s.Reset(); err != nil {
		return nil, fmt.Errorf("engine: clearing a sequence: %w", err)
	}
	return s, nil
}

// putState makes s idle.
func (e *Engine) putState(s *model.State) {
	e.statesMu.Lock()
	e.idle = append(e.idle, s)
	e.statesMu.Unlock()
}

// Net is the forward pass.
func (e *Engine) Net() *model.Net { return e.model }

// Tokenizer is the model's tokenizer, from its GGUF vocabulary.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// Positions is the longest sequence the engine plans for (WithPositions,
// capped at the model's context length): Generate's sequences hold as many.
func (e *Engine) Positions() int { return e.positions }

// Runtime is the rotary runtime that holds the experts.
func (e *Engine) Runtime() *rotary.Runtime { return e.rt }

// HotSet is the set of pinned experts, nil without WithHotProfile.
func (e *Engine) HotSet() *profile.HotSet { return e.rt.Plan().HotSet }

// MaxBatch is the model's micro-batch (MaxBatch of the plan), 0 if it is
// not limited by the slots.
func (e *Engine) MaxBatch() int { return e.batch }

// Reserve is the VRAM set aside for the sequence state and, on a device,
// the activations (ReserveBytes).
func (e *Engine) Reserve() int64 { return e.reserve }

// Threads is the number of goroutines the forward pass computes on: 0 on a
// GPU.
func (e *Engine) Threads() int {
	if e.cpu == nil {
		return 0
	}
	return e.cpu.Threads()
}

// OnGPU reports whether the forward pass runs on a device (WithDevice).
func (e *Engine) OnGPU() bool { return e.gpu != nil }

// Residency is where the engine decides which experts its slots hold.
func (e *Engine) Residency() Residency { return e.residency }

// VRAM is the budget planned in and, WithDevice, the device's free memory
// when the engine opened (0 on the CPU path).
func (e *Engine) VRAM() (budget, free int64) { return e.vram, e.free }

// Preload reads the weights every forward step uses (the non-expert
// tensors, except an embedding table that is only gathered from) into the
// page cache and the process, then waits for the runtime's warm-up of the
// host tier (rotary.Runtime.WaitWarmup), reporting the progress of both, so
// the first tokens do not pay for the disk and a run's counts do not depend
// on how far a background warm-up had got. On a device it then uploads the
// non-expert weights (gpu.Backend.Upload), the progress's total growing by
// their size. The reads go through
// experts.File.ReadAt: a file that was truncated is an error, not a crash.
func (e *Engine) Preload(ctx context.Context, progress func(done, total int64)) error {
	f := e.experts.File
	routed := map[*experts.TensorInfo]bool{}
	for _, t := range e.experts.ExpertTensors() {
		routed[t] = true
	}
	_, hasOutput := f.Tensor("output.weight")
	var ts []*experts.TensorInfo
	var total int64
	for _, t := range f.Tensors() {
		if routed[t] || (t.Name == "token_embd.weight" && hasOutput) {
			continue
		}
		ts = append(ts, t)
		total += t.Size
	}
	warm := e.rt.Plan().Host
	if warm.Mode == rotary.HostLRU {
		total += warm.Bytes
	}
	buf := make([]byte, 4<<20)
	var done int64
	for _, t := range ts {
		for off := int64(0); off < t.Size; off += int64(len(buf)) {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), t.Size-off)
			if _, err := f.ReadAt(buf[:n], t.Offset+off); err != nil {
				return fmt.Errorf("engine: reading %s: %w", t.Name, err)
			}
			done += n
			if progress != nil {
				progress(done, total)
			}
		}
	}
	var warmProgress func(int64, int64)
	if progress != nil {
		warmProgress = func(d, _ int64) { progress(done+d, total) }
	}
	if err := e.rt.WaitWarmup(ctx, warmProgress); err != nil {
		return err
	}
	if e.gpu == nil {
		return nil
	}
	done = total
	var upload func(int64, int64)
	if progress != nil {
		upload = func(d, n int64) { progress(done+d, total+n) }
	}
	return e.gpu.Upload(ctx, e.model.Weights(), upload)
}

// Stats are the runtime's counters and the forward pass's wait for experts.
type Stats struct {
	rotary.Stats
	// Acquires counts the Source's Acquire calls (one per MoE layer and
	// forward step); Wait is the time they took until the experts were
	// resident.
	Acquires int
	Wait     time.Duration
	// Calls are the driver calls made on the device (on the CPU path, the
	// host device rotary copies on): what a step costs the host.
	Calls cuda.Calls
}

// Stats returns the counters since New.
func (e *Engine) Stats() Stats {
	if e.gpu != nil {
		return Stats{Stats: e.rt.Stats(), Acquires: e.gpu.Acquires(), Wait: e.gpu.Wait(), Calls: e.dev.Calls()}
	}
	return Stats{Stats: e.rt.Stats(), Acquires: e.src.Acquires(), Wait: e.src.Wait(), Calls: e.dev.Calls()}
}

// Close frees the runtime, the device and the backend; the model file is the
// caller's, unless Open opened it.
func (e *Engine) Close() error {
	var errs []error
	if e.src != nil {
		errs = append(errs, e.src.Close())
	}
	if e.gpu != nil {
		// A step that stopped early (cancelled, or failed) may have left
		// kernels queued that read the runtime's slot planes.
		errs = append(errs, e.gpu.Drain(context.Background()))
	}
	if e.rt != nil {
		errs = append(errs, e.rt.Close())
	}
	if e.gpu != nil {
		errs = append(errs, e.gpu.Close()) // after the runtime, which holds its events
	}
	if e.ownsDev {
		errs = append(errs, e.dev.Close())
	}
	if e.cpu != nil {
		errs = append(errs, e.cpu.Close())
	}
	if e.ownsModel {
		errs = append(errs, e.experts.Close())
	}
	return errors.Join(errs...)
}

// Sub returns the counts of s since an earlier snapshot old, without the
// layers' shares (rotary.Stats.Sub).
func (s Stats) Sub(old Stats) Stats {
	return Stats{Stats: s.Stats.Sub(old.Stats), Acquires: s.Acquires - old.Acquires, Wait: s.Wait - old.Wait,
		Calls: s.Calls.Sub(old.Calls)}
}
