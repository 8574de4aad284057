package rotary

import (
	"testing"

	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/require"
)

func TestSyntheticTraceStatistics(t *testing.T) {
	m := profile.ModelID{Arch: "qwen3moe", Layers: 4, Experts: 128, ExpertsUsed: 8}
	tr, err := SyntheticTrace(m, 4000, Qwen3Routing, 1)
	require.NoError(t, err)
	got, err := MeasureRouting(tr)
	require.NoError(t, err)
	t.Logf("%+v", got)
}
