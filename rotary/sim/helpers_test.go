package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

var bg = context.Background()

// shapeModel opens a model of shape s without weights.
func shapeModel(t testing.TB, s experts.ModelShape) *experts.Model {
	t.Helper()
	w, err := experts.ShapeWriter(s)
	require.NoError(t, err)
	m, err := experts.OpenShape(w, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// tracePath returns a file or folder of the project's real routing traces,
// read in place (never copied into the repository): under ROTARY_TRACES, else
// shared/traces beside the repository. It skips if there is none.
func tracePath(t testing.TB, elem ...string) string {
	t.Helper()
	for _, dir := range []string{os.Getenv("ROTARY_TRACES"), filepath.Join("..", "..", "..", "shared", "traces")} {
		if dir == "" {
			continue
		}
		path := filepath.Join(append([]string{dir}, elem...)...)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	t.Skip("real traces not present (set ROTARY_TRACES)")
	return ""
}
