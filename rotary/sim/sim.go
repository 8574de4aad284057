package sim

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"golang.org/x/sync/errgroup"
)

// Config describes a simulation: the budgets and policies to compare and
// the model of time.
type Config struct {
	// Budgets are the VRAM configurations to compare.
	Budgets []Budget
	// Policies are the policies to compare (default: DefaultPolicies).
	Policies []Policy
	// Timing models the copies (default cuda.TimingH200: pinned 53 GB/s,
	// 4.4 µs per copy, 4.3 µs per driver call).
	Timing *cuda.Timing
	// Attention and Experts are each MoE layer's compute time before the
	// router's result is read back and after the experts are resident. Zero
	// means the bytes they read (the non-expert weights spread over the
	// layers; top-k experts) at ComputeBandwidth.
	Attention, Experts time.Duration
	// ComputeBandwidth is the GPU's memory bandwidth for the default compute
	// times (default 500 GB/s, a 16 GB consumer card).
	ComputeBandwidth float64
	// PinFraction is the share of each budget's expert memory the pinning
	// policies fill with the profile's hot set (default 0.5; at most what
	// leaves each layer its top-k dynamic slots: see WithHotProfile).
	PinFraction float64
	// Profile chooses the hot set; it must be of the trace's model (an error
	// matching profile.ErrModelMismatch otherwise). Default: the trace's
	// own, which makes pinning an in-sample bound.
	Profile *profile.Profile
	// HostBudget is the host tier's budget (0: unlimited, the mapping).
	HostBudget int64
	// Reserve is device memory left to the program besides the non-expert
	// weights (VRAM budgets only).
	Reserve int64
	// Warmup is how many tokens are replayed before counting starts, so that
	// the caches are not cold (0: cold misses count, as in the traces'
	// READMEs; policies that pin start with their hot set resident).
	Warmup int
	// Parallel is how many runs go at once (default GOMAXPROCS).
	Parallel int
}

// Budget is one VRAM configuration: Slots slots per layer (pinned and
// dynamic together), or a VRAM budget for the whole program.
type Budget struct {
	Slots int
	VRAM  int64
}

func (b Budget) String() string {
	if b.Slots > 0 {
		return fmt.Sprintf("%d slots", b.Slots)
	}
	return rotary.FormatSize(b.VRAM)
}

// Policy is one policy compared in a simulation: an eviction policy, with
// or without pinning and prefetch.
type Policy struct {
	Name   string
	Policy rotary.Policy
	// Pinned pins the hot set (Config.PinFraction of the budget) and
	// evicts the dynamic slots with Policy.
	Pinned bool
	// RepinEvery, with Pinned, re-pins the hot set every so many tokens
	// from a profile.Recorder fed by the run itself (rotary.Runtime.Repin):
	// each layer pins its most selected experts over those tokens, as many
	// as it has pinned slots. 0: the hot set chosen at the start stays.
	RepinEvery int
	// SlotsByMisses sizes each layer's slots by its misses
	// (rotary.WithSlotShares), measured in a first run of the policy with
	// the same number of slots in every layer, on the same trace: an
	// in-sample bound, as a run would size them from its own recent misses.
	SlotsByMisses bool
	// Prefetch names the prefetcher NewPrefetcher makes ("" for none).
	Prefetch string
	// NewPrefetcher, if set, makes a prefetcher for each run's runtime
	// (prefetch.New does), told of each layer's experts right after their
	// Acquire, while the layer computes.
	NewPrefetcher func(rt *rotary.Runtime) (Prefetcher, error)
}

// Prefetcher is what a simulation drives after each layer's Acquire: a
// *prefetch.Prefetcher. Traces have no hidden states: hidden is nil.
type Prefetcher interface {
	Routed(layer int, ids []int, hidden []float32)
	// Err returns the error that turned the prefetcher off, if any: a
	// simulation with one fails.
	Err() error
}

