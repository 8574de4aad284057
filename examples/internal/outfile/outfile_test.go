package outfile

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
}

func TestWriteFailureLeavesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		fmt.Fprint(w, "partial")
		return boom
	})
	assert.ErrorIs(t, err, boom)
	assert.NoFileExists(t, path)
}

func TestWriteReportsCreateError(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "missing", "out.txt"), func(io.Writer) error { return nil })
	assert.ErrorIs(t, err, os.ErrNotExist)
}
