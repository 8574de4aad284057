package synthetic

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCachedRewritesADamagedModel damages the cached default model in the
// ways a disk or an older writer could: every run rewrites it, saying why.
func TestCachedRewritesADamagedModel(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	var log bytes.Buffer
	path, err := Cached(t.Context(), DefaultPreset, &log)
	require.NoError(t, err)
	assert.Contains(t, log.String(), "wrote synthetic "+DefaultPreset)
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	log.Reset()
	_, err = Cached(t.Context(), DefaultPreset, &log)
	require.NoError(t, err)
	assert.Empty(t, log.String(), "a sound model is not written again")

	for name, damaged := range map[string][]byte{
		"truncated":  good[:len(good)/2],
		"empty":      {},
		"bad header": append([]byte("XXXX"), good[4:]...),
	} {
		require.NoError(t, os.WriteFile(path, damaged, 0o644))
		log.Reset()
		got, err := Cached(t.Context(), DefaultPreset, &log)
		require.NoError(t, err, name)
		assert.Equal(t, path, got)
		assert.Contains(t, log.String(), "is damaged", name)
		assert.Contains(t, log.String(), "writing it again", name)
		again, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, good, again, name)
	}
}

// TestWriteCreatesOnlyTheFile writes into a folder that does not exist: an
// error, and no folder made.
func TestWriteCreatesOnlyTheFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	err := Write(t.Context(), filepath.Join(dir, "m.gguf"), "qwen3moe-tiny", &bytes.Buffer{})
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NoDirExists(t, filepath.Dir(dir))
}
