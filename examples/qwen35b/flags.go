package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/rotary-moe/rotary/examples/internal/cli"
	"github.com/rotary-moe/rotary/rotary/engine"

	"github.com/rotary-moe/rotary/profile/chart"
)

// config is what the flags ask for.
type config struct {
	model      string
	prompt     string
	promptSet  bool // -prompt was given, even empty
	promptFile string
	n          int
	chat       bool
	think      bool

	temp, topP, minP, repeatPenalty float64
	topK                            int
	seed                            uint64
	ctx                             int
	ctxSet                          bool

	vram, hostMem  cli.Size
	device         cli.Device
	threads        int
	prefetch       string
	prefetchBudget cli.Size

	trace, profile, heatmap, curves, hot string
	json, verbose                        bool
}

// defaultHostMem is the pinned host budget for a model given with -model.
const defaultHostMem = 24 << 30

// parseFlags reads the command line. -h prints the usage on stderr and
// returns flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{vram: cli.Size{Bytes: engine.DefaultVRAM}, hostMem: cli.Size{Bytes: defaultHostMem}}
	fs := flag.NewFlagSet("qwen35b", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported as one line by main
	fs.StringVar(&c.model, "model", "", "GGUF model `file` (qwen35moe or qwen3moe; default: a tiny synthetic qwen35moe model written to the user cache folder)")
	fs.StringVar(&c.prompt, "prompt", "", "prompt `text` (default: "+fmt.Sprintf("%q", defaultPrompt)+")")
	fs.StringVar(&c.promptFile, "prompt-file", "", "read the prompt from `file`")
	fs.IntVar(&c.n, "n", 48, "generate at most `N` tokens")
	fs.BoolVar(&c.chat, "chat", false, "wrap the prompt in the model's chat template as a user message")
	fs.BoolVar(&c.think, "think", false, "with -chat, let the model reason in a <think> block first (Qwen templates)")
	fs.Float64Var(&c.temp, "temp", 0.8, "sampling temperature (0: greedy)")
	fs.IntVar(&c.topK, "top-k", 40, "keep the `K` most likely tokens (0: all)")
	fs.Float64Var(&c.topP, "top-p", 0.95, "keep the most likely tokens up to this probability mass (1: all)")
	fs.Float64Var(&c.minP, "min-p", 0.05, "drop tokens less likely than this times the most likely (0: none)")
	fs.Float64Var(&c.repeatPenalty, "repeat-penalty", 1, "penalty for tokens of the last 64 (1: none)")
	fs.Uint64Var(&c.seed, "seed", 0, "sampling seed: the same seed gives the same text")
	fs.IntVar(&c.ctx, "ctx", 4096, "context `size` in tokens (prompt and generation; capped at the model's)")
	fs.Var(&c.vram, "vram", "GPU memory budget `SIZE`, e.g. 16GiB or 500MB (default 16 GiB; for the default model, room for half its experts)")
	fs.Var(&c.hostMem, "host-mem", "pinned host memory budget `SIZE` for expert copies; at least all experts: the file's mapping serves them (default 24 GiB; for the default model, three quarters of its experts)")
	fs.StringVar(&c.device.Backend, "backend", "auto", cli.BackendUsage)
	fs.StringVar(&c.device.Name, "device", "0", cli.DeviceUsage)
	fs.StringVar(&c.device.Residency, "residency", "", cli.ResidencyUsage)
	fs.IntVar(&c.threads, "threads", 0, "CPU threads of the forward pass (0: one per CPU)")
	fs.StringVar(&c.prefetch, "prefetch", "auto", "copy the experts the next layer is likely to use while a layer computes: off, transition (learned from the -hot profile's cross-layer counts) or auto (transition when the -hot profile has them)")
	fs.Var(&c.prefetchBudget, "prefetch-budget", "bound the bytes prefetched per token to `SIZE` (default: no bound but the next layer's top-k)")
	fs.StringVar(&c.trace, "trace", "", "write the routing (layer, token, experts, weights) to this trace `file` (JSON lines; binary if it ends in .bin)")
	fs.StringVar(&c.profile, "profile", "", "write the router profile of the run to this JSON `file`")
	fs.StringVar(&c.heatmap, "heatmap", "", "write the layers × experts heatmap of the run to this PNG `file`")
	fs.StringVar(&c.curves, "curves", "", "write the per-layer expert popularity curves of the run to this PNG `file`")
	fs.StringVar(&c.hot, "hot", "", "pin in VRAM the hot experts of this router profile `file` (from -profile on the same model)")
	fs.BoolVar(&c.json, "json", false, "print one JSON object (tokens, text, stats) on stdout at the end; everything else goes to stderr")
	fs.BoolVar(&c.verbose, "v", false, "explain the choices made, print the residency plan and the runtime's debug log")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stderr, fs)
			return nil, err
		}
		return nil, cli.Usagef("%v", err)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "prompt":
			c.promptSet = true
		case "ctx":
			c.ctxSet = true
		}
	})
	switch {
	case fs.NArg() > 0:
		return nil, cli.Usagef("unexpected argument %q: the model is given with -model", fs.Arg(0))
	case c.promptSet && c.promptFile != "":
		return nil, cli.Usagef("-prompt and -prompt-file are exclusive")
	case c.n < 0:
		return nil, cli.Usagef("-n %d: want 0 or more", c.n)
	case c.ctx < 1:
		return nil, cli.Usagef("-ctx %d: want at least 1", c.ctx)
	case c.threads < 0:
		return nil, cli.Usagef("-threads %d: want 0 or more", c.threads)
	case c.think && !c.chat:
		return nil, cli.Usagef("-think needs -chat")
	}
	if err := c.device.Check(); err != nil {
		return nil, err
	}
	switch c.prefetch {
	case "auto", "off", "transition":
	default:
		return nil, cli.Usagef("-prefetch %q: want auto, off or transition", c.prefetch)
	}
	for flag, path := range map[string]string{"-heatmap": c.heatmap, "-curves": c.curves} {
		if path == "" {
			continue
		}
		if _, err := chart.FormatOf(path); err != nil {
			return nil, cli.Usagef("%s: %v", flag, err)
		}
	}
	return c, nil
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, strings.TrimLeft(usageHeader, "\n"))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

const usageHeader = `
usage: qwen35b [flags]

Generates text with a Qwen MoE model whose experts rotate through a VRAM
budget (rotary), then prints tokens/s and the experts' hit rates. Without
-model it runs a tiny synthetic model, written once to the user cache folder.

Memory: besides -vram and -host-mem, the process holds the non-expert
weights (read through the file's mapping, so they count in its resident set
as page cache the kernel can take back) and the sequence state (-ctx). With
-backend host the card is emulated in host memory, so the -vram budget is
host memory too (and with -backend cuda -device emulated): expect about -vram + -host-mem + the non-expert weights.
Experts copied into the pinned host tier release their pages of the mapping.
Ctrl-C or SIGTERM stops after the current token and writes every output.

flags:
`
