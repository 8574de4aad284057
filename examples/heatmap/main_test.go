package main

import (
	"bytes"
	"flag"
	"image"
	_ "image/jpeg" // TestRunWritesJPEG decodes JPEG
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/examples/internal/outfile"
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
	}, &stdout, &bytes.Buffer{})
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
		assert.Error(t, run(t.Context(), args, &bytes.Buffer{}, &bytes.Buffer{}), "%q", args)
	}
}

func TestRunRefusesUnknownImageFormat(t *testing.T) {
	dir := t.TempDir()
	err := run(t.Context(), []string{"-trace", filepath.Join("..", "..", "profile", "testdata", "granite_tiny.json"),
		"-heatmap", filepath.Join(dir, "h.gif")}, &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorIs(t, err, chart.ErrFormat)
	assert.Contains(t, err.Error(), "-heatmap")
	assert.NoFileExists(t, filepath.Join(dir, "h.gif"))
}

func TestRunWritesJPEG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jpg")
	require.NoError(t, run(t.Context(), []string{"-trace", filepath.Join("..", "..", "profile", "testdata", "granite_tiny.json"),
		"-heatmap", path}, &bytes.Buffer{}, &bytes.Buffer{}))
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
	err = run(t.Context(), []string{"-trace", trace, "-heatmap", filepath.Join(dir, "h.png")}, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no tokens")
	assert.NoFileExists(t, filepath.Join(dir, "h.png"))
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"-h"}, &bytes.Buffer{}, &stderr)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, stderr.String(), "usage: heatmap")
	assert.Contains(t, stderr.String(), "router profile")
	assert.Contains(t, stderr.String(), "-scale")
}

// TestOutputsNeverDestroyTheTrace names the trace as an output, and a
// folder that does not exist: nothing is read or written, each flag named.
func TestOutputsNeverDestroyTheTrace(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.json")
	orig, err := os.ReadFile(filepath.Join("..", "..", "profile", "testdata", "granite_tiny.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(trace, orig, 0o644))
	good := filepath.Join(dir, "h.png")
	err = run(t.Context(), []string{"-trace", trace, "-profile", trace, "-heatmap", good,
		"-curves", filepath.Join(dir, "missing", "c.png")}, &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorIs(t, err, outfile.ErrIsInput)
	assert.ErrorContains(t, err, "-profile "+trace)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "-curves")
	got, err := os.ReadFile(trace)
	require.NoError(t, err)
	assert.Equal(t, orig, got)
	assert.NoFileExists(t, good, "nothing is written when an output is bad")
}

// TestCutOffTrace reads a trace whose writer was killed mid-record.
func TestCutOffTrace(t *testing.T) {
	dir := t.TempDir()
	tr, err := profile.NewTrace(profile.ModelID{Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 2})
	require.NoError(t, err)
	tr.StartSegment("p", "decode")
	for range 3 {
		tok := tr.AddToken()
		for l := range 2 {
			require.NoError(t, tr.Set(tok, l, []int32{0, 3}, nil))
		}
	}
	var buf bytes.Buffer
	require.NoError(t, tr.Encode(&buf, profile.Binary))
	cut := filepath.Join(dir, "cut.bin")
	require.NoError(t, os.WriteFile(cut, buf.Bytes()[:buf.Len()-5], 0o644))
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-trace", cut, "-csv", filepath.Join(dir, "p.csv")}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "cut-off record")
	assert.Contains(t, stdout.String(), "2 tokens")
}
