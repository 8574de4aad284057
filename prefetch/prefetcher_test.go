package prefetch

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decode replays tr through rt as a host-driven decoder would, calling the
// prefetcher (if any) after each layer's Acquire, and returns the stats.
func decode(t *testing.T, rt *rotary.Runtime, tr *profile.Trace, f *Prefetcher) rotary.Stats {
	t.Helper()
	rt.ResetStats()
	var ids32 []int32
	for tok := range tr.Tokens() {
		for _, l := range tr.RoutedLayers() {
			ids32 = tr.AppendExperts(ids32[:0], tok, l)
			ids := make([]int, len(ids32))
			for i, e := range ids32 {
				ids[i] = int(e)
			}
			set, err := rt.Acquire(bg, l, ids, nil)
			require.NoError(t, err)
			if f != nil {
				f.Routed(l, ids, nil)
			}
			require.NoError(t, rt.Release(set, nil))
		}
	}
	return rt.Stats()
}

func TestPrefetcher(t *testing.T) {
	m := chainModel(t)
	p, err := FitTransition(chainTrace(t, 2000, 0, 1), WithRecency(0))
	require.NoError(t, err)
	eval := chainTrace(t, 300, 0, 2)

	lru := decode(t, openRuntime(t, m, rotary.WithSlots(4)), eval, nil)
	rt := openRuntime(t, m, rotary.WithSlots(4))
	f, err := New(rt, p)
	require.NoError(t, err)
	s := decode(t, rt, eval, f)
	require.NoError(t, f.Err())

	// Layers 2-4 are predicted exactly; layer 1 (the first) only hits what
	// LRU keeps.
	assert.Equal(t, uint64(300*3*2), s.Prefetch.Requested)
	assert.InDelta(t, 1, s.Prefetch.Recall(), 1e-9)
	assert.InDelta(t, 1, s.Prefetch.Precision(), 1e-9)
	t.Logf("hit rate: LRU %.3f, with prefetch %.3f", lru.VRAM.HitRate(), s.VRAM.HitRate())
	assert.Greater(t, s.VRAM.HitRate(), lru.VRAM.HitRate()+0.3)
	assert.Equal(t, s.Prefetch.Useful, s.Prefetched-s.Prefetch.Wasted-pending(t, rt), "every copy is useful, wasted or still resident unused")
	assert.Equal(t, int64(s.Prefetch.Useful)*m.ExpertBytes(1), s.Prefetch.UsefulBytes)
	assert.Less(t, s.Prefetch.Wasted, s.Prefetch.Useful/10)

	// A budget of one expert per token.
	rt = openRuntime(t, m, rotary.WithSlots(4))
	f, err = New(rt, p, WithBudget(m.ExpertBytes(1)), WithCandidates(3))
	require.NoError(t, err)
	s = decode(t, rt, eval, f)
	assert.LessOrEqual(t, s.Prefetched, uint64(300))
	assert.Positive(t, s.Prefetched)
	assert.Equal(t, uint64(300*3*3), s.Prefetch.Predicted, "three candidates named per prediction")
}

// pending counts the prefetched experts still resident and not yet asked
// for: a prefetch of the last token's layers.
func pending(t *testing.T, rt *rotary.Runtime) uint64 {
	s := rt.Stats()
	return s.Prefetched - s.Prefetch.Useful - s.Prefetch.Wasted
}

// failing is a predictor that fails from its n-th call on.
type failing struct {
	n, calls int
}

var errPredict = errors.New("predictor broke")

func (f *failing) Predict(_ *History, _, _ int, scores []float32) error {
	f.calls++
	if f.calls >= f.n {
		return errPredict
	}
	clear(scores)
	scores[0] = 1
	return nil
}

func TestPrefetcherTurnsOff(t *testing.T) {
	m := chainModel(t)
	rt := openRuntime(t, m, rotary.WithSlots(4))
	var logs bytes.Buffer
	pred := &failing{n: 5}
	f, err := New(rt, pred, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	s := decode(t, rt, chainTrace(t, 20, 0, 1), f)
	assert.ErrorIs(t, f.Err(), errPredict)
	assert.Equal(t, 5, pred.calls, "no call after the failure")
	assert.Equal(t, 1, strings.Count(logs.String(), "prefetch: turned off"), "logged once")
	assert.Contains(t, logs.String(), "predictor broke")
	assert.Equal(t, uint64(20*4*2), s.VRAM.Hits+s.VRAM.Misses, "decoding went on")

	_, err = New(nil, pred)
	assert.ErrorIs(t, err, ErrInvalid)
	for _, o := range []Option{WithCandidates(0), WithBudget(-1), WithLogger(nil)} {
		_, err = New(rt, pred, o)
		assert.ErrorIs(t, err, ErrInvalid)
	}
	// A layer that does not route.
	f, err = New(rt, pred)
	require.NoError(t, err)
	f.Routed(0, []int{1}, nil)
	assert.ErrorIs(t, f.Err(), ErrLayer)
}

func TestCombine(t *testing.T) {
	fixed := func(s ...float32) Predictor { return fixedScores(s) }
	c, err := Combine(Part{Predictor: fixed(1, 0, 0, 0), Weight: 1}, Part{Predictor: fixed(0, 0, 2, 2), Weight: 1, LayerWeights: []float32{0, 0, 3}})
	require.NoError(t, err)
	h, err := NewHistory([]int{1, 2, 3})
	require.NoError(t, err)
	scores := make([]float32, 4)
	require.NoError(t, c.Predict(h, 1, 2, scores))
	assert.Equal(t, []float32{1, 0, 1.5, 1.5}, scores, "layer 2: the second part weighs 3")
	require.NoError(t, c.Predict(h, 2, 3, scores))
	assert.Equal(t, []float32{1, 0, 0.5, 0.5}, scores, "layer 3: both weigh 1")

	for _, bad := range [][]Part{nil, {{Weight: 1}}, {{Predictor: fixed(1), Weight: -1}}, {{Predictor: fixed(1), LayerWeights: []float32{float32(posInf())}}}} {
		_, err := Combine(bad...)
		assert.ErrorIs(t, err, ErrInvalid)
	}
	c, err = Combine(Part{Predictor: &failing{n: 1}, Weight: 1})
	require.NoError(t, err)
	assert.ErrorIs(t, c.Predict(h, 1, 2, scores), errPredict)
}

type fixedScores []float32

func (f fixedScores) Predict(_ *History, _, _ int, scores []float32) error {
	copy(scores, f)
	return nil
}
