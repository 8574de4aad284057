package rotary

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"golang.org/x/sync/errgroup"
)

// SimConfig describes a simulation: the budgets and policies to compare and
// the model of time.
type SimConfig struct {
	// Budgets are the VRAM configurations to compare.
	Budgets []SimBudget
	// Policies are the policies to compare (default: DefaultSimPolicies).
	Policies []SimPolicy
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

// SimBudget is one VRAM configuration: Slots slots per layer (pinned and
// dynamic together), or a VRAM budget for the whole program.
type SimBudget struct {
	Slots int
	VRAM  int64
}

func (b SimBudget) String() string {
	if b.Slots > 0 {
		return fmt.Sprintf("%d slots", b.Slots)
	}
	return FormatSize(b.VRAM)
}

// SimPolicy is one policy compared in a simulation.
type SimPolicy struct {
	Name   string
	Policy Policy
	// Pinned pins the hot set (SimConfig.PinFraction of the budget) and
	// evicts the dynamic slots with Policy.
	Pinned bool
}

// DefaultSimPolicies are LRU, LFU, the profile's hot set pinned with LRU for
// the rest, and Belady's optimum for the trace, the bound.
func DefaultSimPolicies(t *profile.Trace) []SimPolicy {
	return []SimPolicy{
		{Name: "LRU", Policy: LRU},
		{Name: "LFU", Policy: LFU},
		{Name: "pinned+LRU", Policy: LRU, Pinned: true},
		{Name: "Belady", Policy: Belady(t)},
	}
}

// SimReport is a simulation's results, one row per budget and policy.
type SimReport struct {
	Model     string        `json:"model"`
	Tokens    int           `json:"tokens"` // counted, after Warmup
	Warmup    int           `json:"warmup_tokens"`
	Attention time.Duration `json:"attention_ns"`
	Experts   time.Duration `json:"experts_ns"`
	Timing    cuda.Timing   `json:"timing"`
	Rows      []SimRow      `json:"rows"`
}

// SimRow is one run: a budget and a policy.
type SimRow struct {
	Budget string `json:"budget"`
	Policy string `json:"policy"`
	// Slots is the mean number of slots per layer (pinned and dynamic),
	// Pinned the mean pinned.
	Slots  float64 `json:"slots"`
	Pinned float64 `json:"pinned"`
	// VRAM is the plan's budget.
	VRAM     int64   `json:"vram"`
	Requests uint64  `json:"requests"`
	Hits     uint64  `json:"hits"`
	HitRate  float64 `json:"hit_rate"`
	// BytesPerToken is what the copies moved per token.
	BytesPerToken float64 `json:"bytes_per_token"`
	// TimePerToken is the simulated time per token, StallPerToken the part
	// the compute stream waited for copies.
	TimePerToken    time.Duration `json:"time_per_token_ns"`
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
func Simulate(ctx context.Context, m *experts.Model, t *profile.Trace, cfg SimConfig) (*SimReport, error) {
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
		cfg.Policies = DefaultSimPolicies(t)
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
	rep := &SimReport{Model: modelName(m), Tokens: t.Tokens() - cfg.Warmup, Warmup: cfg.Warmup, Attention: cfg.Attention, Experts: cfg.Experts, Timing: timing}
	rep.Rows = make([]SimRow, len(cfg.Budgets)*len(cfg.Policies))
	g, gctx := errgroup.WithContext(ctx)
	if cfg.Parallel <= 0 {
		cfg.Parallel = runtime.GOMAXPROCS(0)
	}
	g.SetLimit(cfg.Parallel)
	for i, b := range cfg.Budgets {
		for j, p := range cfg.Policies {
			g.Go(func() error {
				row, err := simulate(gctx, m, t, &cfg, timing, b, p, prof)
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
	return synth.Shape{Name: id.Name, Arch: id.Arch, Layers: id.Layers, MoELayers: routedLayers(t),
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
func pinning(m *experts.Model, prof *profile.Profile, cfg *SimConfig, b SimBudget) []Option {
	if b.Slots <= 0 {
		return []Option{WithHotProfile(prof, cfg.PinFraction)}
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
	return []Option{WithHotSet(h), WithSlots(max(b.Slots-n, 1))}
}

func simulate(ctx context.Context, m *experts.Model, t *profile.Trace, cfg *SimConfig, timing cuda.Timing, b SimBudget, p SimPolicy, prof *profile.Profile) (SimRow, error) {
	opts := []Option{WithPolicy(p.Policy), WithReserve(cfg.Reserve), WithoutWarmup()}
	capacity := int64(1) << 50 // slots: as much as they need
	switch {
	case b.Slots > 0 && !p.Pinned:
		opts = append(opts, WithSlots(b.Slots))
	case b.Slots <= 0:
		opts = append(opts, WithVRAM(b.VRAM))
		capacity = b.VRAM
	}
	if p.Pinned {
		opts = append(opts, pinning(m, prof, cfg, b)...)
	}
	if cfg.HostBudget > 0 {
		opts = append(opts, WithHostBudget(cfg.HostBudget))
	}
	dev, err := cuda.NewHost(cuda.WithVirtualClock(), cuda.WithTiming(timing), cuda.WithoutData(), cuda.WithCapacity(capacity))
	if err != nil {
		return SimRow{}, err
	}
	defer dev.Close()
	rt, err := Open(ctx, m, dev, opts...)
	if err != nil {
		return SimRow{}, err
	}
	defer rt.Close()
	mod, err := dev.Load(ctx, simProgram)
	if err != nil {
		return SimRow{}, err
	}
	kernel, err := mod.Kernel("compute")
	if err != nil {
		return SimRow{}, err
	}
	compute, err := dev.NewStream()
	if err != nil {
		return SimRow{}, err
	}
	// Wait for the pinned experts, then measure from there.
	if err := dev.Synchronize(ctx); err != nil {
		return SimRow{}, err
	}
	rt.ResetStats()
	one := cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: 1}}
	attention := []cuda.Arg{cuda.I64(int64(cfg.Attention))}
	expertsThenAttention := []cuda.Arg{cuda.I64(int64(cfg.Experts + cfg.Attention))}
	start := dev.Now()
	if err := compute.Launch(kernel, one, attention...); err != nil {
		return SimRow{}, err
	}
	var ids32 []int32
	var ids []int
	var set Set
	routed := routedLayers(t)
	for tok := range t.Tokens() {
		if tok%1024 == 0 && ctx.Err() != nil {
			return SimRow{}, ctx.Err()
		}
		if tok == cfg.Warmup && tok > 0 {
			if err := compute.Synchronize(ctx); err != nil {
				return SimRow{}, err
			}
			rt.ResetStats()
			start = dev.Now()
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
				return SimRow{}, err
			}
			if err := rt.AcquireInto(ctx, l, ids, compute, &set); err != nil {
				return SimRow{}, err
			}
			// This layer's experts, then the next layer's attention and
			// router, in one launch: the host next waits for both.
			if err := compute.Launch(kernel, one, expertsThenAttention...); err != nil {
				return SimRow{}, err
			}
			// Released before the kernel is done, with no event: the next
			// Acquire of any layer comes after the next Synchronize.
			if err := rt.Release(&set, nil); err != nil {
				return SimRow{}, err
			}
		}
	}
	if err := compute.Synchronize(ctx); err != nil {
		return SimRow{}, err
	}
	elapsed := dev.Now() - start
	s := rt.Stats()
	plan := rt.Plan()
	row := SimRow{Budget: b.String(), Policy: p.Name, VRAM: plan.VRAM}
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
	row.BytesPerToken = float64(s.VRAM.Bytes) / tokens
	row.TimePerToken = time.Duration(float64(elapsed) / tokens)
	row.StallPerToken = time.Duration(float64(s.StallTime) / tokens)
	if elapsed > 0 {
		row.TokensPerSecond = tokens / elapsed.Seconds()
	}
	return row, nil
}

// routedLayers lists the layers the trace routes any token through.
func routedLayers(t *profile.Trace) []int {
	var out []int
	for l := range t.Model().Layers {
		for tok := range t.Tokens() {
			if t.Len(tok, l) > 0 {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// JSON returns the report as indented JSON.
func (r *SimReport) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// String prints the report as a table, one row per budget and policy.
func (r *SimReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %d tokens", r.Model, r.Tokens)
	if r.Warmup > 0 {
		fmt.Fprintf(&b, " after %d of warm-up", r.Warmup)
	}
	fmt.Fprintf(&b, "; per MoE layer: attention %v, experts %v; copies %.1f GB/s pinned, %v each, %v per call\n",
		r.Attention, r.Experts, r.Timing.PinnedBandwidth/1e9, r.Timing.CopyLatency, r.Timing.CallOverhead)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "budget\tpolicy\tslots/layer\tpinned\thit rate\tMiB/token\tstall/token\ttime/token\ttokens/s\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.2f%%\t%.2f\t%v\t%v\t%.1f\t\n", row.Budget, row.Policy, row.Slots, row.Pinned,
			100*row.HitRate, row.BytesPerToken/(1<<20), row.StallPerToken.Round(time.Microsecond), row.TimePerToken.Round(time.Microsecond), row.TokensPerSecond)
	}
	tw.Flush()
	return b.String()
}
