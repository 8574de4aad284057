package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rotary-moe/rotary/examples/internal/progress"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary/sim"
)

// diag receives the progress and warnings, never the results.
var diag io.Writer = os.Stderr

// simulate runs sim.Simulate once per budget and policy, as many at once
// as there are CPUs, showing the progress of a long simulation on diag, and
// returns one report of every row in cfg's order.
func simulate(ctx context.Context, m *experts.Model, tr *profile.Trace, cfg sim.Config) (*sim.Report, error) {
	budgets, policies := cfg.Budgets, cfg.Policies
	n := len(budgets) * len(policies)
	bar := progress.New(diag, "simulating", progress.Count("runs"))
	defer bar.Finish()
	reps := make([]*sim.Report, n)
	var mu sync.Mutex
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		one := cfg
		one.Budgets = budgets[i/len(policies) : i/len(policies)+1]
		one.Policies = policies[i%len(policies) : i%len(policies)+1]
		one.Parallel = 1
		g.Go(func() error {
			rep, err := sim.Simulate(gctx, m, tr, one)
			if err != nil {
				return err
			}
			reps[i] = rep
			mu.Lock()
			done++
			bar.Update(int64(done), int64(n))
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rep := *reps[0]
	rep.Rows = nil
	for _, r := range reps {
		rep.Rows = append(rep.Rows, r.Rows...)
	}
	return &rep, nil
}

// computePerToken is the compute the simulation charges a token: each
// routed layer's attention and experts, over the counted tokens.
func computePerToken(tr *profile.Trace, rep *sim.Report) time.Duration {
	routed := 0
	for tok := rep.Warmup; tok < tr.Tokens(); tok++ {
		for l := range tr.Model().Layers {
			if tr.Len(tok, l) > 0 {
				routed++
			}
		}
	}
	if rep.Tokens == 0 {
		return 0
	}
	return time.Duration(float64(routed) * float64(rep.Attention+rep.Experts) / float64(rep.Tokens))
}

// writeTable prints the report with the time per token split so that it
// adds up: compute, the stall for copies, and the rest, which is the host's
// side of every layer (the router's readback, the driver calls that queue
// the copies and kernels, each copy's latency before data moves) and, with
// a prefetcher, the waits for prefetches that had not arrived. On a small
// model the rest dominates, so a token can take many times its compute with
// no stall at all. All times are in the same unit. Rows with a prefetcher
// add its name, the copies per token and the predictions' recall and
// precision.
func writeTable(w io.Writer, tr *profile.Trace, rep *sim.Report) error {
	compute := computePerToken(tr, rep)
	fmt.Fprintf(w, "%s, %d tokens", rep.Model, rep.Tokens)
	if rep.Warmup > 0 {
		fmt.Fprintf(w, " after %d of warm-up", rep.Warmup)
	}
	fmt.Fprintf(w, "; per MoE layer: attention %v, experts %v; copies %.1f GB/s pinned, %v each, %v per call\n",
		rep.Attention, rep.Experts, rep.Timing.PinnedBandwidth/1e9, rep.Timing.CopyLatency, rep.Timing.CallOverhead)
	prefetch := slices.ContainsFunc(rep.Rows, func(r sim.Row) bool { return r.Prefetch != "" })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if prefetch {
		fmt.Fprintln(tw, "budget\tpolicy\tprefetch\tslots/layer\tpinned\thit rate\tcopies/token\trecall\tprecision\tMiB/token\tcompute\tstall\thost\tms/token\ttokens/s\t")
	} else {
		fmt.Fprintln(tw, "budget\tpolicy\tslots/layer\tpinned\thit rate\tMiB/token\tcompute\tstall\thost\tms/token\ttokens/s\t")
	}
	for _, r := range rep.Rows {
		host := max(r.TimePerToken-compute-r.StallPerToken, 0)
		fmt.Fprintf(tw, "%s\t%s\t", r.Budget, r.Policy)
		if prefetch {
			fmt.Fprintf(tw, "%s\t", cmp.Or(r.Prefetch, "-"))
		}
		fmt.Fprintf(tw, "%.1f\t%.1f\t%.2f%%\t", r.Slots, r.Pinned, 100*r.HitRate)
		switch {
		case prefetch && r.Prefetch != "":
			fmt.Fprintf(tw, "%.2f\t%.1f%%\t%.1f%%\t", r.TransfersPerToken, 100*r.PrefetchRecall, 100*r.PrefetchPrecision)
		case prefetch:
			fmt.Fprintf(tw, "%.2f\t-\t-\t", r.TransfersPerToken)
		}
		fmt.Fprintf(tw, "%.2f\t%s\t%s\t%s\t%s\t%.1f\t\n", r.BytesPerToken/(1<<20), msNum(compute), msNum(r.StallPerToken), msNum(host),
			msNum(r.TimePerToken), r.TokensPerSecond)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	note := "per token, in ms: compute + stall (waiting for copies) + host (router readback, driver calls, copy latency) = ms/token."
	if prefetch {
		note = "per token, in ms: compute + stall (waiting for the misses' copies) + host (router readback, driver calls, copy latency,\n" +
			"prefetches that arrived late) = ms/token; copies/token counts misses and prefetches."
	}
	_, err := fmt.Fprintln(w, note)
	return err
}

// msNum is a duration in milliseconds with three decimals.
func msNum(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
