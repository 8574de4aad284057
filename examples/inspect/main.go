// Command inspect prints what rotary sees in a GGUF model: architecture,
// hyper-parameters, tensors by type, the bytes of the routed experts layer
// by layer, the bytes that stay resident, and how many experts a GPU memory
// budget holds once those are loaded.
//
//	go run ./examples/inspect [-vram 16GiB] [MODEL.gguf]
//	go run ./examples/inspect -synth PRESET [-o PATH] [-vram SIZE]
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
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rotary-moe/rotary/examples/internal/synthetic"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
)

// defaultPreset is what inspect shows without a model.
const defaultPreset = "qwen35moe-tiny"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "inspect:", err)
		os.Exit(1)
	}
}

// errUsage means bad flags or arguments; the flag package has printed why.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("inspect", flag.ContinueOnError)
	flags.SetOutput(stderr)
	vram := flags.String("vram", "16GiB", "GPU memory to plan for, e.g. 16GiB, 512MiB or 20GB")
	preset := flags.String("synth", "", "write this synthetic model first, one of: "+strings.Join(experts.Presets(), ", "))
	out := flags.String("o", "", "where -synth writes the model (default: the user cache folder)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: inspect [-vram SIZE] [MODEL.gguf]\n       inspect -synth PRESET [-o PATH] [-vram SIZE]")
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
	if flags.NArg() > 1 || flags.NArg() == 1 && (*preset != "" || *out != "") || *out != "" && *preset == "" {
		flags.Usage()
		return errUsage
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
		case *out != "":
			path, err = *out, synthetic.Write(ctx, *out, name, stderr)
		default:
			if path, err = synthetic.CachePath(name); err == nil {
				err = synthetic.Write(ctx, path, name, stderr)
			}
		}
		if err != nil {
			return err
		}
	}
	return inspect(stdout, path, budget)
}

func inspect(w io.Writer, path string, vram int64) error {
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
	var sizes []expertSize
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
		sizes = append(sizes, expertSize{bytes: el.ExpertBytes, count: el.NumExperts})
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

	fmt.Fprintf(w, "\n%s of VRAM, %s", rotary.FormatSize(vram), fit(vram, resident, total, count, sizes))
	fmt.Fprintln(w, "(KV cache, activations and CUDA buffers come on top of the weights)")
	return nil
}

// expertSize is the size of one expert of a layer and the layer's expert
// count.
type expertSize struct {
	bytes int64
	count int
}

// fit describes how many experts a VRAM budget holds after the non-expert
// weights: at most (smallest experts first) and as the same number in every
// layer.
func fit(vram, resident, total int64, count int, layers []expertSize) string {
	left := vram - resident
	switch {
	case left < 0:
		return fmt.Sprintf("too little for the non-expert weights alone (%s)\n", rotary.FormatSize(resident))
	case left >= total:
		return fmt.Sprintf("holds the non-expert weights and all %d experts, %s to spare\n", count, rotary.FormatSize(left-total))
	}
	bySize := slices.Clone(layers)
	slices.SortFunc(bySize, func(a, b expertSize) int { return int(a.bytes - b.bytes) })
	most, budget := 0, left
	for _, l := range bySize {
		n := min(int64(l.count), budget/max(l.bytes, 1))
		most += int(n)
		budget -= n * l.bytes
	}
	var perLayerSet int64 // bytes of one expert in every layer
	maxPerLayer := count
	for _, l := range layers {
		perLayerSet += l.bytes
		maxPerLayer = min(maxPerLayer, l.count)
	}
	perLayer := min(left/max(perLayerSet, 1), int64(maxPerLayer))
	return fmt.Sprintf("after the non-expert weights (%s), %s for experts:\n"+
		"  holds %d of %d experts (%.1f%%) taking the smallest first,\n"+
		"  or %d per layer in every layer (%.1f%%)\n",
		rotary.FormatSize(resident), rotary.FormatSize(left),
		most, count, 100*float64(most)/float64(count),
		perLayer, 100*float64(perLayer)*float64(len(layers))/float64(count))
}
