package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/profile"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	var stdout bytes.Buffer
	err := run(t.Context(), []string{
		"-trace", filepath.Join("..", "..", "profile", "testdata", "granite_tiny.json"),
		"-profile", out("p.json"), "-heatmap", out("h.png"), "-curves", out("c.png"), "-csv", out("p.csv"),
		"-sort", "popularity", "-scale", "log", "-phase", "decode",
	}, &stdout)
	require.NoError(t, err)
	assert.Contains(t, stdout.String(), "granite-tiny: 2 tokens")

	p, err := profile.Load(out("p.json"))
	require.NoError(t, err)
	assert.Equal(t, "granite_tiny decode", p.Workload)
	assert.EqualValues(t, 2, p.Tokens)
	for _, name := range []string{"h.png", "c.png"} {
		f, err := os.Open(out(name))
		require.NoError(t, err)
		_, err = png.Decode(f)
		f.Close()
		assert.NoError(t, err, name)
	}
	csv, err := os.ReadFile(out("p.csv"))
	require.NoError(t, err)
	assert.Equal(t, 1+2*4, bytes.Count(csv, []byte("\n")))
}

func TestRunErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-trace", "x"},
		{"-trace", "x", "-heatmap", "h.png", "-sort", "size"},
		{"-trace", "x", "-heatmap", "h.png", "-scale", "sqrt"},
		{"-trace", filepath.Join(t.TempDir(), "missing"), "-heatmap", "h.png"},
	} {
		assert.Error(t, run(t.Context(), args, &bytes.Buffer{}), "%q", args)
	}
}
