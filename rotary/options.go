package rotary

import (
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/profile"
	"go.uber.org/zap"
)

// Option configures Open and NewPlan.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

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
	policy  Policy
	log     *zap.Logger
	warm    bool
}

func newConfig(opts []Option) (config, error) {
	c := config{host: -1, chunk: defaultChunk, policy: LRU, log: zap.NewNop(), warm: true}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(&c); err != nil {
			return c, err
		}
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	return c, nil
}

// defaultChunk is the size of the pinned allocations the host tier is carved
// from: large, because each cuMemHostAlloc is a system call that locks pages
// (0.6 s per GiB in all), and a few hundred of them are enough for any host.
const defaultChunk = 256 << 20

func nonNegative(name string, v int64) error {
	if v < 0 {
		return fmt.Errorf("%w: %s(%d) is negative", ErrInvalid, name, v)
	}
	return nil
}

// WithVRAM sets the device memory the program may use, for the experts and
// the program's own buffers together (see WithReserve). Open's default is the
// device's free memory; NewPlan needs it unless WithSlots is given.
func WithVRAM(bytes int64) Option {
	return optionFunc(func(c *config) error {
		c.vram = bytes
		if bytes <= 0 {
			return fmt.Errorf("%w: WithVRAM(%d) is not positive", ErrInvalid, bytes)
		}
		return nil
	})
}

// WithHostBudget sets the page-locked host memory the runtime may use. When it
// holds every expert, the runtime registers the model file's mapping as pinned
// memory (no copies); otherwise it keeps an LRU of pinned expert copies this
// large. The default is unlimited: the mapping is registered.
func WithHostBudget(bytes int64) Option {
	return optionFunc(func(c *config) error {
		c.host = bytes
		return nonNegative("WithHostBudget", bytes)
	})
}

// WithReserve sets device memory to leave to the program on top of the
// model's non-expert weights, which the planner subtracts itself: the KV
// cache, activations, scratch buffers.
func WithReserve(bytes int64) Option {
	return optionFunc(func(c *config) error {
		c.reserve = bytes
		return nonNegative("WithReserve", bytes)
	})
}

// WithSlots fixes the number of dynamic slots of every layer (fewer where the
// layer has fewer experts that are not pinned), instead of filling the VRAM
// budget; it must be at least the top-k. Without WithVRAM the plan then
// states the VRAM it needs.
func WithSlots(n int) Option {
	return optionFunc(func(c *config) error {
		c.slots = n
		if n <= 0 {
			return fmt.Errorf("%w: WithSlots(%d) is not positive", ErrInvalid, n)
		}
		return nil
	})
}

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
	return optionFunc(func(c *config) error {
		c.shares = shares
		positive := false
		for l, v := range shares {
			if !(v >= 0) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: WithSlotShares: layer %d's share %v", ErrInvalid, l, v)
			}
			positive = positive || v > 0
		}
		if !positive {
			return fmt.Errorf("%w: WithSlotShares without a positive share", ErrInvalid)
		}
		return nil
	})
}

// WithHotSet pins the experts of a hot set (profile.SelectHotSet) in VRAM for
// the runtime's lifetime; dynamic slots get the rest of the budget.
func WithHotSet(h *profile.HotSet) Option {
	return optionFunc(func(c *config) error {
		c.hot = h
		return nil
	})
}

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
	return optionFunc(func(c *config) error {
		c.hotProf, c.hotFrac = p, fraction
		switch {
		case p == nil:
			return fmt.Errorf("%w: WithHotProfile(nil)", ErrInvalid)
		case !(fraction > 0 && fraction <= 1):
			return fmt.Errorf("%w: WithHotProfile fraction %v outside (0, 1]", ErrInvalid, fraction)
		}
		return nil
	})
}

// WithPolicy sets the eviction policy of the dynamic slots (default LRU).
func WithPolicy(p Policy) Option {
	return optionFunc(func(c *config) error {
		if p == nil {
			return fmt.Errorf("%w: WithPolicy(nil)", ErrInvalid)
		}
		c.policy = p
		return nil
	})
}

// WithLogger sets the logger (default: none). Plans, fills and Stats go to it
// at debug level.
func WithLogger(log *zap.Logger) Option {
	return optionFunc(func(c *config) error {
		c.log = log
		return nil
	})
}

// WithHostChunk sets the size of the pinned allocations the host LRU is carved
// from (default 256 MiB).
func WithHostChunk(bytes int64) Option {
	return optionFunc(func(c *config) error {
		c.chunk = bytes
		if bytes <= 0 {
			return fmt.Errorf("%w: WithHostChunk(%d) is not positive", ErrInvalid, bytes)
		}
		return nil
	})
}

// WithoutWarmup stops Open from filling the host LRU in the background with
// the hot set and then the experts in model order.
func WithoutWarmup() Option {
	return optionFunc(func(c *config) error {
		c.warm = false
		return nil
	})
}
