package main

import (
	"fmt"
	"log/slog"

	"github.com/rotary-moe/rotary/examples/internal/cli"
	"github.com/rotary-moe/rotary/prefetch"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
)

// prefetchChoice is what -prefetch chose: a predictor, and the prefetcher
// the engine drives with it once its runtime exists. A nil choice is "off".
type prefetchChoice struct {
	pred   prefetch.Predictor
	source string // where the predictor learned, for -v
	budget int64
	log    *slog.Logger
	p      *prefetch.Prefetcher // set by open
}

// prefetcher applies -prefetch: transition statistics come from the -hot
// profile (profiles that -profile writes carry them). auto prefetches when
// that profile has them; the host-driven path has no hidden states for
// GateAhead.
func prefetcher(c *config, hot *profile.Profile, log *slog.Logger) (*prefetchChoice, error) {
	switch {
	case c.prefetch == "off":
		return nil, nil
	case c.prefetch == "auto" && (hot == nil || !hot.HasTransitions()):
		return nil, nil
	case hot == nil:
		return nil, cli.Usagef("-prefetch transition learns from the -hot profile: give -hot FILE (a profile written by -profile on this model)")
	case !hot.HasTransitions():
		return nil, fmt.Errorf("-prefetch transition: %s has no cross-layer counts (an older profile): record it again with -profile", c.hot)
	}
	t, err := prefetch.NewTransition(hot)
	if err != nil {
		return nil, fmt.Errorf("-prefetch: %w", err)
	}
	return &prefetchChoice{pred: t, source: c.hot, budget: c.prefetchBudget.Bytes, log: log}, nil
}

// open makes the prefetcher for the engine's runtime.
func (pc *prefetchChoice) open(rt *rotary.Runtime) (engine.Prefetcher, error) {
	var err error
	pc.p, err = prefetch.New(rt, pc.pred, prefetch.WithBudget(pc.budget), prefetch.WithLogger(pc.log))
	return pc.p, err
}

// err is the failure that turned prefetching off, if any.
func (pc *prefetchChoice) err() error {
	if pc == nil || pc.p == nil {
		return nil
	}
	return pc.p.Err()
}

func (pc *prefetchChoice) String() string {
	if pc == nil {
		return "off"
	}
	budget := "no budget"
	if pc.budget > 0 {
		budget = rotary.FormatSize(pc.budget) + " per token"
	}
	return fmt.Sprintf("transition statistics of %s, %s", pc.source, budget)
}
