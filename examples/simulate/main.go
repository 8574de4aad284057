// Command simulate replays MoE routing traces through rotary's residency
// runtime in virtual time and prints, for each VRAM budget and eviction
// policy, the hit rate, the bytes copied and the stall per token, and the
// tokens per second they allow, with Belady's optimum as the bound, and
// with prefetchers side by side.
//
//	go run ./examples/simulate -trace ../shared/traces/deepseek-v2-lite-chat/puffin_prefill_csv -slots 8,16,32
//	go run ./examples/simulate -model qwen35moe-35b-a3b -vram 6GiB,8GiB,12GiB,16GiB
//	go run ./examples/simulate -trace ../shared/traces/deepseek-v2-lite-chat/puffin_prefill_csv -slots 16 \
//		-policies lru,belady -prefetch transition,transition:8
//
// -trace reads any trace profile.OpenTrace knows (the DeepSeek CSV folder,
// the Mixtral and granite files, rotary's own JSONL and binary traces).
// -model names a synthetic preset of experts (its shapes are read from a
// header-only sparse file, never the weights) or a GGUF file. With only a
// trace, the model is one of the trace's shape with experts of -expert-dims;
// with only a model, the trace is synthetic, with sim.Qwen3Routing's
// statistics (those quoted for Qwen3-30B-A3B).
//
// -prefetch adds, for each prefetcher named, a row of LRU with it (package
// prefetch): "transition" predicts each layer's experts from the layers
// before (prefetch.Transition), naming the top-k, or the top M with
// "transition:M"; -prefetch-budget bounds the bytes it copies per token.
// Its statistics never come from the tokens replayed: from -fit's trace, or
// else from the first -fit-split of the trace's prompts, the rest being
// replayed (a synthetic trace fits on another seed's tokens). GateAhead
// needs hidden states, which routing traces do not have.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/examples/internal/interrupt"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/prefetch"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/sim"
)

// traceModels describe the models the external traces were recorded on, for
// a trace given without a model: the expert matrices (embedding, expert FFN)
// and, roughly, the other weights at about 5 bits per parameter.
var traceModels = map[string]struct {
	dims      [2]int
	nonExpert string
}{
	"deepseek2":  {[2]int{2048, 1408}, "800MB"}, // DeepSeek-V2-Lite: 1.3B of 15.7B parameters
	"llama":      {[2]int{4096, 14336}, "1GB"},  // Mixtral-8x7B: 1.6B of 46.7B
	"granitemoe": {[2]int{1024, 512}, "200MB"},  // granite-3.0-1b-a400m: 0.1B of 1.3B, f16
}

