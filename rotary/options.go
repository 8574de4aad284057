package rotary

import (
	"fmt"
	"log/slog"
	"math"

	"github.com/rotary-moe/rotary/profile"
)

// Option configures Open and NewPlan. Options only record their values;
// NewPlan and Open check them and report the first bad one as an error
// matching ErrInvalid, naming the option.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config collects the options.
type config struct {
	vram    int64 // 0: the device's free memory (Open) or unset (NewPlan)
	host    int64 // -1: unlimited
	reserve int64
	slots   int // dynamic slots per layer; 0: as many as the budget allows
	shares  map[int]float64
	chunk   int64
	hot     *profile.HotSet
	hotProf *profile.Profile // WithHotProfile: hot is chosen from it
	hotFrac float64
	plan    *Plan // WithPlan: follow it instead of planning
	policy  Policy
	log     *slog.Logger
	warm    bool
	onDev   bool // WithDeviceResidency

	// set holds the names of the options given, for the checks of values
	// whose zero means "not given" and of options that exclude each other.
	set map[string]bool
}

func newConfig(opts []Option) (config, error) {
	c := config{host: -1, chunk: defaultChunk, policy: LRU, warm: true, set: map[string]bool{}}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, c.validate()
}

// validate checks the options' values.
func (c *config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	switch {
	case c.set["WithVRAM"] && c.vram <= 0:
		return bad("WithVRAM(%d) is not positive", c.vram)
	case c.set["WithHostBudget"] && c.host < 0:
		return bad("WithHostBudget(%d) is negative", c.host)
	case c.reserve < 0:
		return bad("WithReserve(%d) is negative", c.reserve)
	case c.set["WithSlots"] && c.slots <= 0:
		return bad("WithSlots(%d) is not positive", c.slots)
	case c.set["WithHotProfile"] && c.hotProf == nil:
		return bad("WithHotProfile(nil)")
	case c.set["WithHotProfile"] && !(c.hotFrac > 0 && c.hotFrac <= 1):
		return bad("WithHotProfile fraction %v outside (0, 1]", c.hotFrac)
	case c.policy == nil:
		return bad("WithPolicy(nil)")
	case c.chunk <= 0:
		return bad("WithHostChunk(%d) is not positive", c.chunk)
	case c.set["WithPlan"] && c.plan == nil:
		return bad("WithPlan(nil)")
	}
	if c.set["WithSlotShares"] {
		positive := false
		for l, v := range c.shares {
			if !(v >= 0) || math.IsInf(v, 0) {
				return bad("WithSlotShares: layer %d's share %v", l, v)
			}
			positive = positive || v > 0
		}
		if !positive {
			return bad("WithSlotShares without a positive share")
		}
	}
	if c.set["WithPlan"] {
		for _, name := range planningOptions {
			if c.set[name] {
				return bad("WithPlan and %s: the plan already holds the budgets", name)
			}
		}
	}
	return nil
}

// planningOptions are the options a Plan holds the outcome of.
var planningOptions = []string{"WithVRAM", "WithHostBudget", "WithReserve", "WithSlots", "WithSlotShares", "WithHotSet", "WithHotProfile", "WithHostChunk"}

// record returns an option that marks name as given and applies set.
func record(name string, set func(*config)) Option {
	return optionFunc(func(c *config) {
		c.set[name] = true
		set(c)
	})
}

// defaultChunk is the size of the pinned allocations the host tier is carved
// from: large, because each cuMemHostAlloc is a system call that locks pages
// (0.6 s per GiB in all), and a few hundred of them are enough for any host.
const defaultChunk = 256 << 20

// WithVRAM sets the device memory the program may use, for the experts and
// the program's own buffers together (see WithReserve). Open's default is the
// device's free memory; NewPlan needs it unless WithSlots is given.
//
// It is rotary's budget within the device, not the device's size: on a host
// backend made with cuda.WithCapacity, or a GPU, the device's memory bounds
// it, and neither setting overrides the other. A budget the device cannot
// hold fails in Open, when the planes are allocated (cuda.ErrOutOfMemory).
func WithVRAM(bytes int64) Option { return record("WithVRAM", func(c *config) { c.vram = bytes }) }

// WithHostBudget sets the page-locked host memory the runtime may use. When it
// holds every expert, the runtime registers the model file's mapping as pinned
// memory (no copies); otherwise it keeps an LRU of pinned expert copies this
// large. The default is unlimited: the mapping is registered.
func WithHostBudget(bytes int64) Option {
	return record("WithHostBudget", func(c *config) { c.host = bytes })
}

