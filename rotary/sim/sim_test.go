package sim

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
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
	cfg := Config{Budgets: []Budget{{Slots: 6}, {VRAM: vram}}, Attention: 20 * time.Microsecond, Experts: 30 * time.Microsecond, Warmup: 100}
	rep, err := Simulate(bg, m, tr, cfg)
	require.NoError(t, err)
	require.Len(t, rep.Rows, 8)
	assert.Equal(t, 500, rep.Tokens)
	for i, row := range rep.Rows {
		assert.Equal(t, DefaultPolicies(tr)[i%4].Name, row.Policy)
		assert.Equal(t, uint64(500*2*4), row.Requests)
		misses := row.Requests - row.Hits
		assert.InDelta(t, float64(misses)*float64(expertBytes)/500, row.BytesPerToken, 1e-6)
		// Two layers of compute per token, and the time the compute stream
		// was idle, the stall for copies included.
		assert.InDelta(t, 100*time.Microsecond+row.IdlePerToken, row.TimePerToken, float64(time.Microsecond))
		assert.Positive(t, row.StallPerToken)
		assert.LessOrEqual(t, row.StallPerToken, row.IdlePerToken)
		assert.InDelta(t, float64(misses)/500, row.TransfersPerToken, 1e-9)
		assert.Empty(t, row.Prefetch)
		assert.Zero(t, row.PrefetchRecall)
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
	var back Report
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, rep.Rows, back.Rows)

	_, err = Simulate(bg, m, full, cfg)
	assert.ErrorIs(t, err, ErrInvalid, "layer 0 has no experts")
	_, err = Simulate(bg, m, tr, Config{Budgets: cfg.Budgets, Warmup: 600})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = Simulate(bg, m, tr, Config{})
	assert.ErrorIs(t, err, ErrInvalid)
	other, err := SyntheticTrace(profile.ModelID{Arch: "llama", Layers: 3, Experts: 8, ExpertsUsed: 2}, 10, Routing{RepeatNext: 0.4, RepeatWithin8: 0.7, Coverage90: 0.6, TopShare: 0.2}, 1)
	require.NoError(t, err)
	_, err = Simulate(bg, m, other, cfg)
	assert.ErrorIs(t, err, ErrInvalid)

	// A profile of another model than the trace's.
	rec, err := profile.NewRecorder(profile.ModelID{Arch: "llama", Layers: 3, Experts: 16, ExpertsUsed: 2})
	require.NoError(t, err)
	_, err = Simulate(bg, m, tr, Config{Budgets: cfg.Budgets, Profile: rec.Profile()})
	assert.ErrorIs(t, err, profile.ErrModelMismatch)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = Simulate(bg, m, tr, Config{Budgets: cfg.Budgets, PinFraction: 1.5})
	assert.ErrorIs(t, err, ErrInvalid)
}

// oracle prefetches what the trace routes next: the bound of prediction.
type oracle struct {
	rt    *rotary.Runtime
	tr    *profile.Trace
	first int
	tok   int
	err   error
}

func (o *oracle) Routed(layer int, _ []int, _ []float32) {
	if layer == o.first {
		o.tok++
	}
	if layer+1 < o.tr.Model().Layers && o.tr.Len(o.tok-1, layer+1) > 0 {
		var ids []int
		for _, e := range o.tr.AppendExperts(nil, o.tok-1, layer+1) {
			ids = append(ids, int(e))
		}
		if err := o.rt.Prefetch(layer+1, ids); err != nil && o.err == nil {
			o.err = err
		}
	}
}

func (o *oracle) Err() error { return o.err }

// TestSimulatePrefetch replays a trace with an oracle prefetcher: every
// layer but the first hits, with the copies overlapped when PCIe is fast
// and stalling when it is slow; a failing prefetcher fails the simulation.
func TestSimulatePrefetch(t *testing.T) {
	shape := synth.Shape{Arch: "llama", Layers: 3, MoELayers: []int{0, 1, 2}, Experts: 16, TopK: 4, Embedding: 256, ExpertFFN: 256, NonExpertBytes: 1 << 20}
	m := shapeModel(t, shape)
	id := profile.ModelID{Arch: "llama", Layers: 3, Experts: 16, ExpertsUsed: 4}
	tr, err := SyntheticTrace(id, 300, Routing{RepeatNext: 0.2, RepeatWithin8: 0.5, Coverage90: 0.8, TopShare: 0.1}, 1)
	require.NoError(t, err)
	withOracle := Policy{Name: "LRU", Policy: rotary.LRU, Prefetch: "oracle", NewPrefetcher: func(rt *rotary.Runtime) (Prefetcher, error) {
		return &oracle{rt: rt, tr: tr}, nil
	}}
	run := func(pcie float64) *Report {
		timing := cuda.TimingH200
		timing.PinnedBandwidth = pcie
		rep, err := Simulate(bg, m, tr, Config{Budgets: []Budget{{Slots: 8}}, Policies: []Policy{{Name: "LRU", Policy: rotary.LRU}, withOracle},
			Attention: 20 * time.Microsecond, Experts: 30 * time.Microsecond, Timing: &timing})
		require.NoError(t, err)
		return rep
	}
	rep := run(50e9)
	lru, pre := rep.Rows[0], rep.Rows[1]
	assert.Equal(t, "oracle", pre.Prefetch)
	assert.InDelta(t, 1, pre.PrefetchRecall, 1e-9)
	assert.InDelta(t, 1, pre.PrefetchPrecision, 1e-9)
	assert.Greater(t, pre.HitRate, 2.0/3, "layers 1 and 2 always hit")
	assert.Greater(t, pre.HitRate, lru.HitRate)
	assert.InDelta(t, (1-pre.HitRate)*12+pre.PrefetchedPerToken, pre.TransfersPerToken, 1e-9)
	assert.InDelta(t, pre.PrefetchedPerToken, pre.UsefulPerToken, 0.02, "every prefetch is used")
	assert.Less(t, pre.IdlePerToken, lru.IdlePerToken)
	assert.Contains(t, rep.String(), "oracle")

	// At 0.5 GB/s an expert (about 400 KB) takes 0.8 ms, far longer than a
	// layer computes: the prefetches arrive late and the compute stream
	// waits for them.
	slow := run(0.5e9).Rows[1]
	assert.Greater(t, slow.IdlePerToken, 10*pre.IdlePerToken)

	failing := withOracle
	failing.NewPrefetcher = func(rt *rotary.Runtime) (Prefetcher, error) {
		return &oracle{rt: rt, tr: tr, err: errors.New("broken")}, nil
	}
	_, err = Simulate(bg, m, tr, Config{Budgets: []Budget{{Slots: 8}}, Policies: []Policy{failing}})
	assert.ErrorContains(t, err, "broken")
}