func main() {
	// The host backend allocates per queued operation; a long trace runs
	// faster with fewer collections.
	debug.SetGCPercent(400)
	ctx, stop := interrupt.Context(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case interrupt.ExitCode(ctx) != 0:
		fmt.Fprintln(os.Stderr, "simulate:", interrupt.Cause(ctx))
		os.Exit(interrupt.ExitCode(ctx))
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

// errUsage is a bad command line, which the flag package has explained.
var errUsage = errors.New("usage")

// errHelp is flag.ErrHelp, for run, whose flag set hides the package.
var errHelp = flag.ErrHelp

const usage = `usage: simulate [-trace TRACE] [-model PRESET|FILE] [-slots N,N,...] [-vram SIZE,SIZE,...] [flags]

Replays a routing trace through rotary's residency runtime in virtual time on
an emulated H200 and prints, for each VRAM budget and eviction policy, the hit
rate, the bytes copied, the time per token split into compute, stall for
copies and the host's own part, and the tokens per second, with Belady's
optimum as the bound. Without -trace the trace is synthetic, with Qwen3's
routing statistics; without -model the model has the trace's shape.

flags:
`

func run(ctx context.Context, args []string, out io.Writer) error {
	flag := flag.NewFlagSet("simulate", flag.ContinueOnError)
	flag.SetOutput(diag)
	flag.Usage = func() {
		fmt.Fprint(diag, usage)
		flag.PrintDefaults()
	}
	var (
		tracePath  = flag.String("trace", "", "routing trace to replay")
		modelName  = flag.String("model", "", "synthetic preset ("+strings.Join(synth.Presets(), ", ")+") or GGUF file")
		slotsFlag  = flag.String("slots", "", "slots per layer to compare, e.g. 8,16,32")
		vramFlag   = flag.String("vram", "", "VRAM budgets to compare, e.g. 6GiB,8GiB,16GiB")
		policies   = flag.String("policies", "lru,lfu,pinned+lru,belady", "policies to compare (also lru-by-misses: each layer's slots sized by its misses; pinned+lru-live: re-pinned every -repin tokens)")
		repin      = flag.Int("repin", 256, "tokens between re-pins of pinned+lru-live, from the run's own routing")
		tokens     = flag.Int("tokens", 2000, "tokens of the synthetic trace (without -trace)")
		seed       = flag.Uint64("seed", 1, "seed of the synthetic trace")
		dims       = flag.String("expert-dims", "", "embedding,expert-FFN of a trace's model (known traces have defaults)")
		nonExpert  = flag.String("non-expert", "", "non-expert weights of a trace's model, e.g. 1GiB (known traces have defaults)")
		hostBudget = flag.String("host", "", "host tier budget (default: unlimited, the mapping)")
		reserve    = flag.String("reserve", "0", "VRAM left to the program besides its non-expert weights")
		pin        = flag.Float64("pin", 0.5, "share of each budget pinned by pinned+lru")
		pcie       = flag.Float64("pcie", cuda.TimingH200.PinnedBandwidth/1e9, "pinned host-to-device GB/s")
		gpuBW      = flag.Float64("gpu-bandwidth", 500, "GPU memory GB/s, for the default compute times")
		attention  = flag.Duration("attention", 0, "compute per MoE layer before the router's readback (default: from the model)")
		expertsT   = flag.Duration("experts", 0, "compute per MoE layer of the experts (default: from the model)")
		warmup     = flag.Int("warmup", 0, "tokens replayed before counting (0: cold misses count)")
		profPath   = flag.String("profile", "", "profile file choosing pinned+lru's hot set (default: the trace's own, in-sample)")
		prefetches = flag.String("prefetch", "", "prefetchers to compare with LRU: transition[:M], ...")
		pfBudget   = flag.String("prefetch-budget", "0", "bytes a prefetcher may copy per token (0: its M candidates)")
		fitPath    = flag.String("fit", "", "trace the prefetchers' statistics are learned from (default: -fit-split)")
		fitSplit   = flag.Float64("fit-split", 0.5, "without -fit: share of the trace's prompts that fit the statistics, the rest being replayed")
		jsonOut    = flag.Bool("json", false, "print JSON")
		showPlan   = flag.Bool("plan", false, "print the plan of each VRAM budget")
	)
	if err := flag.Parse(args); err != nil {
		if errors.Is(err, errHelp) {
			return err
		}
		return errUsage
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: give the trace with -trace and the model with -model", flag.Arg(0))
	}

	if *tracePath == "" && *modelName == "" {
		return errors.New("give -trace, -model or both")
	}
	var tr, fit *profile.Trace
	var err error
	if *tracePath != "" {
		if tr, err = profile.OpenTrace(ctx, *tracePath); err != nil {
			return err
		}
		if n := tr.Dropped(); n > 0 {
			fmt.Fprintf(diag, "simulate: %s ends in a cut-off record (its writer stopped mid-write): read up to it, dropped its %s\n",
				*tracePath, rotary.FormatSize(n))
		}
	}
	m, err := openModel(ctx, *modelName, tr, *dims, *nonExpert)
	if err != nil {
		return err
	}
	defer m.Close()
	if tr == nil {
		id := profile.ModelID{Name: m.Params.Name + " (synthetic routing)", Arch: m.Arch, Layers: m.Params.NumLayers,
			Experts: m.Params.NumExperts, ExpertsUsed: m.Params.NumExpertsUsed}
		// Qwen3's statistics, the top expert's share kept within what a
		// model of this size allows.
		r := sim.Qwen3Routing
		r.TopShare = min(max(r.TopShare, 1.5/float64(id.Experts)), 0.9/float64(id.ExpertsUsed))
		if tr, err = sim.SyntheticTrace(id, *tokens, r, *seed); err != nil {
			return err
		}
		if *prefetches != "" && *fitPath == "" {
			// Fit on the same statistics' tokens of another seed.
			if fit, err = sim.SyntheticTrace(id, *tokens, r, *seed+1); err != nil {
				return err
			}
		}
	}
	if *prefetches != "" {
		if tr, fit, err = fitTrace(ctx, tr, fit, *fitPath, *fitSplit); err != nil {
			return err
		}
	}

	cfg := sim.Config{Attention: *attention, Experts: *expertsT, ComputeBandwidth: *gpuBW * 1e9, PinFraction: *pin, Warmup: *warmup}
	if *profPath != "" {
		if cfg.Profile, err = profile.LoadFor(*profPath, tr.Model()); err != nil {
			return err
		}
	}
	timing := cuda.TimingH200
	timing.PinnedBandwidth = *pcie * 1e9
	cfg.Timing = &timing
	if cfg.Reserve, err = rotary.ParseSize(*reserve); err != nil {
		return err
	}
	if *hostBudget != "" {
		if cfg.HostBudget, err = rotary.ParseSize(*hostBudget); err != nil {
			return err
		}
	}
	if cfg.Budgets, err = budgets(*slotsFlag, *vramFlag); err != nil {
		return err
	}
	if *repin <= 0 {
		return fmt.Errorf("-repin %d is not positive", *repin)
	}
	if cfg.Policies, err = pickPolicies(*policies, tr, *repin); err != nil {
		return err
	}
	if *prefetches != "" {
		budget, err := rotary.ParseSize(*pfBudget)
		if err != nil {
			return fmt.Errorf("-prefetch-budget: %w", err)
		}
		pf, err := prefetchPolicies(*prefetches, fit, budget)
		if err != nil {
			return err
		}
		cfg.Policies = append(cfg.Policies, pf...)
	}
	if *showPlan {
		for _, b := range cfg.Budgets {
			if b.VRAM > 0 {
				p, err := rotary.NewPlan(m, rotary.WithVRAM(b.VRAM), rotary.WithReserve(cfg.Reserve))
				if err != nil {
					return err
				}
				fmt.Fprintln(out, p)
			}
		}
	}
	start := time.Now()
	rep, err := simulate(ctx, m, tr, cfg)
	if err != nil {
		return err
	}
	if *jsonOut {
		js, err := rep.JSON()
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(js))
		return nil
	}
	if fit != nil {
		fmt.Fprintf(out, "prefetch statistics from %d tokens, replaying %d others\n", fit.Tokens(), tr.Tokens())
	}
	if r, err := sim.MeasureRouting(tr); err == nil {
		fmt.Fprintf(out, "routing: %.1f%% of selections repeat at the next token, %.1f%% within 8; %.1f%% of experts cover 90%%; top expert %.1f%%\n",
			100*r.RepeatNext, 100*r.RepeatWithin8, 100*r.Coverage90, 100*r.TopShare)
	}
	if err := writeTable(out, tr, rep); err != nil {
		return err
	}
	if *profPath == "" && slices.ContainsFunc(cfg.Policies, func(p sim.Policy) bool { return p.Pinned }) {
		fmt.Fprintln(out, "pinned+LRU pins the trace's own hot set (in-sample) and starts with it resident; the other policies start empty.")
	}
	fmt.Fprintf(out, "(%d runs in %v)\n", len(rep.Rows), time.Since(start).Round(time.Millisecond))
	return nil
}

// openModel opens a preset's shape, a GGUF file, or a model of the trace's
// shape.
func openModel(ctx context.Context, name string, tr *profile.Trace, dims, nonExpert string) (*experts.Model, error) {
	switch {
	case name != "" && slices.Contains(synth.Presets(), name):
		w, err := synth.NewWriter(name)
		if err != nil {
			return nil, err
		}
		return synth.OpenShape(w, "")
	case name != "":
		return experts.OpenModel(name)
	}
	known, ok := traceModels[tr.Model().Arch]
	d := known.dims
	if nonExpert == "" {
		nonExpert = known.nonExpert
	}
	if nonExpert == "" {
		nonExpert = "0"
	}
	if dims != "" {
		parts := strings.Split(dims, ",")
		var err error
		if len(parts) == 2 {
			if d[0], err = strconv.Atoi(parts[0]); err == nil {
				d[1], err = strconv.Atoi(parts[1])
			}
		}
		if len(parts) != 2 || err != nil {
			return nil, fmt.Errorf("-expert-dims %q: want embedding,ffn", dims)
		}
	} else if !ok {
		return nil, fmt.Errorf("the trace's model (%s) has no known expert size: give -expert-dims or -model", tr.Model())
	}
	ne, err := rotary.ParseSize(nonExpert)
	if err != nil {
		return nil, err
	}
	w, err := synth.ShapeWriter(sim.ShapeOf(tr, d[0], d[1], ne))
	if err != nil {
		return nil, err
	}
	return synth.OpenShape(w, "")
}

func budgets(slots, vram string) ([]sim.Budget, error) {
	var out []sim.Budget
	if slots == "" && vram == "" {
		slots = "8,16,32,64"
	}
	for s := range strings.SplitSeq(slots, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-slots: %q is not a positive number", s)
		}
		out = append(out, sim.Budget{Slots: n})
	}
	for s := range strings.SplitSeq(vram, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := rotary.ParseSize(s)
		if err != nil {
			return nil, fmt.Errorf("-vram: %w", err)
		}
		out = append(out, sim.Budget{VRAM: n})
	}
	return out, nil
}