// WithReserve sets device memory to leave to the program on top of the
// model's non-expert weights, which the planner subtracts itself: the KV
// cache, activations, scratch buffers.
func WithReserve(bytes int64) Option {
	return record("WithReserve", func(c *config) { c.reserve = bytes })
}

// WithSlots fixes the number of dynamic slots of every layer (fewer where the
// layer has fewer experts that are not pinned), instead of filling the VRAM
// budget; it must be at least the top-k. Without WithVRAM the plan then
// states the VRAM it needs.
func WithSlots(n int) Option { return record("WithSlots", func(c *config) { c.slots = n }) }

// WithSlotShares sizes the layers' dynamic slots in proportion to shares (by
// model layer), for example each layer's misses measured in a run
// (Stats.Layers), instead of giving every layer the same number: each layer
// keeps its working set (top-k slots), and the slots beyond go one at a time
// to the layer with the largest share per slot it would then have (at most
// its experts). With WithSlots(n) the layers share n slots per layer on
// average; otherwise the VRAM budget. A layer without a share gets its
// working set only. Shares must be finite and non-negative, one at least
// positive.
func WithSlotShares(shares map[int]float64) Option {
	return record("WithSlotShares", func(c *config) { c.shares = shares })
}

// WithHotSet pins the experts of a hot set (profile.SelectHotSet) in VRAM for
// the runtime's lifetime; dynamic slots get the rest of the budget.
func WithHotSet(h *profile.HotSet) Option { return record("WithHotSet", func(c *config) { c.hot = h }) }

// WithHotProfile pins in VRAM the hot set of a router profile of the model:
// the experts with the most expected hits (profile.SelectHotSet over all
// layers) within fraction (0 < fraction <= 1) of the VRAM the experts get
// (the budget less the non-expert weights and the reserve), and never so
// many that a layer has less than its top-k dynamic slots left. It needs a
// VRAM budget: WithVRAM, or Open's free device memory. The plan's HotSet is
// the selection. Only the profile's shape is checked (layers, experts: an
// error matching profile.ErrModelMismatch); check that it was recorded on
// this model (profile.LoadFor) before. It replaces WithHotSet.
func WithHotProfile(p *profile.Profile, fraction float64) Option {
	return record("WithHotProfile", func(c *config) { c.hotProf, c.hotFrac = p, fraction })
}

// WithPlan makes Open follow p, a plan NewPlan made for the same model,
// instead of planning again: a program plans once (to print the plan, size
// its own buffers from it, or check the budget before it loads anything) and
// opens with the same numbers. The options that plan (WithVRAM,
// WithHostBudget, WithReserve, WithSlots, WithHotSet, WithHotProfile,
// WithHostChunk) cannot be given with it; the others (WithPolicy,
// WithLogger, WithoutWarmup) can.
func WithPlan(p *Plan) Option { return record("WithPlan", func(c *config) { c.plan = p }) }

// WithPolicy sets the eviction policy of the dynamic slots (default LRU).
func WithPolicy(p Policy) Option { return optionFunc(func(c *config) { c.policy = p }) }

// WithLogger sets the logger (default: none). Plans, fills and Stats go to it
// at debug level, a failed background warm-up at warn level. A zap logger
// plugs in through zap's slog handler (go.uber.org/zap/exp/zapslog), as for
// cuda.WithLogger.
func WithLogger(log *slog.Logger) Option { return optionFunc(func(c *config) { c.log = log }) }

// WithHostChunk sets the size of the pinned allocations the host LRU is carved
// from (default 256 MiB).
func WithHostChunk(bytes int64) Option {
	return record("WithHostChunk", func(c *config) { c.chunk = bytes })
}

// WithDeviceResidency readies the runtime for residency decided on the
// device (package rotary/device): Open registers the model file's expert
// tensors mapped into the device, so that kernels copy misses from it
// themselves, and Handover gives a layer's tables to the device. It needs a
// host budget that holds the expert tensors (HostMapped); with HostLRU,
// Open fails with ErrBudget.
func WithDeviceResidency() Option { return optionFunc(func(c *config) { c.onDev = true }) }

// WithoutWarmup stops Open from filling the host LRU in the background with
// every expert, layer by layer in expert order, until it is full: misses
// then read their experts from the file when they happen. Only the LRU
// (HostLRU) warms up; a registered mapping (HostMapped) needs no filling.
func WithoutWarmup() Option { return optionFunc(func(c *config) { c.warm = false }) }
