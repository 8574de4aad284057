package sim

import (
	"context"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/stretchr/testify/require"
)

var bg = context.Background()

// shapeModel opens a model of shape s without weights.
func shapeModel(t testing.TB, s synth.Shape) *experts.Model {
	t.Helper()
	w, err := synth.ShapeWriter(s)
	require.NoError(t, err)
	m, err := synth.OpenShape(w, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}
