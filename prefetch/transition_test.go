package prefetch

import (
	"bytes"
	"math"
	"testing"

	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTransitionRecall(t *testing.T) {
	fit := chainTrace(t, 2000, 0, 1)
	// Without recency: the previous token says nothing in this trace.
	p, err := FitTransition(fit, WithRecency(0))
	require.NoError(t, err)
	assert.Equal(t, chainID, p.Model())
	// Fitted and evaluated on different tokens.
	r, err := Recall(chainTrace(t, 500, 0, 2), p, 2)
	require.NoError(t, err)
	assert.InDelta(t, 1, r, 1e-9, "a deterministic chain is predicted exactly")
	r, err = Recall(chainTrace(t, 500, 0.3, 2), p, 2)
	require.NoError(t, err)
	assert.Less(t, r, 0.8, "noise the statistics cannot know")
	assert.Greater(t, r, 0.4)

	// From a profile file, as a recorder writes it.
	rec, err := profile.NewRecorder(chainID, profile.WithTransitions())
	require.NoError(t, err)
	require.NoError(t, rec.RecordTrace(fit))
	var buf bytes.Buffer
	require.NoError(t, rec.Profile().Encode(&buf))
	prof, err := profile.Decode(&buf)
	require.NoError(t, err)
	q, err := NewTransition(prof, WithRecency(0))
	require.NoError(t, err)
	assert.Equal(t, p, q)
}

func TestTransitionErrors(t *testing.T) {
	rec, err := profile.NewRecorder(chainID)
	require.NoError(t, err)
	_, err = NewTransition(rec.Profile())
	assert.ErrorIs(t, err, ErrNoTransitions)
	p, err := FitTransition(chainTrace(t, 10, 0, 1))
	require.NoError(t, err)
	_, err = FitTransition(chainTrace(t, 10, 0, 1), WithRecency(-1))
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = FitTransition(chainTrace(t, 10, 0, 1), WithDepthWeights(1, float32(posInf())))
	assert.ErrorIs(t, err, ErrInvalid)

	h, err := NewHistory([]int{1, 2, 3, 4})
	require.NoError(t, err)
	assert.ErrorIs(t, p.Predict(h, 1, 2, make([]float32, 8)), ErrInvalid, "8 scores for 16 experts")
	require.NoError(t, h.Observe(1, []int{3, 40}, nil))
	assert.ErrorIs(t, p.Predict(h, 1, 2, make([]float32, 16)), ErrInvalid, "expert 40 of 16")
}

func TestExpNeg(t *testing.T) {
	prev := float32(0)
	for x := float32(-90); x <= 0; x += 0.01 {
		got := expNeg(x)
		assert.GreaterOrEqual(t, got, prev, "monotone at %v", x)
		prev = got
		if x > -80 {
			want := math.Exp(float64(x))
			assert.InEpsilon(t, want, float64(got), 0.065, "at %v", x)
		}
	}
	assert.Equal(t, float32(1), expNeg(0))
}
