package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	big := strings.Repeat("x", 1<<20) // beyond the buffer: written in several flushes
	require.NoError(t, Write(path, func(w io.Writer) error {
		_, err := io.WriteString(w, big)
		return err
	}))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, big, string(got))
	assertOnly(t, filepath.Dir(path), "out.txt")
}

func TestWriteFailureKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		fmt.Fprint(w, strings.Repeat("partial", 1<<16))
		return boom
	})
	assert.ErrorIs(t, err, boom)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(got), "an existing file is replaced only by a complete one")
	assertOnly(t, dir, "out.txt")
}

func TestWriteReplacesKeepingPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	require.NoError(t, Write(path, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestWriteThroughALinkKeepsTheLink(t *testing.T) {
	dir := t.TempDir()
	target, link := filepath.Join(dir, "target.txt"), filepath.Join(dir, "link.txt")
	require.NoError(t, os.WriteFile(target, []byte("old"), 0o644))
	require.NoError(t, os.Symlink(target, link))
	require.NoError(t, Write(link, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }))
	st, err := os.Lstat(link)
	require.NoError(t, err)
	assert.NotZero(t, st.Mode()&os.ModeSymlink, "the link stays a link")
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))
}

func TestWriteReportsCreateError(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "missing", "out.txt"), func(io.Writer) error { return nil })
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "out.txt")
	assert.NotContains(t, err.Error(), ".partial", "the temporary name is not the user's concern")
}

func TestWriteToADevice(t *testing.T) {
	if _, err := os.Stat(os.DevNull); err != nil {
		t.Skip("no", os.DevNull)
	}
	require.NoError(t, Write(os.DevNull, func(w io.Writer) error { _, err := io.WriteString(w, "x"); return err }))
	st, err := os.Stat(os.DevNull)
	require.NoError(t, err)
	assert.False(t, st.Mode().IsRegular(), "the device is not replaced by a file")
}

func TestCreateCommitAndAbandon(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("old trace"), 0o644))

	f, err := Create(path)
	require.NoError(t, err)
	_, err = io.WriteString(f, "half")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(filepath.Base(f.Name()), "run.jsonl."), f.Name())
	assert.True(t, strings.HasSuffix(f.Name(), ".partial"), f.Name())
	got, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, "half", string(got), "what is written is readable before the commit (a crash leaves it)")
	require.NoError(t, f.Close())
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old trace", string(got), "an abandoned file leaves the old one")
	assertOnly(t, dir, "run.jsonl")

	f, err = Create(path)
	require.NoError(t, err)
	_, err = io.WriteString(f, "new trace")
	require.NoError(t, err)
	require.NoError(t, f.Commit())
	require.NoError(t, f.Close(), "Close after Commit does nothing")
	assert.ErrorIs(t, f.Commit(), os.ErrClosed)
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new trace", string(got))
	assertOnly(t, dir, "run.jsonl")
}

// assertOnly checks that dir holds just the named files: no temporary file
// is left behind.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	assert.ElementsMatch(t, names, got)
}