// DefaultPolicies are LRU, LFU, the profile's hot set pinned with LRU for
// the rest, and Belady's optimum for the trace, the bound.
func DefaultPolicies(t *profile.Trace) []Policy {
	return []Policy{
		{Name: "LRU", Policy: rotary.LRU},
		{Name: "LFU", Policy: rotary.LFU},
		{Name: "pinned+LRU", Policy: rotary.LRU, Pinned: true},
		{Name: "Belady", Policy: rotary.Belady(t)},
	}
}

// Report is a simulation's results, one row per budget and policy.
type Report struct {
	Model     string        `json:"model"`
	Tokens    int           `json:"tokens"` // counted, after Warmup
	Warmup    int           `json:"warmup_tokens"`
	Attention time.Duration `json:"attention_ns"`
	Experts   time.Duration `json:"experts_ns"`
	Timing    cuda.Timing   `json:"timing"`
	Rows      []Row         `json:"rows"`
}

// Row is one run: a budget and a policy.
type Row struct {
	Budget   string `json:"budget"`
	Policy   string `json:"policy"`
	Prefetch string `json:"prefetch"`
	// Slots is the mean number of slots per layer (pinned and dynamic),
	// Pinned the mean pinned.
	Slots  float64 `json:"slots"`
	Pinned float64 `json:"pinned"`
	// VRAM is the plan's budget.
	VRAM int64 `json:"vram"`
	// Requests and Hits are the Acquires' experts: HitRate is the demand
	// hit rate (prefetches are not requests).
	Requests uint64  `json:"requests"`
	Hits     uint64  `json:"hits"`
	HitRate  float64 `json:"hit_rate"`
	// TransfersPerToken is how many experts were copied per token, misses
	// and prefetches; BytesPerToken what the copies moved.
	TransfersPerToken float64 `json:"transfers_per_token"`
	BytesPerToken     float64 `json:"bytes_per_token"`
	// PrefetchRecall and PrefetchPrecision score the prefetcher's
	// predictions (rotary.PrefetchStats); PrefetchedPerToken,
	// UsefulPerToken and WastedPerToken count its copies: asked for
	// afterwards, evicted first (the rest were still resident, unused, at
	// the end).
	PrefetchRecall     float64 `json:"prefetch_recall"`
	PrefetchPrecision  float64 `json:"prefetch_precision"`
	PrefetchedPerToken float64 `json:"prefetched_per_token"`
	UsefulPerToken     float64 `json:"prefetch_useful_per_token"`
	WastedPerToken     float64 `json:"prefetch_wasted_per_token"`
	// TimePerToken is the simulated time per token; StallPerToken the part
	// the compute stream waited for the misses' copies (measured by the
	// runtime's events); IdlePerToken all the time it did not compute:
	// the stall, the prefetches that had not arrived when their layer came,
	// and the host's side (the router's readback, driver calls).
	TimePerToken    time.Duration `json:"time_per_token_ns"`
	IdlePerToken    time.Duration `json:"idle_per_token_ns"`
	StallPerToken   time.Duration `json:"stall_per_token_ns"`
	TokensPerSecond float64       `json:"tokens_per_second"`
}

