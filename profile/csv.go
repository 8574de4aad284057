package profile

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// WriteCSV writes the numbers behind the charts, one row per layer and expert
// in layer then expert order, under the header
//
//	layer,expert,rank,count,share,coverage,weight_mass
//
// rank is the expert's 1-based popularity rank in its layer, share its part of
// the layer's selections, coverage the share of the experts ranked 1..rank (the
// popularity curve), weight_mass its summed routing weights. Layers without
// selections have empty share and coverage.
func WriteCSV(w io.Writer, p *Profile) error {
	if err := p.Validate(); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"layer", "expert", "rank", "count", "share", "coverage", "weight_mass"}); err != nil {
		return fmt.Errorf("profile: csv: %w", err)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	for l := range p.Layers {
		ls := &p.Layers[l]
		total := ls.Selections()
		cov := ls.Coverage()
		rank := make([]int, len(ls.Counts))
		for r, e := range ls.Ranked() {
			rank[e] = r
		}
		for e, n := range ls.Counts {
			share, coverage := "", ""
			if total > 0 {
				share, coverage = f(float64(n)/float64(total)), f(cov[rank[e]])
			}
			rec := []string{strconv.Itoa(l), strconv.Itoa(e), strconv.Itoa(rank[e] + 1),
				strconv.FormatUint(n, 10), share, coverage, f(ls.Mass[e])}
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("profile: csv: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("profile: csv: %w", err)
	}
	return nil
}
