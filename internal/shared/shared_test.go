package shared

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRootAndTraces(t *testing.T) {
	t.Setenv("ROTARY_SHARED", "")
	t.Setenv("ROTARY_TRACES", "")
	repo := repoRoot()
	require.NotEmpty(t, repo, "the test runs inside the repository")
	assert.FileExists(t, filepath.Join(repo, "go.mod"))

	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "traces"), 0o755))
	t.Setenv("ROTARY_SHARED", dir)
	assert.Equal(t, dir, Root())
	assert.Equal(t, filepath.Join(dir, "traces"), Traces())

	other := t.TempDir()
	t.Setenv("ROTARY_TRACES", other)
	assert.Equal(t, other, Traces(), "ROTARY_TRACES comes first")

	t.Setenv("ROTARY_TRACES", filepath.Join(other, "missing"))
	t.Setenv("ROTARY_SHARED", filepath.Join(other, "missing"))
	if _, err := os.Stat(filepath.Join(repo, "..", "shared")); err != nil {
		assert.Empty(t, Root(), "no shared folder beside the repository")
		assert.Empty(t, Traces())
	}
}
