// Command qwen35b generates text with a Qwen mixture-of-experts model —
// Qwen3.5/3.6-35B-A3B (qwen35moe) or Qwen3-30B-A3B (qwen3moe) — whose experts
// do not fit in GPU memory: rotary keeps some in VRAM slots, the rest in
// pinned host memory or the mapped file, and every expert a token routes to
// comes through rotary.Acquire. It streams the text, then prints prefill and
// decode tokens/s, the hit rate of each tier, the bytes moved and the time
// spent waiting for experts.
//
//	go run ./examples/qwen35b
//	go run ./examples/qwen35b -model Qwen3.6-35B-A3B-Q4_K_M.gguf -chat -prompt "Why is the sky blue?" -vram 16GiB
//	go run ./examples/qwen35b -prompt-file F -profile out.json -heatmap out.png
//	go run ./examples/qwen35b -hot out.json -trace run.jsonl -json
//
// Without -model it runs a tiny synthetic qwen35moe model, written once to
// the user cache folder, with budgets that hold half its experts in VRAM.
//
// -backend cuda runs the forward pass on a GPU (rotary/model/gpu), the
// experts rotated by rotary in its VRAM and streamed on a copy stream; the
// -vram budget is capped at the card's free memory. -backend cuda -device
// emulated runs the same CUDA C on the CPU through package cuda's emulator
// (slow: for tests). -backend host runs the forward pass on the CPU
// (rotary/model/cpu) with rotary on the host backend of package cuda, a
// card of the -vram budget emulated in host memory, so expert rotation runs
// and is measured exactly as it would be planned for that card. -backend
// auto takes cuda when a GPU opens, else host.
//
// On a GPU, -residency device (the default) decides which experts the
// slots hold on the GPU itself (rotary/device): a resolve kernel maps each
// layer's routed experts to slots and a fill kernel copies the misses from
// the registered model file, so a decode step waits for the GPU only for
// its logits. -residency host decides on the host with rotary.Acquire,
// reading each layer's routing back; it is what -prefetch needs.
//
// -trace records the routing in profile's trace format (rotary's simulator
// and examples/heatmap read it); -profile, -heatmap and -curves record a
// router profile of the run and draw it; -hot pins the hot experts of such a
// profile in VRAM. Every output is checked before any work (never one of
// the inputs) and written complete or not at all. Ctrl-C or SIGTERM stops
// after the current token and still writes the stats and every output,
// the JSON marked interrupted; the exit status is then 130 or 143.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/examples/internal/cli"
	"github.com/rotary-moe/rotary/examples/internal/interrupt"
	"github.com/rotary-moe/rotary/examples/internal/outfile"
	"github.com/rotary-moe/rotary/examples/internal/progress"
	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/internal/atomicfile"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/profile/chart"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/chat"
	"github.com/rotary-moe/rotary/rotary/model/sample"
	"github.com/rotary-moe/rotary/rotary/model/tokenizer"
)

