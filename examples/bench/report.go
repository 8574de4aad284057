package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/rotary-moe/rotary/rotary"
)

// report is the benchmark's result: its setting and a row per budget.
type report struct {
	Model   string `json:"model"`
	Backend string `json:"backend"`
	Routing string `json:"routing"`
	Prompt  int    `json:"prompt_tokens"`
	Gen     int    `json:"gen_tokens"`
	Runs    int    `json:"runs"`
	// Budgets is how many rows (budgets times residencies) were asked
	// for: more than Rows when a failure or a signal stopped the benchmark.
	Budgets int   `json:"budgets"`
	Rows    []row `json:"rows"`
}

// row is one budget's medians. Hit rates are over the decode tokens, -1
// when the tier was not asked.
type row struct {
	Budget            int64         `json:"vram_budget"`
	Residency         string        `json:"residency"` // where residency was decided: host or device
	VRAM              int64         `json:"vram_used"`
	Slots             int64         `json:"slot_bytes"`
	Experts           int64         `json:"expert_bytes"`
	Pinned            int64         `json:"pinned_host_bytes"`
	PrefillTokS       float64       `json:"prefill_tok_s"`
	DecodeTokS        float64       `json:"decode_tok_s"`
	VRAMHitRate       float64       `json:"vram_hit_rate"`
	HostHitRate       float64       `json:"host_hit_rate"`
	PCIeBytesPerToken float64       `json:"pcie_bytes_per_token"`
	StallPerToken     time.Duration `json:"stall_per_token_ns"`
	// Driver calls per decoded token: launches, synchronisations, and all.
	LaunchesPerToken float64 `json:"launches_per_token"`
	SyncsPerToken    float64 `json:"syncs_per_token"`
	CallsPerToken    float64 `json:"driver_calls_per_token"`
}

// medianRow takes each measured column's median over the runs; the plan's
// columns are the same in every run.
func medianRow(runs []row) row {
	r := runs[0]
	r.PrefillTokS = median(runs, func(r row) float64 { return r.PrefillTokS })
	r.DecodeTokS = median(runs, func(r row) float64 { return r.DecodeTokS })
	r.VRAMHitRate = median(runs, func(r row) float64 { return r.VRAMHitRate })
	r.HostHitRate = median(runs, func(r row) float64 { return r.HostHitRate })
	r.PCIeBytesPerToken = median(runs, func(r row) float64 { return r.PCIeBytesPerToken })
	r.StallPerToken = time.Duration(median(runs, func(r row) float64 { return float64(r.StallPerToken) }))
	r.LaunchesPerToken = median(runs, func(r row) float64 { return r.LaunchesPerToken })
	r.SyncsPerToken = median(runs, func(r row) float64 { return r.SyncsPerToken })
	r.CallsPerToken = median(runs, func(r row) float64 { return r.CallsPerToken })
	return r
}

// median is the middle value of f over the runs (the mean of the two
// middle ones for an even count).
func median(runs []row, f func(row) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// write writes the report as one JSON object or as the table.
func (r *report) write(w io.Writer, asJSON bool) error {
	if !asJSON {
		return r.print(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// print writes the table.
func (r *report) print(w io.Writer) error {
	fmt.Fprintf(w, "model    %s\nbackend  %s\nrouting  %s\nrun      %d prompt tokens, %d decoded greedily; %s, each on a fresh engine\n",
		r.Model, r.Backend, r.Routing, r.Prompt, r.Gen, runsText(r.Runs))
	if len(r.Rows) < r.Budgets {
		fmt.Fprintf(w, "stopped  after %d of %d rows\n", len(r.Rows), r.Budgets)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "VRAM budget\tresidency\tVRAM used\texperts in VRAM\tpinned host\tprefill tok/s\tdecode tok/s\tVRAM hits\thost hits\tPCIe/token\tstall/token\tlaunches/token\tsyncs/token\tcalls/token\t")
	for _, x := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f%%\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t\n",
			rotary.FormatSize(x.Budget), x.Residency, rotary.FormatSize(x.VRAM), 100*float64(x.Slots)/float64(max(x.Experts, 1)),
			rotary.FormatSize(x.Pinned), x.PrefillTokS, x.DecodeTokS, percent(x.VRAMHitRate), percent(x.HostHitRate),
			rotary.FormatSize(int64(x.PCIeBytesPerToken)), x.StallPerToken.Round(time.Microsecond),
			x.LaunchesPerToken, x.SyncsPerToken, x.CallsPerToken)
	}
	return tw.Flush()
}

// percent formats a hit rate, "-" for a tier nothing asked.
func percent(r float64) string {
	if r < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*r)
}

// runsText says what the table's numbers are over.
func runsText(runs int) string {
	if runs == 1 {
		return "one run"
	}
	return fmt.Sprintf("medians of %d runs", runs)
}