func pickPolicies(list string, tr *profile.Trace, repin int) ([]sim.Policy, error) {
	all := append(sim.DefaultPolicies(tr), sim.Policy{Name: "LRU-by-misses", Policy: rotary.LRU, SlotsByMisses: true},
		sim.Policy{Name: "pinned+LRU-live", Policy: rotary.LRU, Pinned: true, RepinEvery: repin})
	var out []sim.Policy
	for name := range strings.SplitSeq(list, ",") {
		i := slices.IndexFunc(all, func(p sim.Policy) bool { return strings.EqualFold(p.Name, strings.TrimSpace(name)) })
		if i < 0 {
			return nil, fmt.Errorf("-policies: unknown policy %q (lru, lfu, pinned+lru, belady, lru-by-misses, pinned+lru-live)", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// fitTrace returns the trace to replay and the one to fit the prefetchers'
// statistics on: -fit's (of the same model), synth (a synthetic trace's
// twin), or the first share of tr's prompts, the rest being replayed.
func fitTrace(ctx context.Context, tr, synth *profile.Trace, path string, share float64) (eval, fit *profile.Trace, err error) {
	switch {
	case path != "":
		if fit, err = profile.OpenTrace(ctx, path); err != nil {
			return nil, nil, fmt.Errorf("-fit: %w", err)
		}
		if err := tr.Model().Check(fit.Model()); err != nil {
			return nil, nil, fmt.Errorf("-fit: a trace of %s to fit a trace of %s: %w", fit.Model(), tr.Model(), err)
		}
		return tr, fit, nil
	case synth != nil:
		return tr, synth, nil
	case !(share > 0 && share < 1):
		return nil, nil, fmt.Errorf("-fit-split %v outside (0, 1): the statistics must come from other tokens than those replayed", share)
	}
	// Prompts, not segments: a prompt's prefill and decode segments share
	// its name, and stay on one side.
	var names []string
	for _, s := range tr.Segments() {
		if len(names) == 0 || names[len(names)-1] != s.Name {
			names = append(names, s.Name)
		}
	}
	n := int(share * float64(len(names)))
	if n == 0 || n == len(names) {
		return nil, nil, fmt.Errorf("-fit-split: the trace's %d prompts do not split %v to %v; give -fit", len(names), share, 1-share)
	}
	fitting := make(map[string]bool, n)
	for _, name := range names[:n] {
		fitting[name] = true
	}
	fit = tr.Subset(func(s profile.Segment) bool { return fitting[s.Name] })
	eval = tr.Subset(func(s profile.Segment) bool { return !fitting[s.Name] })
	return eval, fit, nil
}

// prefetchPolicies returns a policy of LRU with each prefetcher of list,
// its statistics learned from fit.
func prefetchPolicies(list string, fit *profile.Trace, budget int64) ([]sim.Policy, error) {
	var trans *prefetch.Transition
	var out []sim.Policy
	for spec := range strings.SplitSeq(list, ",") {
		spec = strings.TrimSpace(spec)
		name, arg, _ := strings.Cut(spec, ":")
		var opts []prefetch.Option
		if arg != "" {
			m, err := strconv.Atoi(arg)
			if err != nil || m <= 0 {
				return nil, fmt.Errorf("-prefetch %q: the candidates after the colon are not a positive number", spec)
			}
			opts = append(opts, prefetch.WithCandidates(m))
		}
		if budget > 0 {
			opts = append(opts, prefetch.WithBudget(budget))
		}
		switch strings.ToLower(name) {
		case "transition":
			if trans == nil {
				var err error
				if trans, err = prefetch.FitTransition(fit); err != nil {
					return nil, err
				}
			}
		case "gate-ahead", "gateahead":
			return nil, fmt.Errorf("-prefetch %s needs the model's hidden states, which a routing trace does not have", name)
		default:
			return nil, fmt.Errorf("-prefetch: unknown prefetcher %q (transition[:M])", name)
		}
		pred := trans // read-only: shared by the runs
		out = append(out, sim.Policy{Name: "LRU", Policy: rotary.LRU, Prefetch: spec,
			NewPrefetcher: func(rt *rotary.Runtime) (sim.Prefetcher, error) { return prefetch.New(rt, pred, opts...) }})
	}
	return out, nil
}
