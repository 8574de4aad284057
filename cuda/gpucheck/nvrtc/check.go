package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rotary-moe/rotary/cuda"
)

// ptxasOptions ask ptxas for its resource report. Each ptxas flag must be an
// --ptxas-options of its own: NVRTC rejects a joined list as fatal.
var ptxasOptions = []string{"--ptxas-options=-v"}

// job is one program to compile for one architecture.
type job struct {
	src  source
	prog *cuda.Program
	arch string
}

// result is one program compiled for one architecture, and what the checks
// found.
type result struct {
	Package string   `json:"package"`
	Program string   `json:"program"`
	Arch    string   `json:"arch"`
	Seconds float64  `json:"seconds"`
	Kernels []kernel `json:"kernels"`
	// Problems are the program's own: a compile error, a warning, an
	// extern nothing calls.
	Problems []string `json:"problems,omitempty"`
	Log      string   `json:"log,omitempty"` // NVRTC's log, kept with -v
}

// kernel is one function of a compiled program.
type kernel struct {
	Name   string `json:"name"`
	Entry  bool   `json:"entry"` // a kernel, not a device function ptxas reported apart
	Decode bool   `json:"decode"`
	resources
	F64      int      `json:"f64"`       // double-precision instructions in its PTX
	PTXLocal int      `json:"ptx_local"` // bytes of .local its PTX declares
	Problems []string `json:"problems,omitempty"`
}

// failures counts the problems of r and its kernels.
func (r result) failures() int {
	n := len(r.Problems)
	for _, k := range r.Kernels {
		n += len(k.Problems)
	}
	return n
}

// systemCalls are the extern functions ptxas and the driver provide
// themselves: printf, assert, and malloc and free on the device.
var systemCalls = []string{"vprintf", "__assertfail", "malloc", "free"}

// isDecode applies the registry's naming rule.
func isDecode(kernel string) bool { return slices.Contains(strings.Split(kernel, "_"), "decode") }

// jobs lists every registered program for every architecture, in order. A
// package whose Programs returns a nil, nameless or empty program, or two
// of one name, is a problem of its own.
func jobs(sources []source, archs []string) ([]job, []string) {
	var js []job
	var problems []string
	for _, s := range sources {
		seen := map[string]bool{}
		for i, p := range s.programs() {
			switch {
			case p == nil || p.Name == "" || p.Source == "":
				problems = append(problems, fmt.Sprintf("%s: Programs()[%d] has no name or no source", s.pkg, i))
				continue
			case seen[p.Name]:
				problems = append(problems, fmt.Sprintf("%s: two programs named %s", s.pkg, p.Name))
				continue
			}
			seen[p.Name] = true
			for _, a := range archs {
				js = append(js, job{src: s, prog: p, arch: a})
			}
		}
	}
	return js, problems
}

// runAll runs every job, workers at a time, and returns the results in the
// jobs' order. An error is one that stops the whole check (no NVRTC, a
// cancelled ctx), not a failed program.
func runAll(ctx context.Context, js []job, workers int, keepLogs bool) ([]result, error) {
	results := make([]result, len(js))
	errs := make([]error, len(js))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for i := range next {
				results[i], errs[i] = run(ctx, js[i], keepLogs)
			}
		})
	}
	for i := range js {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return results, err // every job after a cancellation says the same
		}
	}
	return results, nil
}

// run compiles j.prog for j.arch, to PTX and a CUBIN, and checks both. When
// the CUBIN fails, the PTX alone is compiled to say why, when it can: an
// unresolved extern is a ptxas failure that the PTX shows by name.
func run(ctx context.Context, j job, keepLogs bool) (result, error) {
	p := *j.prog
	p.Options = append(slices.Clip(p.Options), ptxasOptions...)
	r := result{Package: j.src.pkg, Program: p.Name, Arch: j.arch}
	start := time.Now()
	c, err := cuda.Compile(ctx, &p, j.arch)
	r.Seconds = time.Since(start).Seconds()
	var cerr *cuda.CompileError
	switch {
	case errors.As(err, &cerr):
		r.Problems = append(r.Problems, fmt.Sprintf("does not compile (%v): %s", cerr.Err, strings.TrimSpace(cerr.Log)))
		if keepLogs {
			r.Log = cerr.Log
		}
		if ptx, err := cuda.Compile(ctx, j.prog, "compute"+strings.TrimPrefix(j.arch, "sm")); err == nil {
			evaluate(&r, "", nulTrimmed(ptx.PTX), j.src.doubles, false)
		}
		return r, nil
	case err != nil:
		return r, err
	}
	if keepLogs {
		r.Log = c.Log
	}
	evaluate(&r, c.Log, nulTrimmed(c.PTX), j.src.doubles, true)
	return r, nil
}

func nulTrimmed(ptx []byte) string { return strings.TrimRight(string(ptx), "\x00") }

// evaluate fills r's kernels and problems from a compile's log and PTX.
// assembled says ptxas ran, so that the log must report every function.
func evaluate(r *result, log, ptx string, doubles, assembled bool) {
	report, err := parseLog(log)
	if err != nil {
		r.Problems = append(r.Problems, "ptxas's report: "+err.Error())
	}
	for _, w := range report.warnings {
		r.Problems = append(r.Problems, "warning: "+w)
	}
	mod, err := parsePTX(ptx)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
		return
	}
	called := map[string]bool{}
	for _, f := range mod.functions {
		k := kernel{Name: f.name, Entry: f.entry, Decode: f.entry && isDecode(f.name), F64: f.f64, PTXLocal: f.local}
		res, reported := report.functions[f.name]
		if reported {
			k.resources = *res
		} else if assembled {
			k.Problems = append(k.Problems, "ptxas reported nothing on it (a log this tool cannot read?)")
		}
		if f.f64 > 0 && !doubles {
			k.Problems = append(k.Problems, fmt.Sprintf("%d double-precision instructions (a literal without f?)", f.f64))
		}
		for _, g := range mod.reaches(f.name) {
			called[g] = true
			if slices.Contains(mod.externs, g) && !slices.Contains(systemCalls, g) {
				k.Problems = append(k.Problems, fmt.Sprintf("calls %s, which nothing defines (an intrinsic NVRTC does not link? use the prelude's)", g))
			}
		}
		if k.Decode {
			if k.spills() {
				k.Problems = append(k.Problems, fmt.Sprintf("spills in a decode kernel: %d B stored, %d B loaded", k.SpillStores, k.SpillLoads))
			}
			for _, g := range mod.reaches(f.name) {
				if res := report.functions[g]; res != nil && res.spills() {
					k.Problems = append(k.Problems, fmt.Sprintf("spills in %s, which this decode kernel calls: %d B stored, %d B loaded", g, res.SpillStores, res.SpillLoads))
				}
			}
		}
		r.Kernels = append(r.Kernels, k)
	}
	for _, e := range mod.externs {
		if !called[e] && !slices.Contains(systemCalls, e) {
			r.Problems = append(r.Problems, fmt.Sprintf("declares %s extern, which nothing defines", e))
		}
	}
	// Kernels first, then device functions, each by name: the same order
	// for every architecture.
	slices.SortStableFunc(r.Kernels, func(a, b kernel) int {
		if a.Entry != b.Entry {
			if a.Entry {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}