func main() {
	ctx, stop := interrupt.Context(context.Background())
	code := command(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command runs the program and turns its error into one line on stderr and an
// exit status: 0, 1 for a failure, 2 for a bad command line, 130 or 143
// when SIGINT or SIGTERM stopped it (after writing what it had gathered).
func command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	if code := interrupt.ExitCode(ctx); code != 0 && (err == nil || errors.Is(err, context.Canceled)) {
		msg := interrupt.Cause(ctx).Error()
		if err == nil {
			msg += ": stopped after the current token; the outputs hold the run so far"
		}
		fmt.Fprintln(stderr, "qwen35b:", msg)
		return code
	}
	// One line: joined errors (every bad output) are separated by "; ".
	return cli.Exit(stderr, "qwen35b", err)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	human := stdout // the text and the stats; stdout is the JSON's alone with -json
	if c.json {
		human = stderr
	}
	log := slog.New(slog.DiscardHandler)
	if c.verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	smp, err := sample.New(sample.Temperature(float32(c.temp)), sample.TopK(c.topK), sample.TopP(float32(c.topP)),
		sample.MinP(float32(c.minP)), sample.RepeatPenalty(float32(c.repeatPenalty)), sample.Seed(c.seed))
	if err != nil {
		return cli.Usagef("%v", err)
	}
	text, err := promptText(c)
	if err != nil {
		return err
	}

	// Every output is checked before any work, against every input.
	path := c.model
	if path == "" {
		if path, err = synthetic.CachePath(defaultPreset); err != nil {
			return err
		}
	}
	if err := outfile.Check([]outfile.Output{{Flag: "-trace", Path: c.trace}, {Flag: "-profile", Path: c.profile},
		{Flag: "-heatmap", Path: c.heatmap}, {Flag: "-curves", Path: c.curves}}, path, c.hot, c.promptFile); err != nil {
		return err
	}
	if c.model == "" {
		if path, err = synthetic.Cached(ctx, defaultPreset, stderr); err != nil {
			return err
		}
	}
	m, err := experts.OpenModel(path)
	if err != nil {
		return err
	}
	defer m.Close()
	id := engine.ModelID(m)
	positions := min(c.ctx, m.Params.ContextLength)
	if positions < c.ctx && c.ctxSet {
		fmt.Fprintf(stderr, "qwen35b: -ctx %d is capped at the model's context of %d tokens\n", c.ctx, positions)
	}

	var verbose io.Writer
	if c.verbose {
		verbose = stderr
	}
	dev, err := c.device.OpenGPU(ctx, verbose)
	if err != nil {
		return err
	}
	if dev != nil {
		defer dev.Close() // after the engine, which computes on it
	}
	onDevice := dev != nil || c.device.EmulatedGPU()

	// Budgets: the flags', or the default model's.
	vram, host := c.vram.Bytes, c.hostMem.Bytes
	if c.model == "" {
		dv, dh := defaultBudgets(m, engine.ReserveBytes(m.Params, positions, onDevice))
		if !c.vram.Given {
			vram = dv
		}
		if !c.hostMem.Given {
			host = dh
		}
	}
	opts := []engine.Option{engine.WithVRAM(vram), engine.WithPositions(positions),
		engine.WithThreads(c.threads), engine.WithLogger(log)}
	if c.device.EmulatedGPU() {
		if dev, err = cuda.NewHost(cuda.WithCapacity(vram), cuda.WithLogger(log)); err != nil {
			return err
		}
		defer dev.Close()
	}
	if dev != nil {
		opts = append(opts, engine.WithDevice(dev))
	}
	var hot *profile.Profile
	if c.hot != "" {
		if hot, err = profile.LoadFor(c.hot, id); err != nil {
			return fmt.Errorf("-hot: %w", err)
		}
		opts = append(opts, engine.WithHotProfile(hot, hotFraction))
	}
	pf, err := prefetcher(c, hot, log)
	if err != nil {
		return err
	}
	if pf != nil {
		opts = append(opts, engine.WithPrefetch(pf.open))
	}
	if c.verbose {
		fmt.Fprintf(stderr, "prefetch: %s\n", pf)
	}
	keepHost := ""
	if pf != nil {
		keepHost = "-prefetch " + c.prefetch
	}
	residency, err := c.device.ResidencyOn(onDevice, keepHost)
	if err != nil {
		return err
	}
	opts = append(opts, engine.WithResidency(residency))
	// Residency on the device copies misses from the registered file: the
	// default model's host LRU budget would not do.
	if c.hostMem.Given || residency == engine.ResidencyHost {
		opts = append(opts, engine.WithHostBudget(host))
	}

	rec, tw, traceFile, err := routingSinks(c, id)
	if err != nil {
		return err
	}
	if traceFile != nil {
		defer traceFile.Close() // a run that fails leaves the old trace, if any
	}
	routes := engine.NewRoutes(id, rec, tw)
	prefill := &prefillProgress{moeLayers: len(m.MoELayers())}
	// On the device the hook sees each step's routing once the step has
	// run (model.RoutingLogger): the step still waits only for its logits.
	opts = append(opts, engine.WithModelOptions(model.WithRoutingHook(func(layer, pos int, rt model.Routing) {
		routes.Hook(layer, pos, rt)
		prefill.hook(rt)
	})))

	e, err := engine.New(ctx, m, opts...)
	if err != nil {
		return budgetHint(err, m, positions, onDevice)
	}
	defer e.Close()
	prompt, err := encodePrompt(c, m, e.Tokenizer(), text)
	if err != nil {
		return err
	}
	if len(prompt) >= positions {
		return fmt.Errorf("the prompt's %d tokens leave no room in a context of %d (-ctx)", len(prompt), positions)
	}
	plan := e.Runtime().Plan()
	if e.OnGPU() {
		budget, free := e.VRAM()
		fmt.Fprintf(stderr, "backend: cuda on %s (%s free): VRAM budget %s, residency decided on the %s\n", dev.Info().Name,
			rotary.FormatSize(free), rotary.FormatSize(budget), e.Residency())
	}
	if c.verbose {
		where := fmt.Sprintf("%d CPU threads", e.Threads())
		if e.OnGPU() {
			where = "the GPU"
		}
		fmt.Fprintf(stderr, "forward pass: %s, micro-batch %s, state and activations reserve %s\n%s",
			where, batchString(e.MaxBatch()), rotary.FormatSize(e.Reserve()), plan)
		if h := e.HotSet(); h != nil {
			pinned := 0
			for _, l := range h.Layers {
				pinned += len(l.Experts)
			}
			fmt.Fprintf(stderr, "hot set from %s: %d experts pinned (%s), %.1f%% of the profile's selections\n",
				c.hot, pinned, rotary.FormatSize(h.Bytes), 100*h.HitRate)
		}
	}
	bar := progress.New(stderr, "loading "+filepath.Base(path))
	err = e.Preload(ctx, bar.Update)
	bar.Finish()
	if err != nil {
		return err
	}
	describePlan(human, path, id, plan)

	if !c.chat {
		fmt.Fprint(human, text)
	}
	out := human
	if f, ok := human.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		out = newTerminalText(human)
	}
	prefill.start(stderr, len(prompt))
	g, err := e.GenerateTokens(ctx, prompt, c.n, engine.WithSampler(smp), engine.WithRoutes(routes),
		engine.WithPrefilled(prefill.finish), engine.WithStream(func(text []byte) error {
			_, err := out.Write(text)
			return err
		}))
	if tt, ok := out.(*terminalText); ok && err == nil {
		err = tt.Flush()
	}
	if err != nil {
		return err
	}
	total := e.Stats()
	// An interrupted run reports and writes what it gathered, like any.
	fmt.Fprintln(human)
	errs := []error{report(human, g, total, plan.Host.Mode)}
	if err := pf.err(); err != nil {
		// Generation went on without it.
		fmt.Fprintf(human, "prefetch turned off during the run: %v\n", err)
	}
	if rec != nil {
		errs = append(errs, writeProfile(human, c, rec.Profile()))
	}
	if tw != nil {
		if err := traceFile.Commit(); err != nil {
			errs = append(errs, fmt.Errorf("-trace: %w", err))
		} else {
			fmt.Fprintln(human, "wrote", c.trace)
		}
	}
	if c.json {
		errs = append(errs, writeJSON(stdout, newJSONResult(path, id, plan, g, total)))
	}
	return errors.Join(errs...)
}