// TestSimulateSlotsByMisses gives the slots to the layer that misses: layer
// 1 routes over 16 experts, layer 2 always to its first 4. (Were layer 2 to
// route over 5, its working set of 4 slots would miss where the even split's
// 8 did not: misses measured at one size do not say what another costs.)
func TestSimulateSlotsByMisses(t *testing.T) {
	shape := synth.Shape{Arch: "llama", Layers: 3, MoELayers: []int{1, 2}, Experts: 16, TopK: 4, Embedding: 256, ExpertFFN: 256}
	m := shapeModel(t, shape)
	id := profile.ModelID{Arch: "llama", Layers: 3, Experts: 16, ExpertsUsed: 4}
	wide, err := SyntheticTrace(id, 400, Routing{RepeatNext: 0.3, RepeatWithin8: 0.6, Coverage90: 0.8, TopShare: 0.1}, 1)
	require.NoError(t, err)
	tr, err := profile.NewTrace(id)
	require.NoError(t, err)
	for tok := range wide.Tokens() {
		require.Equal(t, tok, tr.AddToken())
		require.NoError(t, tr.Set(tok, 1, wide.AppendExperts(nil, tok, 1), nil))
		require.NoError(t, tr.Set(tok, 2, []int32{0, 1, 2, 3}, nil))
	}
	rep, err := Simulate(bg, m, tr, Config{Budgets: []Budget{{Slots: 8}}, Policies: []Policy{
		{Name: "LRU", Policy: rotary.LRU}, {Name: "LRU by misses", Policy: rotary.LRU, SlotsByMisses: true}}})
	require.NoError(t, err)
	even, byMisses := rep.Rows[0], rep.Rows[1]
	assert.Equal(t, 8.0, byMisses.Slots, "the same slots in all")
	assert.Greater(t, byMisses.HitRate, even.HitRate+0.05)
}

// TestSimulateRepin re-pins from the run's own routing: in a trace whose
// three hot experts change halfway, beside cold ones drawn at random, it
// beats the hot set fixed on the first half.
func TestSimulateRepin(t *testing.T) {
	shape := synth.Shape{Arch: "llama", Layers: 2, MoELayers: []int{0, 1}, Experts: 32, TopK: 2, Embedding: 256, ExpertFFN: 256}
	m := shapeModel(t, shape)
	id := profile.ModelID{Arch: "llama", Layers: 2, Experts: 32, ExpertsUsed: 2}
	tr, err := profile.NewTrace(id)
	require.NoError(t, err)
	rec, err := profile.NewRecorder(id)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for tok := range 1000 {
		require.Equal(t, tok, tr.AddToken())
		hot := int32(tok % 3)
		if tok >= 500 {
			hot += 16
		}
		for l := range 2 {
			ids := []int32{hot, int32(3 + rng.IntN(13))}
			require.NoError(t, tr.Set(tok, l, ids, nil))
			if tok < 500 {
				require.NoError(t, rec.Record(l, ids, nil))
			}
		}
	}
	rep, err := Simulate(bg, m, tr, Config{Budgets: []Budget{{Slots: 6}}, Profile: rec.Profile(), Policies: []Policy{
		{Name: "pinned+LRU", Policy: rotary.LRU, Pinned: true},
		{Name: "pinned+LRU live", Policy: rotary.LRU, Pinned: true, RepinEvery: 50}}})
	require.NoError(t, err)
	fixed, live := rep.Rows[0], rep.Rows[1]
	assert.Equal(t, 3.0, live.Pinned)
	assert.Greater(t, live.HitRate, fixed.HitRate+0.1)
}
