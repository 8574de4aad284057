// Command inspect prints what rotary sees in a GGUF model: architecture,
// hyper-parameters, tensors by type, the bytes of the routed experts layer
// by layer, the bytes that stay resident, and the runtime's plan for a GPU
// memory budget (rotary.NewPlan: the dynamic slots of every layer, or why
// the budget is too small).
//
//	go run ./examples/inspect [-vram 16GiB] [-reserve SIZE] [MODEL.gguf]
//	go run ./examples/inspect -synth PRESET [-o PATH] [-vram SIZE] [-reserve SIZE]
//
// Without a model it inspects a tiny synthetic model that it writes to the
// user cache folder the first time. With -synth it writes the named
// synthetic preset (to -o, or the cache folder), reports the write speed,
// then inspects it; that is also how to produce the full-size synthetic
// models (about 20 GB).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rotary-moe/rotary/examples/internal/interrupt"
	"github.com/rotary-moe/rotary/examples/internal/outfile"
	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/rotary"
)

// defaultPreset is what inspect shows without a model: the model qwen35b
// runs without one.
const defaultPreset = synthetic.DefaultPreset

func main() {
	ctx, stop := interrupt.Context(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case interrupt.ExitCode(ctx) != 0:
		fmt.Fprintln(os.Stderr, "inspect:", interrupt.Cause(ctx))
		os.Exit(interrupt.ExitCode(ctx))
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "inspect:", err)
		os.Exit(1)
	}
}