// budgetHint adds to a budget too small the flag that changes it: the
// least -vram, and what of it -ctx decides; the least -host-mem, and the
// size from which the file's mapping serves the experts instead.
func budgetHint(err error, m *experts.Model, positions int, onDevice bool) error {
	var be *rotary.BudgetError
	if !errors.As(err, &be) || be.Least == 0 {
		return err
	}
	if be.Budget == "host" {
		return fmt.Errorf("%w: -host-mem sets it; from %s (every expert) the file's mapping serves the experts instead",
			err, rotary.FormatSize(m.TotalExpertBytes()))
	}
	msg := fmt.Sprintf("-vram sets it; the sequence state of -ctx %d takes %s of it, a smaller -ctx less",
		positions, rotary.FormatSize(engine.StateBytes(m.Params, positions)))
	if onDevice {
		msg += fmt.Sprintf("; the activations of a micro-batch %s", rotary.FormatSize(engine.ReserveBytes(m.Params, positions, true)-engine.StateBytes(m.Params, positions)))
	}
	return fmt.Errorf("%w: %s", err, msg)
}

// routingSinks creates what the flags ask the routing to be recorded in:
// a profile recorder (-profile, -heatmap, -curves) and a trace (-trace).
func routingSinks(c *config, id profile.ModelID) (*profile.Recorder, *profile.TraceWriter, *atomicfile.File, error) {
	var rec *profile.Recorder
	if c.profile != "" || c.heatmap != "" || c.curves != "" {
		var err error
		if rec, err = profile.NewRecorder(id, profile.WithWorkload(workload(c)), profile.WithTransitions()); err != nil {
			return nil, nil, nil, err
		}
	}
	if c.trace == "" {
		return rec, nil, nil, nil
	}
	f, err := atomicfile.Create(c.trace)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-trace: %w", err)
	}
	enc := profile.JSONL
	if strings.HasSuffix(c.trace, ".bin") {
		enc = profile.Binary
	}
	tw, err := profile.NewTraceWriter(f, enc, id, profile.WithWeights())
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	return rec, tw, f, nil
}

