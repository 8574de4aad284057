package prefetch

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHistory(t *testing.T) {
	h, err := NewHistory([]int{1, 3, 4})
	require.NoError(t, err)
	assert.Equal(t, 3, h.Next(1))
	assert.Equal(t, -1, h.Next(4))
	assert.Equal(t, 1, h.Before(4, 2))
	assert.Equal(t, -1, h.Before(3, 2))
	assert.Equal(t, -1, h.Next(2), "not routed")

	x := []float32{1, 2}
	require.NoError(t, h.Observe(1, []int{5, 6}, x))
	require.NoError(t, h.Observe(3, []int{7, 8}, nil))
	assert.Equal(t, []int{5, 6}, h.Current(1))
	assert.Nil(t, h.Current(4))
	assert.Nil(t, h.Previous(1))
	assert.Nil(t, h.Hidden())
	// Layer 1 again: a new token.
	require.NoError(t, h.Observe(1, []int{9, 10}, x))
	assert.Equal(t, []int{9, 10}, h.Current(1))
	assert.Nil(t, h.Current(3), "not routed yet by this token")
	assert.Equal(t, []int{7, 8}, h.Previous(3))
	assert.Equal(t, []int{5, 6}, h.Previous(1))
	assert.Equal(t, x, h.Hidden())

	assert.ErrorIs(t, h.Observe(2, []int{1}, nil), ErrLayer)
	for _, bad := range [][]int{nil, {2, 1}, {1, 1}, {-1, 2}} {
		_, err := NewHistory(bad)
		assert.ErrorIs(t, err, ErrInvalid, "%v", bad)
	}
}

func TestTopM(t *testing.T) {
	scores := []float32{0.1, 0.5, 0.5, 0, 0.9, 0.2}
	assert.Equal(t, []int{4, 1, 2}, topM(nil, scores, 3), "ties to the lower index")
	assert.Equal(t, []int{4, 1, 2, 5, 0, 3}, topM(nil, scores, 6))
	assert.Equal(t, []int{4}, topM(make([]int, 0, 1), scores, 1))
}
