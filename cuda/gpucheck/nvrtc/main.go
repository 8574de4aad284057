package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rotary-moe/rotary/cuda"
)

// Exit statuses; doc.go describes them.
const (
	exitFailed    = 1
	exitUsage     = 2
	exitCannotRun = 3
)

// defaultArchs are the architectures rotary targets: Turing, Ampere (A100,
// consumer), Ada and Hopper.
const defaultArchs = "sm_75,sm_80,sm_86,sm_89,sm_90"

// options are the command's flags.
type options struct {
	archs   string         // -arch
	run     *regexp.Regexp // -run: programs by "package/program"; nil for all
	json    bool           // -json
	verbose bool           // -v
	workers int            // -j
}

func main() {
	var o options
	flag.StringVar(&o.archs, "arch", defaultArchs, `architectures to compile for, comma-separated, or "device" for GPU 0's`)
	run := flag.String("run", "", `compile only the programs whose "package/program" matches this regular expression`)
	flag.BoolVar(&o.json, "json", false, "print the report as JSON")
	flag.BoolVar(&o.verbose, "v", false, "print NVRTC's full log of every compile first")
	flag.IntVar(&o.workers, "j", runtime.NumCPU(), "programs compiled at once")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: nvrtc [-arch list|device] [-run regexp] [-json] [-v] [-j N]\n\n"+
			"Compiles every kernel program of rotary with NVRTC and checks registers, spills, warnings,\n"+
			"unresolved externs and doubles. Exit 0: pass, 1: a check failed, 2: bad flags, 3: cannot run.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	var err error
	if *run != "" {
		if o.run, err = regexp.Compile(*run); err != nil {
			fmt.Fprintln(os.Stderr, "nvrtc: -run:", err)
			os.Exit(exitUsage)
		}
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nvrtc: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(check(ctx, os.Stdout, os.Stderr, o))
}

// check runs the whole check and returns the exit status.
func check(ctx context.Context, stdout, stderr io.Writer, o options) int {
	info, err := cuda.LoadNVRTC()
	if err != nil {
		fmt.Fprintln(stderr, "nvrtc:", err)
		return exitCannotRun
	}
	archs, err := parseArchs(ctx, o.archs)
	if err != nil {
		fmt.Fprintln(stderr, "nvrtc:", err)
		if errors.Is(err, errUsage) {
			return exitUsage
		}
		return exitCannotRun
	}
	for _, a := range archs {
		if !slices.Contains(info.Archs, smNumber(a)) {
			fmt.Fprintf(stderr, "nvrtc: %v compiles for %v, not %s\n", info, info.Archs, a)
			return exitCannotRun
		}
	}
	js, registryProblems := jobs(sources, archs)
	if o.run != nil {
		js = slices.DeleteFunc(js, func(j job) bool { return !o.run.MatchString(j.src.pkg + "/" + j.prog.Name) })
		if len(js) == 0 {
			fmt.Fprintf(stderr, "nvrtc: -run %s matches no program\n", o.run)
			return exitUsage
		}
	}

	start := time.Now()
	results, err := runAll(ctx, js, o.workers, o.verbose)
	if err != nil {
		fmt.Fprintln(stderr, "nvrtc:", err)
		return exitCannotRun
	}
	rep := report{NVRTC: nvrtcInfo(info), Archs: archs, Seconds: time.Since(start).Seconds(), Results: results}
	rep.Problems = problems(registryProblems, results)

	if o.verbose && !o.json {
		rep.writeLogs(stdout)
	}
	if o.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "nvrtc:", err)
		return exitFailed
	}
	if len(rep.Problems) > 0 {
		return exitFailed
	}
	return 0
}

var errUsage = errors.New("bad -arch")

// parseArchs reads -arch: sm_NN names, or "device" for GPU 0's architecture.
func parseArchs(ctx context.Context, list string) ([]string, error) {
	if list == "device" {
		dev, err := cuda.Open(ctx, 0)
		if err != nil {
			return nil, fmt.Errorf("-arch device: %w", err)
		}
		info := dev.Info()
		if err := dev.Close(); err != nil {
			return nil, err
		}
		return []string{fmt.Sprintf("sm_%d%d", info.ComputeMajor, info.ComputeMinor)}, nil
	}
	var archs []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if smNumber(a) == 0 {
			return nil, fmt.Errorf("%w: %q is not sm_NN", errUsage, a)
		}
		if !slices.Contains(archs, a) {
			archs = append(archs, a)
		}
	}
	return archs, nil
}

// smNumber is NN of "sm_NN", or 0.
func smNumber(arch string) int {
	digits, ok := strings.CutPrefix(arch, "sm_")
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' || n > 1e6 {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	if !ok || digits == "" || digits[0] == '0' {
		return 0
	}
	return n
}