// hotFraction is the share of the experts' VRAM that -hot pins; the rest
// stays dynamic slots for the experts the profile did not predict.
const hotFraction = 0.5

func batchString(n int) string {
	if n == 0 {
		return "unlimited by the slots"
	}
	return fmt.Sprintf("%d tokens (the union of their experts fits the slots)", n)
}

// promptText is the prompt as given.
func promptText(c *config) (string, error) {
	switch {
	case c.promptFile != "":
		b, err := os.ReadFile(c.promptFile)
		if err != nil {
			return "", fmt.Errorf("-prompt-file: %w", err)
		}
		if len(b) == 0 {
			return "", fmt.Errorf("-prompt-file %s is empty", c.promptFile)
		}
		return string(b), nil
	case c.promptSet:
		if c.prompt == "" {
			return "", cli.Usagef("-prompt is empty (without -prompt the default prompt runs)")
		}
		return c.prompt, nil
	}
	return defaultPrompt, nil
}

// encodePrompt tokenizes the prompt, wrapped in the chat template with -chat.
func encodePrompt(c *config, m *experts.Model, tok *tokenizer.Tokenizer, text string) ([]int32, error) {
	if c.chat {
		var err error
		if text, err = chat.Prompt([]chat.Message{{Role: chat.User, Content: text}}, thinking(m, c.think)); err != nil {
			return nil, err
		}
	}
	ids := tok.Encode(text)
	if len(ids) == 0 {
		return nil, errors.New("the prompt has no tokens")
	}
	return ids, nil
}

// thinking chooses what follows the assistant prefix, as the model's chat
// template does: the Qwen templates (they read enable_thinking) open or close
// a <think> block, a minimal ChatML template adds nothing.
func thinking(m *experts.Model, think bool) chat.Thinking {
	tmpl, _ := m.File.String("tokenizer.chat_template")
	switch {
	case !strings.Contains(tmpl, "enable_thinking"):
		return chat.NoThinkBlock
	case !think:
		return chat.ThinkingDisabled
	case m.Arch == experts.ArchQwen35MoE:
		return chat.ThinkingEnabled
	}
	return chat.NoThinkBlock // Qwen3 opens <think> itself
}

// workload labels the profile: the prompt file's name, or the prompt.
func workload(c *config) string {
	if c.promptFile != "" {
		return filepath.Base(c.promptFile)
	}
	if c.promptSet {
		return "prompt"
	}
	return "default prompt"
}

// writeProfile writes the -profile, -heatmap and -curves files: each one
// it can, whichever fails.
func writeProfile(w io.Writer, c *config, p *profile.Profile) error {
	return outfile.Write(w,
		outfile.Output{Flag: "-profile", Path: c.profile, Write: p.Encode},
		outfile.Output{Flag: "-heatmap", Path: c.heatmap, Write: chartWriter(c.heatmap, p, chart.WriteHeatmap)},
		outfile.Output{Flag: "-curves", Path: c.curves, Write: chartWriter(c.curves, p, chart.WriteCurves)})
}

// chartWriter draws p with draw in the image format path's name asks for
// (the flags were checked, so the name has one).
func chartWriter(path string, p *profile.Profile, draw func(io.Writer, *profile.Profile, ...chart.Option) error) func(io.Writer) error {
	return func(w io.Writer) error {
		format, err := chart.FormatOf(path)
		if err != nil {
			return err
		}
		return draw(w, p, chart.WithFormat(format))
	}
}
