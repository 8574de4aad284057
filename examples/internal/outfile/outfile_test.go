package outfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	require.NoError(t, os.WriteFile(model, []byte("GGUF"), 0o644))
	link := filepath.Join(dir, "link.gguf")
	require.NoError(t, os.Symlink(model, link))
	hard := filepath.Join(dir, "hard.gguf")
	require.NoError(t, os.Link(model, hard))
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))

	require.NoError(t, Check([]Output{{Flag: "-heatmap", Path: filepath.Join(dir, "h.png")}, {Flag: "-trace", Path: ""}}, model))

	for _, tc := range []struct {
		out  Output
		want error
		msg  string
	}{
		{Output{Flag: "-trace", Path: model}, ErrIsInput, "-trace " + model},
		{Output{Flag: "-heatmap", Path: link}, ErrIsInput, "-heatmap " + link},
		{Output{Flag: "-curves", Path: hard}, ErrIsInput, "-curves"},
		{Output{Flag: "-profile", Path: dir + "/./m.gguf"}, ErrIsInput, "-profile"},
		{Output{Flag: "-heatmap", Path: filepath.Join(dir, "missing", "x.png")}, os.ErrNotExist, "-heatmap"},
		{Output{Flag: "-curves", Path: filepath.Join(file, "c.png")}, nil, "-curves"},
		{Output{Flag: "-csv", Path: dir}, nil, "is a folder"},
	} {
		err := Check([]Output{tc.out}, model)
		require.Error(t, err, tc.out)
		if tc.want != nil {
			assert.ErrorIs(t, err, tc.want, tc.out)
		}
		assert.ErrorContains(t, err, tc.msg)
		assert.NotContains(t, err.Error(), ".outfile-check", "the probe's name is not the user's concern")
	}
	got, err := os.ReadFile(model)
	require.NoError(t, err)
	assert.Equal(t, "GGUF", string(got))
	assertOnly(t, dir, "m.gguf", "link.gguf", "hard.gguf", "file")
}

func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.png")
	err := Check([]Output{
		{Flag: "-heatmap", Path: out},
		{Flag: "-curves", Path: out},
		{Flag: "-profile", Path: filepath.Join(dir, "missing", "p.json")},
	})
	assert.ErrorIs(t, err, ErrSameOutput)
	assert.ErrorContains(t, err, "-curves "+out)
	assert.ErrorContains(t, err, "as -heatmap")
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "-profile")
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

// TestWrite writes each output it can: a failing one is named by its flag
// and does not stop the next; an output not asked for is skipped.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "a.txt"), filepath.Join(dir, "missing", "b.txt")
	text := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	var log bytes.Buffer
	err := Write(&log,
		Output{Flag: "-b", Path: bad, Write: text("b")},
		Output{Flag: "-skip", Write: text("never")},
		Output{Flag: "-a", Path: good, Write: text("a")})
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "-b: ")
	assert.NotContains(t, err.Error(), "-a")
	got, rerr := os.ReadFile(good)
	require.NoError(t, rerr)
	assert.Equal(t, "a", string(got))
	assert.Equal(t, "wrote "+good+"\n", log.String())
	assertOnly(t, dir, "a.txt")
}
