package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rotary-moe/rotary/examples/internal/cli"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
)

// config is what the flags ask for.
type config struct {
	model, trace string
	budgets      []int64 // nil: the default; allResident for "all"
	hostMem      cli.Size
	prompt, gen  int
	promptGiven  bool // -prompt on the command line: not capped to the context
	runs         int
	seed         uint64
	device       cli.Device
	residencies  []engine.Residency // nil: the default (residencies)
	json         bool
}

// parseFlags reads the command line. -h prints the usage on stderr and
// returns flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.model, "model", "", "GGUF model `file` (default: the tiny synthetic model qwen35b runs)")
	budgets := fs.String("budgets", "", "VRAM budgets, comma-separated: sizes (6GiB, 500MB) or all (every expert resident) (default: half and all for the default model, 6GiB,10GiB,14GiB,all otherwise)")
	fs.Var(&c.hostMem, "host-mem", "pinned host memory budget `SIZE` for expert copies (default: the file's registered mapping serves every miss)")
	fs.IntVar(&c.prompt, "prompt", 512, "prompt `tokens` to prefill (the default at most the model's context less -gen)")
	fs.IntVar(&c.gen, "gen", 128, "`tokens` to decode after the prompt")
	fs.IntVar(&c.runs, "runs", 3, "runs per budget; the table holds medians")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the prompt's token ids")
	fs.StringVar(&c.device.Backend, "backend", "auto", cli.BackendUsage)
	fs.StringVar(&c.device.Name, "device", "0", cli.DeviceUsage)
	residency := fs.String("residency", "", "where the forward pass on a GPU decides residency: host, device, or both comma-separated, each budget run with each (default host,device on a GPU, side by side)")
	fs.StringVar(&c.trace, "routing-trace", "", "replay the expert choices of this routing trace `file` in place of the model's router")
	fs.BoolVar(&c.json, "json", false, "print one JSON object with the rows instead of the table")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usageHeader)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, cli.Usagef("%v", err)
	}
	fs.Visit(func(f *flag.Flag) { c.promptGiven = c.promptGiven || f.Name == "prompt" })
	switch {
	case fs.NArg() > 0:
		return nil, cli.Usagef("unexpected argument %q: the model is given with -model", fs.Arg(0))
	case c.prompt < 1:
		return nil, cli.Usagef("-prompt %d: want at least 1", c.prompt)
	case c.gen < 1:
		return nil, cli.Usagef("-gen %d: want at least 1", c.gen)
	case c.runs < 1:
		return nil, cli.Usagef("-runs %d: want at least 1", c.runs)
	}
	if err := c.device.Check(); err != nil {
		return nil, err
	}
	var err error
	if c.budgets, err = parseBudgets(*budgets); err != nil {
		return nil, err
	}
	if *residency != "" {
		for _, f := range strings.Split(*residency, ",") {
			r, err := engine.ParseResidency(strings.TrimSpace(f))
			if err != nil {
				return nil, cli.Usagef("-residency: %q is neither host nor device", f)
			}
			if !slices.Contains(c.residencies, r) {
				c.residencies = append(c.residencies, r)
			}
		}
		if c.device.Backend == "host" && slices.Contains(c.residencies, engine.ResidencyDevice) {
			return nil, cli.Usagef("-residency device needs the forward pass on a GPU (-backend cuda or auto)")
		}
	}
	return c, nil
}

// residenciesOn are the residencies each budget runs with: -residency, by
// default host and device on a device; host on the CPU, where -residency
// device is an error.
func (c *config) residenciesOn(onDevice bool) ([]engine.Residency, error) {
	switch {
	case !onDevice && slices.Contains(c.residencies, engine.ResidencyDevice):
		return nil, cli.Usagef("-residency device: the forward pass runs on the CPU (no GPU opened)")
	case !onDevice:
		return []engine.Residency{engine.ResidencyHost}, nil
	case c.residencies == nil:
		return []engine.Residency{engine.ResidencyHost, engine.ResidencyDevice}, nil
	}
	return c.residencies, nil
}

const usageHeader = `usage: bench [flags]

Prints, per VRAM budget, prefill and decode tokens/s, the memory used, the
experts' hit rates in VRAM and pinned host memory, the bytes copied over
PCIe per decoded token and the time the GPU waited for them: medians of
-runs runs, each on a fresh engine. A failure or Ctrl-C still prints the
budgets measured before it.

  bench                                   the tiny synthetic model, half and all of its experts in VRAM
  bench -prompt 64 -gen 16 -runs 1        the same, in seconds
  bench -model qwen3moe-30b-a3b.gguf -budgets 6GiB,10GiB,14GiB,all -backend cuda
  bench -routing-trace trace.jsonl -json  replay recorded expert choices; one JSON object

flags:
`

// fitContext returns the positions a run holds, -prompt + -gen, after
// capping the default -prompt to a model's context of ctxLen positions.
func (c *config) fitContext(ctxLen int) (int, error) {
	if !c.promptGiven && c.prompt+c.gen > ctxLen && c.gen < ctxLen {
		c.prompt = ctxLen - c.gen
	}
	if c.prompt+c.gen > ctxLen {
		return 0, cli.Usagef("-prompt %d and -gen %d exceed the model's context of %d", c.prompt, c.gen, ctxLen)
	}
	return c.prompt + c.gen, nil
}

// allResident is "all" in -budgets: every expert has a slot.
const allResident = 0

// parseBudgets reads -budgets: sizes, allResident for "all", nil for the
// default.
func parseBudgets(spec string) ([]int64, error) {
	if spec == "" {
		return nil, nil
	}
	var out []int64
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "all" {
			out = append(out, allResident)
			continue
		}
		n, err := rotary.ParseSize(f)
		if err != nil || n <= 0 {
			return nil, cli.Usagef("-budgets: %q is neither a size nor all", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// resolveBudgets turns -budgets into byte counts for m; "all" holds every
// expert beside the non-expert weights and the reserve.
func (c *config) resolveBudgets(m *experts.Model, positions int, onDevice bool) []int64 {
	base := m.NonExpertBytes() + engine.ReserveBytes(m.Params, positions, onDevice)
	all := base + m.TotalExpertBytes()
	budgets := c.budgets
	switch {
	case budgets == nil && c.model == "":
		return []int64{base + m.TotalExpertBytes()/2, all}
	case budgets == nil:
		budgets = []int64{6 << 30, 10 << 30, 14 << 30, allResident}
	}
	out := slices.Clone(budgets)
	for i, b := range out {
		if b == allResident {
			out[i] = all
		}
	}
	return out
}
