package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rotary-moe/rotary/cuda"
)

// report is the whole check, as -json prints it.
type report struct {
	NVRTC    nvrtcInfo `json:"nvrtc"`
	Archs    []string  `json:"archs"`
	Seconds  float64   `json:"seconds"`  // the check's wall time
	Problems []string  `json:"problems"` // every problem, one line each
	Results  []result  `json:"results"`
}

// nvrtcInfo is cuda.NVRTCInfo as the report names its fields.
type nvrtcInfo struct {
	Library string `json:"library"`
	Version int    `json:"version"`
	Archs   []int  `json:"archs"`
}

// problems lists every problem of the results, after the registry's own,
// each prefixed with where it is.
func problems(registry []string, results []result) []string {
	out := append([]string{}, registry...)
	for _, r := range results {
		where := fmt.Sprintf("%s %s %s", r.Package, r.Program, r.Arch)
		for _, p := range r.Problems {
			out = append(out, where+": "+p)
		}
		for _, k := range r.Kernels {
			for _, p := range k.Problems {
				out = append(out, where+" "+k.Name+": "+p)
			}
		}
	}
	return out
}

// writeColumns prints rows of cells in aligned columns: the first text
// columns to the left, the rest (numbers) to the right.
func writeColumns(w io.Writer, rows [][]string, text int) {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i < text || i == len(row)-1 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(pad + cell)
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func (rep report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeLogs prints every compile's log, for -v.
func (rep report) writeLogs(w io.Writer) {
	for _, r := range rep.Results {
		fmt.Fprintf(w, "== %s %s %s (%.2f s)\n%s\n", r.Package, r.Program, r.Arch, r.Seconds, strings.TrimSpace(r.Log))
	}
}

// writeTable prints one row per kernel and architecture, grouped by program
// and kernel, then the problems and a summary line.
func (rep report) writeTable(w io.Writer) error {
	var compile float64
	for _, r := range rep.Results {
		compile += r.Seconds
	}
	fmt.Fprintf(w, "%v: %d compiles (PTX and CUBIN) in %.1f s, %.1f s of NVRTC\n", cuda.NVRTCInfo(rep.NVRTC), len(rep.Results), rep.Seconds, compile)
	fmt.Fprintln(w, "sizes in bytes; stack and spills are local memory; decode kernels must not spill")
	fmt.Fprintln(w)

	t := [][]string{{"program", "kernel", "kind", "arch", "regs", "spill st", "spill ld", "smem", "stack", "PTX .local", "f64", ""}}
	for _, group := range byProgram(rep.Results) {
		program := group[0].Package + "/" + group[0].Program
		names := kernelNames(group)
		if len(names) == 0 && verdict(group...) == "ok" {
			t = append(t, []string{program, "(no kernels)", "", "all", "", "", "", "", "", "", "", "ok"})
			continue
		}
		if len(names) == 0 { // it failed: say where
			for _, r := range group {
				t = append(t, []string{program, "(no kernels)", "", r.Arch, "", "", "", "", "", "", "", verdict(r)})
				program = ""
			}
			continue
		}
		for _, name := range names {
			shown := name
			for _, r := range group {
				row := []string{program, shown, "", r.Arch, "", "", "", "", "", "", "", verdict(r)}
				if k, ok := find(r.Kernels, name); ok {
					row = []string{program, shown, kind(k), r.Arch, registers(k), itoa(k.SpillStores), itoa(k.SpillLoads),
						itoa(k.Shared), itoa(k.Stack), itoa(k.PTXLocal), itoa(k.F64), kernelVerdict(r, k)}
				}
				t = append(t, row)
				program, shown = "", ""
			}
		}
	}
	writeColumns(w, t, 4)
	fmt.Fprintln(w)
	if len(rep.Problems) == 0 {
		_, err := fmt.Fprintf(w, "ok: %d programs, %d kernels, %s\n", len(byProgram(rep.Results)), countKernels(rep.Results), strings.Join(rep.Archs, " "))
		return err
	}
	fmt.Fprintf(w, "FAIL: %d problem(s)\n", len(rep.Problems))
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "  "+strings.ReplaceAll(p, "\n", "\n    "))
	}
	return nil
}

// byProgram splits results (in job order: a program's architectures
// together) into one group per program.
func byProgram(results []result) [][]result {
	var groups [][]result
	for i, r := range results {
		if i == 0 || r.Package != results[i-1].Package || r.Program != results[i-1].Program {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], r)
	}
	return groups
}

// kernelNames are the functions of a program over all its architectures,
// in the order the first one that has each lists it.
func kernelNames(group []result) []string {
	var names []string
	seen := map[string]bool{}
	for _, r := range group {
		for _, k := range r.Kernels {
			if !seen[k.Name] {
				seen[k.Name] = true
				names = append(names, k.Name)
			}
		}
	}
	return names
}

func find(ks []kernel, name string) (kernel, bool) {
	for _, k := range ks {
		if k.Name == name {
			return k, true
		}
	}
	return kernel{}, false
}

// countKernels counts the kernels (entries, not device functions) of all
// programs, each once over its architectures.
func countKernels(results []result) int {
	n := 0
	for _, g := range byProgram(results) {
		seen := map[string]bool{}
		for _, r := range g {
			for _, k := range r.Kernels {
				if k.Entry && !seen[k.Name] {
					seen[k.Name] = true
					n++
				}
			}
		}
	}
	return n
}

func kind(k kernel) string {
	switch {
	case k.Decode:
		return "decode"
	case k.Entry:
		return "kernel"
	}
	return "func"
}

// registers is "-" for a device function: ptxas counts its registers in
// the kernels that call it.
func registers(k kernel) string {
	if !k.Entry {
		return "-"
	}
	return strconv.Itoa(k.Registers)
}

// verdict is "ok" or "FAIL" for a program's own problems.
func verdict(rs ...result) string {
	for _, r := range rs {
		if len(r.Problems) > 0 {
			return "FAIL"
		}
	}
	return "ok"
}

// kernelVerdict is "FAIL" when the kernel or its program has a problem.
func kernelVerdict(r result, k kernel) string {
	if len(k.Problems) > 0 || len(r.Problems) > 0 {
		return "FAIL"
	}
	return "ok"
}
