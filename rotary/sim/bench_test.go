package sim

import (
	"testing"

	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/stretchr/testify/require"
)

// BenchmarkSimulate replays a synthetic trace of DeepSeek-V2-Lite's shape (26
// MoE layers, top-6 of 64) with 16 slots per layer and rotary.LRU, and reports the
// cost per Acquire; the simulated table is logged with -v.
func BenchmarkSimulate(b *testing.B) {
	id := profile.ModelID{Name: "synthetic", Arch: "deepseek2", Layers: 27, Experts: 64, ExpertsUsed: 6}
	tr, err := SyntheticTrace(id, 2000, Qwen3Routing, 1)
	require.NoError(b, err)
	m := shapeModel(b, ShapeOf(tr, 2048, 1408, 0))
	cfg := Config{Budgets: []Budget{{Slots: 16}}, Policies: []Policy{{Name: "LRU", Policy: rotary.LRU}}}
	var rep *Report
	for b.Loop() {
		rep, err = Simulate(bg, m, tr, cfg)
		require.NoError(b, err)
	}
	acquires := float64(rep.Rows[0].Requests) / 6
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/acquires, "ns/acquire")
	b.Logf("\n%s", rep)
}
