package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/internal/shared"
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

// tracePath returns a file or folder of the project's real routing traces,
// read in place (never copied into the repository; see internal/shared), or
// skips.
func tracePath(t testing.TB, elem ...string) string {
	t.Helper()
	dir := shared.Traces()
	if dir == "" {
		t.Skip("real traces not present (set ROTARY_TRACES)")
	}
	path := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(path); err != nil {
		t.Skip("trace not present:", err)
	}
	return path
}
