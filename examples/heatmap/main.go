// Command heatmap turns a recorded routing trace into a router profile and
// charts of it.
//
//	go run ./examples/heatmap -trace TRACE -profile out.json -heatmap out.png \
//	    [-curves curves.png] [-csv out.csv] [-sort popularity|id] [-scale linear|log] \
//	    [-phase prefill|decode] [-workload LABEL]
//
// TRACE is any format profile.OpenTrace reads: a rotary trace (JSON lines or
// binary), the DeepSeek-V2-Lite CSV directory or file, a Mixtral-8x7B routing
// JSONL file, or the granite JSON trace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rotary-moe/rotary/examples/internal/interrupt"
	"github.com/rotary-moe/rotary/examples/internal/outfile"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/profile/chart"
	"github.com/rotary-moe/rotary/rotary"
)

func main() {
	ctx, stop := interrupt.Context(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case interrupt.ExitCode(ctx) != 0:
		fmt.Fprintln(os.Stderr, "heatmap:", interrupt.Cause(ctx))
		os.Exit(interrupt.ExitCode(ctx))
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "heatmap:", err)
		os.Exit(1)
	}
}

// errUsage is a bad command line, which the flag package has explained.
var errUsage = errors.New("usage")

const usage = `usage: heatmap -trace TRACE [-profile P.json] [-heatmap H.png] [-curves C.png] [-csv P.csv] [flags]

Reads a routing trace (rotary's JSON lines or binary trace, the DeepSeek CSV
folder, the Mixtral or granite files), counts how often each layer picks each
expert (a router profile) and writes the profile, its charts and its numbers.
A trace cut off mid-record, as a killed writer leaves it, is read up to its
last complete record.

flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("heatmap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	tracePath := fs.String("trace", "", "routing trace to read (required)")
	profilePath := fs.String("profile", "", "write the profile (JSON) here")
	heatmapPath := fs.String("heatmap", "", "write the layers × experts heatmap (PNG) here")
	curvesPath := fs.String("curves", "", "write the per-layer popularity curves (PNG) here")
	csvPath := fs.String("csv", "", "write the numbers (CSV) here")
	sortBy := fs.String("sort", "id", "heatmap column order: id or popularity")
	scale := fs.String("scale", "linear", "heatmap colour scale: linear or log")
	phase := fs.String("phase", "", "keep only segments of this phase (prefill or decode)")
	workload := fs.String("workload", "", "workload label (default: the trace's file name)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q: the trace is given with -trace", fs.Arg(0))
	case *tracePath == "":
		return errors.New("-trace is required (run with -h for the flags)")
	case *profilePath == "" && *heatmapPath == "" && *curvesPath == "" && *csvPath == "":
		return errors.New("nothing to write: give -profile, -heatmap, -curves or -csv")
	}
	outputs := []outfile.Output{{Flag: "-profile", Path: *profilePath}, {Flag: "-heatmap", Path: *heatmapPath},
		{Flag: "-curves", Path: *curvesPath}, {Flag: "-csv", Path: *csvPath}}
	if err := outfile.Check(outputs, *tracePath); err != nil {
		return err
	}
	var chartOpts []chart.Option
	switch *sortBy {
	case "id":
		chartOpts = append(chartOpts, chart.SortBy(chart.ByID))
	case "popularity":
		chartOpts = append(chartOpts, chart.SortBy(chart.ByPopularity))
	default:
		return fmt.Errorf("-sort %q: want id or popularity", *sortBy)
	}
	switch *scale {
	case "linear":
		chartOpts = append(chartOpts, chart.WithScale(chart.Linear))
	case "log":
		chartOpts = append(chartOpts, chart.WithScale(chart.Log))
	default:
		return fmt.Errorf("-scale %q: want linear or log", *scale)
	}

	// The image format follows each file's extension; refuse others before
	// any work.
	formatOf := func(flag, path string) (chart.Option, error) {
		if path == "" {
			return nil, nil
		}
		format, err := chart.FormatOf(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		return chart.WithFormat(format), nil
	}
	heatmapFormat, err := formatOf("-heatmap", *heatmapPath)
	if err != nil {
		return err
	}
	curvesFormat, err := formatOf("-curves", *curvesPath)
	if err != nil {
		return err
	}
	chartOpts = append(chartOpts, heatmapFormat)

	tr, err := profile.OpenTrace(ctx, *tracePath)
	if err != nil {
		return err
	}
	if n := tr.Dropped(); n > 0 {
		fmt.Fprintf(stderr, "heatmap: %s ends in a cut-off record (its writer stopped mid-write): read up to it, dropped its %s\n",
			*tracePath, rotary.FormatSize(n))
	}
	if tr.Tokens() == 0 {
		return fmt.Errorf("%s: the trace has no tokens: nothing to profile or draw", *tracePath)
	}
	if *phase != "" {
		tr = tr.Subset(func(s profile.Segment) bool { return s.Phase == *phase })
		if tr.Tokens() == 0 {
			return fmt.Errorf("no tokens in %s segments", *phase)
		}
	}
	label := *workload
	if label == "" {
		label = strings.TrimSuffix(filepath.Base(filepath.Clean(*tracePath)), filepath.Ext(*tracePath))
		if *phase != "" {
			label += " " + *phase
		}
	}
	rec, err := profile.NewRecorder(tr.Model(), profile.WithWorkload(label))
	if err != nil {
		return err
	}
	if err := rec.RecordTrace(tr); err != nil {
		return err
	}
	p := rec.Profile()
	fmt.Fprintf(stdout, "%s: %d tokens, %d segments, %d layers × %d experts (top-%d)\n",
		p.Model, tr.Tokens(), len(tr.Segments()), p.Model.Layers, p.Model.Experts, p.Model.ExpertsUsed)

	// Every output that can be written is, whichever fails.
	outputs[0].Write = p.Encode
	outputs[1].Write = func(w io.Writer) error { return chart.WriteHeatmap(w, p, chartOpts...) }
	outputs[2].Write = func(w io.Writer) error { return chart.WriteCurves(w, p, curvesFormat) }
	outputs[3].Write = func(w io.Writer) error { return profile.WriteCSV(w, p) }
	return outfile.Write(stdout, outputs...)
}
