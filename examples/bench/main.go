// Command bench prints the table rotary is compared with llama.cpp's
// --n-cpu-moe by: for each VRAM budget, prefill and decode tokens/s, the
// memory used, the experts' hit rate in VRAM and in pinned host memory, the
// bytes copied over PCIe per decoded token and the time the GPU waited for
// them, as medians of several runs.
//
//	go run ./examples/bench
//	go run ./examples/bench -model qwen3moe-30b-a3b.gguf -budgets 6GiB,10GiB,14GiB,all -backend cuda
//	go run ./examples/bench -model M.gguf -routing-trace trace.jsonl -json
//
// Without -model it runs the tiny synthetic model qwen35b uses, at a budget
// that holds half its experts and one that holds them all. Each run opens a
// fresh engine (so every run starts from the same cold slots and warm host
// tier), prefills -prompt tokens and decodes -gen more greedily; the table
// holds each column's median over -runs runs.
//
// Synthetic models route almost uniformly, real ones do not: -routing-trace
// replays the expert choices of a routing trace (a format package profile
// reads, e.g. one recorded by qwen35b -trace, or made by rotary/sim's
// SyntheticTrace) in place of the model's router, token t using the trace's
// token t modulo its length. The header says which routing ran.
//
// -backend and -device choose where the forward pass runs, as for qwen35b:
// a GPU, the GPU backend on the CPU's emulator (-device emulated: slow, for
// tests), or the CPU with rotary on an emulated card. On a GPU each budget
// runs with residency decided on the host and on the device (-residency),
// one row each, so that the two compare side by side.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/examples/internal/cli"
	"github.com/rotary-moe/rotary/examples/internal/interrupt"
	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
)

func main() {
	ctx, stop := interrupt.Context(context.Background())
	code := command(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command runs the program and turns its error into one line on stderr and
// an exit status: 0, 1 for a failure, 2 for a bad command line, 130 or 143
// when SIGINT or SIGTERM stopped it.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	if code := interrupt.ExitCode(ctx); code != 0 {
		fmt.Fprintln(stderr, "bench:", interrupt.Cause(ctx))
		return code
	}
	return cli.Exit(stderr, "bench", err)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	path := c.model
	if path == "" {
		if path, err = synthetic.Cached(ctx, synthetic.DefaultPreset, stderr); err != nil {
			return err
		}
	}
	m, err := experts.OpenModel(path)
	if err != nil {
		return err
	}
	defer m.Close()
	positions, err := c.fitContext(m.Params.ContextLength)
	if err != nil {
		return err
	}

	var replay *replayer
	routing := "the model's own"
	if c.trace != "" {
		t, err := profile.OpenTrace(ctx, c.trace)
		if err != nil {
			return fmt.Errorf("-routing-trace: %w", err)
		}
		if replay, err = newReplayer(t, m); err != nil {
			return fmt.Errorf("-routing-trace %s: %w", c.trace, err)
		}
		routing = "replayed from " + c.trace
	}

	dev, err := c.device.OpenGPU(ctx, stderr) // auto without a GPU says why
	if err != nil {
		return err
	}
	if dev != nil {
		defer dev.Close()
	}
	onDevice := dev != nil || c.device.EmulatedGPU()
	budgets := c.resolveBudgets(m, positions, onDevice)
	if c.device.EmulatedGPU() {
		if dev, err = cuda.NewHost(cuda.WithCapacity(slices.Max(budgets))); err != nil {
			return err
		}
		defer dev.Close()
	}

	residencies, err := c.residenciesOn(onDevice)
	if err != nil {
		return err
	}
	r := &report{
		Model: m.File.Path(), Backend: backendName(dev), Routing: routing,
		Prompt: c.prompt, Gen: c.gen, Runs: c.runs, Budgets: len(budgets) * len(residencies),
	}
	b := &bench{c: c, m: m, dev: dev, positions: positions, replay: replay}
	err = b.measure(ctx, budgets, residencies, r)
	if len(r.Rows) == 0 {
		return err
	}
	// A budget that failed, or a signal (run.sh's time limit), still leaves
	// the rows measured before it.
	return errors.Join(err, r.write(stdout, c.json))
}

