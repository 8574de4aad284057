package rotary

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/require"
)

const deepSeekTrace = "/work/shared/traces/deepseek-v2-lite-chat/puffin_prefill_csv"

func TestSimulateDeepSeek(t *testing.T) {
	if _, err := os.Stat(deepSeekTrace); err != nil {
		t.Skip("no DeepSeek trace:", err)
	}
	start := time.Now()
	tr, err := profile.OpenTrace(deepSeekTrace)
	require.NoError(t, err)
	t.Log("load", time.Since(start))
	w, err := ShapeOf(tr, 2048, 1408, 0).Writer()
	require.NoError(t, err)
	m, err := OpenShape(context.Background(), w, t.TempDir())
	require.NoError(t, err)
	defer m.Close()
	start = time.Now()
	rep, err := Simulate(context.Background(), m, tr, SimConfig{Budgets: []SimBudget{{Slots: 8}, {Slots: 16}, {Slots: 32}}})
	require.NoError(t, err)
	t.Log("sim", time.Since(start))
	t.Log(rep)
}
