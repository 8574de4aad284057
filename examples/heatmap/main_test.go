package main

import (
	"bytes"
	"image"
	_ "image/jpeg" // TestRunWritesJPEG decodes JPEG
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/profile/chart"
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

func TestRunRefusesUnknownImageFormat(t *testing.T) {
	dir := t.TempDir()
	err := run(t.Context(), []string{"-trace", filepath.Join("..", "..", "profile", "testdata", "granite_tiny.json"),
		"-heatmap", filepath.Join(dir, "h.gif")}, &bytes.Buffer{})
	assert.ErrorIs(t, err, chart.ErrFormat)
	assert.Contains(t, err.Error(), "-heatmap")
	assert.NoFileExists(t, filepath.Join(dir, "h.gif"))
}

func TestRunWritesJPEG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jpg")
	require.NoError(t, run(t.Context(), []string{"-trace", filepath.Join("..", "..", "profile", "testdata", "granite_tiny.json"),
		"-heatmap", path}, &bytes.Buffer{}))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, kind, err := image.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, "jpeg", kind)
}

func TestRunRejectsEmptyTrace(t *testing.T) {
	dir := t.TempDir()
	tr, err := profile.NewTrace(profile.ModelID{Name: "empty", Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 1})
	require.NoError(t, err)
	trace := filepath.Join(dir, "empty.jsonl")
	f, err := os.Create(trace)
	require.NoError(t, err)
	require.NoError(t, tr.Encode(f, profile.JSONL))
	require.NoError(t, f.Close())
	err = run(t.Context(), []string{"-trace", trace, "-heatmap", filepath.Join(dir, "h.png")}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no tokens")
	assert.NoFileExists(t, filepath.Join(dir, "h.png"))
}
