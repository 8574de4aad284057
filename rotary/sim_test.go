package rotary

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSimulateReport(t *testing.T) {
	shape := synth.Shape{Arch: "llama", Layers: 3, MoELayers: []int{1, 2}, Experts: 16, TopK: 4, Embedding: 256, ExpertFFN: 256, NonExpertBytes: 1 << 20}
	m := shapeModel(t, shape)
	id := profile.ModelID{Arch: "llama", Layers: 3, Experts: 16, ExpertsUsed: 4}
	full, err := SyntheticTrace(id, 600, Routing{RepeatNext: 0.4, RepeatWithin8: 0.7, Coverage90: 0.6, TopShare: 0.1}, 1)
	require.NoError(t, err)
	// Route layers 1 and 2 only, as the model has experts there.
	tr, err := profile.NewTrace(id)
	require.NoError(t, err)
	for tok := range full.Tokens() {
		require.Equal(t, tok, tr.AddToken())
		for _, l := range []int{1, 2} {
			require.NoError(t, tr.Set(tok, l, full.AppendExperts(nil, tok, l), nil))
		}
	}
	expertBytes := m.ExpertBytes(1)
	vram := m.NonExpertBytes() + 2*8*expertBytes
	cfg := SimConfig{Budgets: []SimBudget{{Slots: 6}, {VRAM: vram}}, Attention: 20 * time.Microsecond, Experts: 30 * time.Microsecond, Warmup: 100}
	rep, err := Simulate(bg, m, tr, cfg)
	require.NoError(t, err)
	require.Len(t, rep.Rows, 8)
	assert.Equal(t, 500, rep.Tokens)
	for i, row := range rep.Rows {
		assert.Equal(t, DefaultSimPolicies(tr)[i%4].Name, row.Policy)
		assert.Equal(t, uint64(500*2*4), row.Requests)
		misses := row.Requests - row.Hits
		assert.InDelta(t, float64(misses)*float64(expertBytes)/500, row.BytesPerToken, 1e-6)
		// Two layers of compute per token at least, plus the copies' stall.
		assert.Greater(t, row.TimePerToken, 100*time.Microsecond+row.StallPerToken)
		assert.Positive(t, row.StallPerToken)
		assert.InDelta(t, 1/row.TimePerToken.Seconds(), row.TokensPerSecond, 0.01*row.TokensPerSecond)
	}
	for b := range 2 {
		lru, belady := rep.Rows[4*b], rep.Rows[4*b+3]
		assert.GreaterOrEqual(t, belady.HitRate, lru.HitRate)
		assert.Less(t, belady.StallPerToken, lru.StallPerToken)
	}
	assert.Equal(t, 8.0, rep.Rows[4].Slots, "the VRAM budget holds 8 slots per layer")
	assert.Equal(t, 2.0, rep.Rows[2].Pinned, "pinned+LRU at 6 slots pins what the working set leaves")
	assert.Contains(t, rep.String(), "after 100 of warm-up")
	js, err := rep.JSON()
	require.NoError(t, err)
	var back SimReport
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, rep.Rows, back.Rows)

	_, err = Simulate(bg, m, full, cfg)
	assert.ErrorIs(t, err, ErrInvalid, "layer 0 has no experts")
	_, err = Simulate(bg, m, tr, SimConfig{Budgets: cfg.Budgets, Warmup: 600})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = Simulate(bg, m, tr, SimConfig{})
	assert.ErrorIs(t, err, ErrInvalid)
	other, err := SyntheticTrace(profile.ModelID{Arch: "llama", Layers: 3, Experts: 8, ExpertsUsed: 2}, 10, Routing{RepeatNext: 0.4, RepeatWithin8: 0.7, Coverage90: 0.6, TopShare: 0.2}, 1)
	require.NoError(t, err)
	_, err = Simulate(bg, m, other, cfg)
	assert.ErrorIs(t, err, ErrInvalid)

	// A profile of another model than the trace's.
	rec, err := profile.NewRecorder(profile.ModelID{Arch: "llama", Layers: 3, Experts: 16, ExpertsUsed: 2})
	require.NoError(t, err)
	_, err = Simulate(bg, m, tr, SimConfig{Budgets: cfg.Budgets, Profile: rec.Profile()})
	assert.ErrorIs(t, err, profile.ErrModelMismatch)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = Simulate(bg, m, tr, SimConfig{Budgets: cfg.Budgets, PinFraction: 1.5})
	assert.ErrorIs(t, err, ErrInvalid)
}