// Simulate replays a routing trace through the runtime on a host backend in
// virtual time (cuda.WithVirtualClock, cuda.WithoutData), once per budget and
// policy, and reports hit rates, bytes moved, stalls and the resulting
// tokens per second. Per token and MoE layer it runs what a host-driven
// decoder runs: the layer's attention and router on the compute stream, a
// wait for the router's result (the readback), Acquire of the experts,
// their compute, Release. m must have the trace's shape; ShapeOf and
// synth.OpenShape make one.
func Simulate(ctx context.Context, m *experts.Model, t *profile.Trace, cfg Config) (*Report, error) {
	if err := checkTrace(m, t); err != nil {
		return nil, err
	}
	if cfg.Profile != nil {
		if err := cfg.Profile.Check(t.Model()); err != nil {
			return nil, fmt.Errorf("%w: the profile is not of the trace's model: %w", ErrInvalid, err)
		}
	}
	if len(cfg.Budgets) == 0 {
		return nil, fmt.Errorf("%w: no budgets to simulate", ErrInvalid)
	}
	if cfg.Warmup < 0 || cfg.Warmup >= t.Tokens() {
		return nil, fmt.Errorf("%w: warm-up of %d of the trace's %d tokens", ErrInvalid, cfg.Warmup, t.Tokens())
	}
	if cfg.Policies == nil {
		cfg.Policies = DefaultPolicies(t)
	}
	timing := cuda.TimingH200
	if cfg.Timing != nil {
		timing = *cfg.Timing
	}
	if cfg.ComputeBandwidth <= 0 {
		cfg.ComputeBandwidth = 500e9
	}
	if cfg.PinFraction == 0 {
		cfg.PinFraction = 0.5
	}
	if !(cfg.PinFraction > 0 && cfg.PinFraction <= 1) {
		return nil, fmt.Errorf("%w: pin fraction %v outside (0, 1]", ErrInvalid, cfg.PinFraction)
	}
	moe := m.MoELayers()
	if cfg.Attention == 0 {
		cfg.Attention = time.Duration(float64(m.NonExpertBytes()) / float64(len(moe)) / cfg.ComputeBandwidth * 1e9)
	}
	if cfg.Experts == 0 {
		cfg.Experts = time.Duration(float64(int64(m.Params.NumExpertsUsed)*m.ExpertBytes(moe[0])) / cfg.ComputeBandwidth * 1e9)
	}
	prof := cfg.Profile
	for _, p := range cfg.Policies {
		if p.Pinned && prof == nil {
			rec, err := profile.NewRecorder(t.Model())
			if err == nil {
				err = rec.RecordTrace(t)
			}
			if err != nil {
				return nil, fmt.Errorf("rotary: profiling the trace: %w", err)
			}
			prof = rec.Profile()
		}
	}
	rep := &Report{Model: modelName(m), Tokens: t.Tokens() - cfg.Warmup, Warmup: cfg.Warmup, Attention: cfg.Attention, Experts: cfg.Experts, Timing: timing}
	rep.Rows = make([]Row, len(cfg.Budgets)*len(cfg.Policies))
	g, gctx := errgroup.WithContext(ctx)
	if cfg.Parallel <= 0 {
		cfg.Parallel = runtime.GOMAXPROCS(0)
	}
	g.SetLimit(cfg.Parallel)
	for i, b := range cfg.Budgets {
		for j, p := range cfg.Policies {
			g.Go(func() error {
				row, s, err := simulate(gctx, m, t, &cfg, timing, b, p, prof, nil)
				if err == nil && p.SlotsByMisses {
					shares := make(map[int]float64, len(s.Layers))
					for _, l := range s.Layers {
						shares[l.Layer] = float64(l.Misses)
					}
					if s.VRAM.Misses > 0 { // else every layer has all it needs
						row, _, err = simulate(gctx, m, t, &cfg, timing, b, p, prof, shares)
					}
				}
				if err != nil {
					return fmt.Errorf("rotary: simulating %s with %s: %w", p.Name, b, err)
				}
				rep.Rows[i*len(cfg.Policies)+j] = row
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return rep, nil
}

// ShapeOf returns the shape of a trace's model, its layers that route
// tokens having experts of the given dimensions, for synth.ShapeWriter
// and synth.OpenShape to make a model without weights to simulate on.
func ShapeOf(t *profile.Trace, embedding, expertFFN int, nonExpert int64) synth.Shape {
	id := t.Model()
	return synth.Shape{Name: id.Name, Arch: id.Arch, Layers: id.Layers, MoELayers: t.RoutedLayers(),
		Experts: id.Experts, TopK: id.ExpertsUsed, Embedding: embedding, ExpertFFN: expertFFN, NonExpertBytes: nonExpert}
}

// checkTrace checks that the trace was recorded on a model of m's shape.
func checkTrace(m *experts.Model, t *profile.Trace) error {
	id, h := t.Model(), m.Params
	if id.Layers != h.NumLayers || id.Experts != h.NumExperts || id.ExpertsUsed > h.NumExpertsUsed {
		return fmt.Errorf("%w: trace of %d layers, top-%d of %d experts; model of %d layers, top-%d of %d",
			ErrInvalid, id.Layers, id.ExpertsUsed, id.Experts, h.NumLayers, h.NumExpertsUsed, h.NumExperts)
	}
	if t.Tokens() == 0 {
		return fmt.Errorf("%w: empty trace", ErrInvalid)
	}
	for l := range id.Layers {
		if _, ok := m.Experts(l); !ok {
			for tok := range t.Tokens() {
				if t.Len(tok, l) > 0 {
					return fmt.Errorf("%w: the trace routes layer %d, which has no experts in the model", ErrInvalid, l)
				}
			}
		}
	}
	return nil
}

// simProgram stands for the model's kernels: compute takes its modeled
// duration in nanoseconds.
var simProgram = &cuda.Program{Name: "rotary-sim", Host: map[string]cuda.HostKernel{"compute": simKernel}}

func simKernel(l *cuda.HostLaunch) error {
	l.SetDuration(time.Duration(l.Int64(0)))
	return nil
}

// pinning returns the options with which a pinning policy pins the
// profile's hot set under a budget.
func pinning(m *experts.Model, prof *profile.Profile, cfg *Config, b Budget) []rotary.Option {
	if b.Slots <= 0 {
		return []rotary.Option{rotary.WithHotProfile(prof, cfg.PinFraction)}
	}
	// The same number of pinned slots in every layer: its most selected
	// experts.
	n := int(float64(b.Slots) * cfg.PinFraction)
	n = max(min(n, b.Slots-m.Params.NumExpertsUsed), 0) // leave a working set
	h := &profile.HotSet{Mode: profile.PerLayer, Layers: make([]profile.LayerHotSet, len(prof.Layers))}
	for l := range prof.Layers {
		for _, e := range prof.Layers[l].Ranked() {
			if len(h.Layers[l].Experts) < n && prof.Layers[l].Counts[e] > 0 {
				h.Layers[l].Experts = append(h.Layers[l].Experts, e)
			}
		}
	}
	return []rotary.Option{rotary.WithHotSet(h), rotary.WithSlots(max(b.Slots-n, 1))}
}

// simulate runs one budget and policy, with the layers' slots sized by
// shares if not nil, and returns its row and the runtime's stats.
func simulate(ctx context.Context, m *experts.Model, t *profile.Trace, cfg *Config, timing cuda.Timing, b Budget, p Policy, prof *profile.Profile, shares map[int]float64) (Row, rotary.Stats, error) {
	opts := []rotary.Option{rotary.WithPolicy(p.Policy), rotary.WithReserve(cfg.Reserve), rotary.WithoutWarmup()}
	if shares != nil {
		opts = append(opts, rotary.WithSlotShares(shares))
	}
	capacity := int64(1) << 50 // slots: as much as they need
	switch {
	case b.Slots > 0 && !p.Pinned:
		opts = append(opts, rotary.WithSlots(b.Slots))
	case b.Slots <= 0:
		opts = append(opts, rotary.WithVRAM(b.VRAM))
		capacity = b.VRAM
	}
	if p.Pinned {
		opts = append(opts, pinning(m, prof, cfg, b)...)
	}
	if cfg.HostBudget > 0 {
		opts = append(opts, rotary.WithHostBudget(cfg.HostBudget))
	}
	dev, err := cuda.NewHost(cuda.WithVirtualClock(), cuda.WithTiming(timing), cuda.WithoutData(), cuda.WithCapacity(capacity))
	if err != nil {
		return Row{}, rotary.Stats{}, err
	}
	defer dev.Close()
	rt, err := rotary.Open(ctx, m, dev, opts...)
	if err != nil {
		return Row{}, rotary.Stats{}, err
	}
	defer rt.Close()
	var pf Prefetcher
	if p.NewPrefetcher != nil {
		if pf, err = p.NewPrefetcher(rt); err != nil {
			return Row{}, rotary.Stats{}, fmt.Errorf("making the prefetcher %s: %w", p.Prefetch, err)
		}
	}
	mod, err := dev.Load(ctx, simProgram)
	if err != nil {
		return Row{}, rotary.Stats{}, err
	}
	kernel, err := mod.Kernel("compute")
	if err != nil {
		return Row{}, rotary.Stats{}, err
	}
	compute, err := dev.NewStream()
	if err != nil {
		return Row{}, rotary.Stats{}, err
	}
	// Wait for the pinned experts, then measure from there.
	if err := dev.Synchronize(ctx); err != nil {
		return Row{}, rotary.Stats{}, err
	}
	rt.ResetStats()
	one := cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 1}}
	attention := []cuda.Arg{cuda.I64(int64(cfg.Attention))}
	expertsThenAttention := []cuda.Arg{cuda.I64(int64(cfg.Experts + cfg.Attention))}
	start := dev.Now()
	if err := compute.Launch(kernel, one, attention...); err != nil {
		return Row{}, rotary.Stats{}, err
	}
	var ids32 []int32
	var ids []int
	var set rotary.Set
	var layers int // MoE layers computed since start
	routed := t.RoutedLayers()
	var live *profile.Recorder
	if p.Pinned && p.RepinEvery > 0 {
		if live, err = profile.NewRecorder(t.Model()); err != nil {
			return Row{}, rotary.Stats{}, err
		}
	}
	for tok := range t.Tokens() {
		if tok%1024 == 0 && ctx.Err() != nil {
			return Row{}, rotary.Stats{}, ctx.Err()
		}
		if live != nil && tok > 0 && tok%p.RepinEvery == 0 {
			if _, err := rt.Repin(ctx, hotSetOf(rt.Plan(), live.Profile())); err != nil {
				return Row{}, rotary.Stats{}, err
			}
			if live, err = profile.NewRecorder(t.Model()); err != nil {
				return Row{}, rotary.Stats{}, err
			}
		}
		if tok == cfg.Warmup && tok > 0 {
			if err := compute.Synchronize(ctx); err != nil {
				return Row{}, rotary.Stats{}, err
			}
			rt.ResetStats()
			start, layers = dev.Now(), 0
		}
		for _, l := range routed {
			ids32 = t.AppendExperts(ids32[:0], tok, l)
			if len(ids32) == 0 {
				continue
			}
			ids = ids[:0]
			for _, e := range ids32 {
				ids = append(ids, int(e))
			}
			// The host waits for the layer's router (attention included)
			// to read its top-k back.
			if err := compute.Synchronize(ctx); err != nil {
				return Row{}, rotary.Stats{}, err
			}
			if err := rt.AcquireInto(ctx, l, ids, compute, &set); err != nil {
				return Row{}, rotary.Stats{}, err
			}
			if live != nil {
				if err := live.Record(l, ids32, nil); err != nil {
					return Row{}, rotary.Stats{}, err
				}
			}
			// This layer's experts, then the next layer's attention and
			// router, in one launch: the host next waits for both.
			if err := compute.Launch(kernel, one, expertsThenAttention...); err != nil {
				return Row{}, rotary.Stats{}, err
			}
			layers++
			// The next layer's experts are copied while this one computes,
			// behind this one's misses.
			if pf != nil {
				pf.Routed(l, ids, nil)
			}
			// Released before the kernel is done, with no event: the next
			// Acquire of any layer comes after the next Synchronize.
			if err := rt.Release(&set, nil); err != nil {
				return Row{}, rotary.Stats{}, err
			}
		}
	}
	if err := compute.Synchronize(ctx); err != nil {
		return Row{}, rotary.Stats{}, err
	}
	if pf != nil && pf.Err() != nil {
		return Row{}, rotary.Stats{}, pf.Err()
	}
	elapsed := dev.Now() - start
	busy := cfg.Attention + time.Duration(layers)*(cfg.Experts+cfg.Attention)
	if tok := cfg.Warmup; tok > 0 {
		busy -= cfg.Attention // the warm-up's last launch ran before start
	}
	s := rt.Stats()
	plan := rt.Plan()
	row := Row{Budget: b.String(), Policy: p.Name, Prefetch: p.Prefetch, VRAM: plan.VRAM}
	for _, l := range plan.Layers {
		row.Slots += float64(len(l.Pinned) + l.Slots)
		row.Pinned += float64(len(l.Pinned))
	}
	row.Slots /= float64(len(plan.Layers))
	row.Pinned /= float64(len(plan.Layers))
	tokens := float64(t.Tokens() - cfg.Warmup)
	row.Requests = s.VRAM.Hits + s.VRAM.Misses
	row.Hits = s.VRAM.Hits
	row.HitRate = s.VRAM.HitRate()
	row.TransfersPerToken = float64(s.VRAM.Misses+s.Prefetched) / tokens
	row.BytesPerToken = float64(s.VRAM.Bytes) / tokens
	row.PrefetchRecall, row.PrefetchPrecision = s.Prefetch.Recall(), s.Prefetch.Precision()
	row.PrefetchedPerToken = float64(s.Prefetched) / tokens
	row.UsefulPerToken = float64(s.Prefetch.Useful) / tokens
	row.WastedPerToken = float64(s.Prefetch.Wasted) / tokens
	row.TimePerToken = time.Duration(float64(elapsed) / tokens)
	row.StallPerToken = time.Duration(float64(s.StallTime) / tokens)
	row.IdlePerToken = time.Duration(float64(max(elapsed-busy, 0)) / tokens)
	if elapsed > 0 {
		row.TokensPerSecond = tokens / elapsed.Seconds()
	}
	return row, s, nil
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// String prints the report as a table, one row per budget and policy.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %d tokens", r.Model, r.Tokens)
	if r.Warmup > 0 {
		fmt.Fprintf(&b, " after %d of warm-up", r.Warmup)
	}
	fmt.Fprintf(&b, "; per MoE layer: attention %v, experts %v; copies %.1f GB/s pinned, %v each, %v per call\n",
		r.Attention, r.Experts, r.Timing.PinnedBandwidth/1e9, r.Timing.CopyLatency, r.Timing.CallOverhead)
	prefetch := slices.ContainsFunc(r.Rows, func(row Row) bool { return row.Prefetch != "" })
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	if prefetch {
		fmt.Fprintln(tw, "budget\tpolicy\tprefetch\tslots/layer\tpinned\thit rate\tcopies/token\trecall\tprecision\tMiB/token\tstall/token\tidle/token\ttime/token\ttokens/s\t")
	} else {
		fmt.Fprintln(tw, "budget\tpolicy\tslots/layer\tpinned\thit rate\tcopies/token\tMiB/token\tstall/token\tidle/token\ttime/token\ttokens/s\t")
	}
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t", row.Budget, row.Policy)
		if prefetch {
			fmt.Fprintf(tw, "%s\t", cmp.Or(row.Prefetch, "-"))
		}
		fmt.Fprintf(tw, "%.1f\t%.1f\t%.2f%%\t%.2f\t", row.Slots, row.Pinned, 100*row.HitRate, row.TransfersPerToken)
		if prefetch {
			if row.Prefetch != "" {
				fmt.Fprintf(tw, "%.1f%%\t%.1f%%\t", 100*row.PrefetchRecall, 100*row.PrefetchPrecision)
			} else {
				fmt.Fprint(tw, "-\t-\t")
			}
		}
		fmt.Fprintf(tw, "%.2f\t%v\t%v\t%v\t%.1f\t\n", row.BytesPerToken/(1<<20), row.StallPerToken.Round(time.Microsecond), row.IdlePerToken.Round(time.Microsecond),
			row.TimePerToken.Round(time.Microsecond), row.TokensPerSecond)
	}
	tw.Flush()
	return b.String()
}

// hotSetOf returns, for each layer of plan, its most selected experts in
// prof, as many as the layer has pinned.
func hotSetOf(plan *rotary.Plan, prof *profile.Profile) *profile.HotSet {
	h := &profile.HotSet{Mode: profile.PerLayer, Layers: make([]profile.LayerHotSet, len(prof.Layers))}
	for _, lp := range plan.Layers {
		ranked := prof.Layers[lp.Layer].Ranked()
		h.Layers[lp.Layer].Experts = ranked[:min(len(lp.Pinned), len(ranked))]
	}
	return h
}

// modelName names a model in reports: its name, else its architecture.
func modelName(m *experts.Model) string {
	if m.Params.Name != "" {
		return m.Params.Name
	}
	return m.Arch
}
