package prefetch

import (
	"context"
	"os"
	"testing"

	"github.com/rotary-moe/rotary/internal/shared"
	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// splitPrompts returns the trace's prompts [from, to) as a trace.
func splitPrompts(tr *profile.Trace, from, to int) *profile.Trace {
	index := map[string]int{}
	for _, s := range tr.Segments() {
		if _, ok := index[s.Name]; !ok {
			index[s.Name] = len(index)
		}
	}
	return tr.Subset(func(s profile.Segment) bool { i := index[s.Name]; return i >= from && i < to })
}

// TestTransitionDeepSeek measures Transition's recall on the real
// DeepSeek-V2-Lite trace, fitted and evaluated on different prompts: on 300
// prompts by default, on the whole trace (the target: recall@6 of
// at least 50%) with ROTARY_FULL_TRACES=1.
func TestTransitionDeepSeek(t *testing.T) {
	tr, err := profile.OpenTrace(context.Background(), shared.TracePath(t, "deepseek-v2-lite-chat", "puffin_prefill_csv"))
	require.NoError(t, err)
	prompts, want := 300, 0.45
	if os.Getenv("ROTARY_FULL_TRACES") != "" {
		prompts, want = len(tr.Segments()), 0.50
	}
	fit, eval := splitPrompts(tr, 0, prompts/2), splitPrompts(tr, prompts/2, prompts)
	p, err := FitTransition(fit)
	require.NoError(t, err)
	r6, err := Recall(eval, p, 6)
	require.NoError(t, err)
	r8, err := Recall(eval, p, 8)
	require.NoError(t, err)
	t.Logf("fitted on %d tokens, evaluated on %d: recall@6 %.1f%%, recall@8 %.1f%%", fit.Tokens(), eval.Tokens(), 100*r6, 100*r8)
	assert.GreaterOrEqual(t, r6, want)
	assert.Greater(t, r8, r6)
}