// errUsage means bad flags or arguments; the usage and why have been
// printed.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("inspect", flag.ContinueOnError)
	flags.SetOutput(stderr)
	vram := flags.String("vram", "16GiB", "GPU memory to plan for, e.g. 16GiB, 512MiB or 20GB")
	reserve := flags.String("reserve", "0", "of that, GPU memory to leave for the KV cache, activations and buffers")
	preset := flags.String("synth", "", "write this synthetic model first, one of: "+strings.Join(synth.Presets(), ", "))
	out := flags.String("o", "", "where -synth writes the model (default: the user cache folder)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: inspect [-vram SIZE] [-reserve SIZE] [MODEL.gguf]\n       inspect -synth PRESET [-o PATH] [-vram SIZE] [-reserve SIZE]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	budget, err := rotary.ParseSize(*vram)
	if err != nil {
		return fmt.Errorf("-vram: %w", err)
	}
	reserved, err := rotary.ParseSize(*reserve)
	if err != nil {
		return fmt.Errorf("-reserve: %w", err)
	}
	var why string
	switch {
	case flags.NArg() > 1:
		why = fmt.Sprintf("one model at a time, got %d: %s", flags.NArg(), strings.Join(flags.Args(), " "))
	case flags.NArg() == 1 && *preset != "":
		why = "a model file and -synth are exclusive"
	case *out != "" && *preset == "":
		why = "-o names where -synth writes: it needs -synth"
	}
	if why != "" {
		fmt.Fprintln(stderr, "inspect:", why)
		flags.Usage()
		return errUsage
	}
	if err := outfile.Check([]outfile.Output{{Flag: "-o", Path: *out}}); err != nil {
		return err
	}

	path := flags.Arg(0)
	if path == "" {
		name := *preset
		if name == "" {
			name = defaultPreset
		}
		switch {
		case *preset == "": // the default model is written once
			path, err = synthetic.Cached(ctx, name, stderr)
		case *out != "": // the folder must exist, as for the other programs' outputs
			path, err = *out, synthetic.Write(ctx, *out, name, stderr)
		default:
			if path, err = synthetic.CachePath(name); err == nil {
				if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
					err = synthetic.Write(ctx, path, name, stderr)
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return inspect(stdout, path, budget, reserved)
}

func inspect(w io.Writer, path string, vram, reserve int64) error {
	m, err := experts.OpenModel(path)
	if err != nil {
		return err
	}
	defer m.Close()
	h := m.Params
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }

	row("file\t%s (%s, GGUF v%d)", path, rotary.FormatSize(m.File.Size()), m.File.Version())
	row("architecture\t%s %q", h.Arch, h.Name)
	layers := fmt.Sprintf("%d", h.NumLayers)
	if h.FullAttentionInterval > 1 {
		full := 0
		for l := range h.NumLayers {
			if h.IsFullAttention(l) {
				full++
			}
		}
		layers += fmt.Sprintf(" (%d gated attention, %d Gated DeltaNet: full attention every %d)", full, h.NumLayers-full, h.FullAttentionInterval)
	}
	if h.NumNextNLayers > 0 {
		layers += fmt.Sprintf(", of which %d next-token prediction", h.NumNextNLayers)
	}
	row("layers\t%s", layers)
	row("embedding\t%d, context %d, vocabulary %d", h.EmbeddingDim, h.ContextLength, h.VocabSize)
	rope := fmt.Sprintf("rope %d dims, base %g", h.RopeDims, h.RopeFreqBase)
	if h.RopeSections != [4]int{} {
		rope += fmt.Sprintf(", sections %v", h.RopeSections)
	}
	row("attention\t%d heads, %d KV heads, head dim %d/%d (key/value), %s", h.NumHeads, h.NumKVHeads, h.KeyDim, h.ValueDim, rope)
	if h.SSMInnerSize > 0 {
		row("Gated DeltaNet\tconv kernel %d, state %d, %d key heads, %d value heads, inner %d",
			h.SSMConvKernel, h.SSMStateSize, h.SSMGroupCount, h.SSMTimeStepRank, h.SSMInnerSize)
	}
	routed := fmt.Sprintf("%d per layer, %d used per token (%s), FFN %d", h.NumExperts, h.NumExpertsUsed, h.ExpertGatingFunc, h.ExpertFFNDim)
	if h.SharedExpertFFNDim > 0 {
		routed += fmt.Sprintf(", shared expert FFN %d", h.SharedExpertFFNDim)
	}
	row("experts\t%s", routed)
	row("RMS norm eps\t%g", h.RMSEps)
	if err := tw.Flush(); err != nil {
		return err
	}

	// Tensors by type.
	type typeTotal struct {
		count int
		bytes int64
	}
	byType := map[experts.Type]*typeTotal{}
	for _, t := range m.File.Tensors() {
		if byType[t.Type] == nil {
			byType[t.Type] = &typeTotal{}
		}
		byType[t.Type].count++
		byType[t.Type].bytes += t.Size
	}
	types := make([]experts.Type, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	slices.Sort(types)
	fmt.Fprintf(w, "\ntensors by type (%d tensors)\n", len(m.File.Tensors()))
	row("  type\tcount\tbytes")
	for _, t := range types {
		row("  %s\t%d\t%s", t, byType[t].count, rotary.FormatSize(byType[t].bytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// Routed experts layer by layer.
	fmt.Fprintf(w, "\nrouted experts by layer\n")
	row("  layer\tkind\texperts\tone expert\tparts\tall experts")
	count := 0
	for _, l := range m.MoELayers() {
		el, _ := m.Experts(l)
		var parts []string
		for _, p := range el.Parts {
			parts = append(parts, fmt.Sprintf("%s %s", p.Role, p.Type))
		}
		kind := "attention"
		if !h.IsFullAttention(l) {
			kind = "DeltaNet"
		}
		row("  %d\t%s\t%d\t%s\t%s\t%s", l, kind, el.NumExperts, rotary.FormatSize(el.ExpertBytes), strings.Join(parts, ", "),
			rotary.FormatSize(int64(el.NumExperts)*el.ExpertBytes))
		count += el.NumExperts
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	total, resident := m.TotalExpertBytes(), m.NonExpertBytes()
	fmt.Fprintln(w)
	row("routed experts\t%s in %d experts", rotary.FormatSize(total), count)
	row("non-expert\t%s (embeddings, attention, routers, shared experts, norms)", rotary.FormatSize(resident))
	if err := tw.Flush(); err != nil {
		return err
	}

	// The plan is the runtime's own: what rotary.Open would do with this
	// budget (the host tier as if unlimited).
	plan, err := rotary.NewPlan(m, rotary.WithVRAM(vram), rotary.WithReserve(reserve))
	var budgetErr *rotary.BudgetError
	switch {
	case errors.As(err, &budgetErr):
		fmt.Fprintf(w, "\n%s of VRAM does not hold the working set: %v\n", rotary.FormatSize(vram), err)
	case err != nil:
		return err
	default:
		fmt.Fprintf(w, "\nplan for %s of VRAM\n%s", rotary.FormatSize(vram), plan)
	}
	if reserve == 0 {
		fmt.Fprintln(w, "(no reserve: the KV cache, activations and CUDA buffers need room on top, see -reserve)")
	}
	return nil
}