// measure appends a row to r for each budget and residency, in order,
// until one fails.
func (b *bench) measure(ctx context.Context, budgets []int64, residencies []engine.Residency, r *report) error {
	for _, budget := range budgets {
		for _, res := range residencies {
			row, err := b.budget(ctx, budget, res)
			if err != nil {
				return fmt.Errorf("budget %s, %s residency: %w", rotary.FormatSize(budget), res, err)
			}
			r.Rows = append(r.Rows, row)
		}
	}
	return nil
}

// backendName says where the forward pass ran.
func backendName(dev cuda.Device) string {
	switch {
	case dev == nil:
		return "host (CPU forward pass, rotary on an emulated card)"
	case dev.Info().Kind == cuda.KindHost:
		return "cuda on the emulator (-device emulated)"
	}
	return "cuda on " + dev.Info().Name
}

// bench runs the engine at one budget after another.
type bench struct {
	c         *config
	m         *experts.Model
	dev       cuda.Device // nil: the CPU backend
	positions int
	replay    *replayer
}

// budget runs -runs runs at one VRAM budget and returns their medians.
func (b *bench) budget(ctx context.Context, vram int64, res engine.Residency) (row, error) {
	var runs []row
	for range b.c.runs {
		r, err := b.once(ctx, vram, res)
		if err != nil {
			return row{}, err
		}
		runs = append(runs, r)
	}
	return medianRow(runs), nil
}

// once opens a fresh engine at vram, prefills and decodes.
func (b *bench) once(ctx context.Context, vram int64, res engine.Residency) (r row, err error) {
	opts := []engine.Option{engine.WithVRAM(vram), engine.WithPositions(b.positions)}
	if b.dev != nil {
		opts = append(opts, engine.WithResidency(res))
	}
	if b.c.hostMem.Given {
		opts = append(opts, engine.WithHostBudget(b.c.hostMem.Bytes))
	}
	if b.dev != nil {
		opts = append(opts, engine.WithDevice(b.dev))
	}
	if b.replay != nil {
		opts = append(opts, engine.WithModelOptions(model.WithRoutingReplay(b.replay.replay)))
	}
	e, err := engine.New(ctx, b.m, opts...)
	if err != nil {
		return row{}, err
	}
	defer func() { err = errors.Join(err, e.Close()) }()
	if err := e.Preload(ctx, nil); err != nil {
		return row{}, err
	}
	plan := e.Runtime().Plan()
	r = row{
		Budget: vram, Residency: res.String(), VRAM: plan.VRAM - plan.Unused, Pinned: plan.Host.Bytes,
		Slots: plan.Slots, Experts: plan.TotalExpert,
	}

	net := e.Net()
	s := net.NewState(b.positions)
	prompt := promptTokens(b.c.prompt, net.VocabSize(), b.c.seed)
	start := time.Now()
	logits, err := net.Forward(ctx, s, prompt, model.LastLogits)
	if err != nil {
		return row{}, err
	}
	r.PrefillTokS = float64(len(prompt)) / time.Since(start).Seconds()

	start, before := time.Now(), e.Stats()
	for range b.c.gen {
		if logits, err = net.Forward(ctx, s, []int32{argmax(logits)}, model.LastLogits); err != nil {
			return row{}, err
		}
	}
	r.DecodeTokS = float64(b.c.gen) / time.Since(start).Seconds()
	d := e.Stats().Sub(before)
	r.VRAMHitRate = rate(d.VRAM)
	r.HostHitRate = rate(d.Host)
	r.PCIeBytesPerToken = float64(d.VRAM.Bytes) / float64(b.c.gen)
	r.StallPerToken = d.StallTime / time.Duration(b.c.gen)
	gen := float64(b.c.gen)
	r.LaunchesPerToken = float64(d.Calls.Launches) / gen
	r.SyncsPerToken = float64(d.Calls.Syncs) / gen
	r.CallsPerToken = float64(d.Calls.Total()) / gen
	return r, nil
}

// promptTokens are n token ids below vocab, the same for a seed.
func promptTokens(n, vocab int, seed uint64) []int32 {
	out := make([]int32, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = int32(x % uint64(vocab))
	}
	return out
}

// argmax is greedy decoding: the index of the largest logit.
func argmax(logits []float32) int32 {
	return int32(slices.Index(logits, slices.Max(logits)))
}

// rate is a tier's hit rate, -1 when nothing asked it.
func rate(t rotary.TierStats) float64 {
	if t.Hits+t.Misses == 0 {
		return -1
	}
	return float64(t.Hits) / float64(t.Hits+t.Misses)
}
