package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSimulatePreset(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-model", "qwen3moe-tiny", "-slots", "4,8", "-vram", "8MiB", "-tokens", "300", "-plan"}, &out))
	text := out.String()
	for _, want := range []string{"routing:", "4 slots", "8 slots", "8.00 MiB", "LRU", "LFU", "pinned+LRU", "Belady", "tokens/s", "VRAM  8.00 MiB"} {
		assert.Contains(t, text, want)
	}

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"-model", "qwen3moe-tiny", "-slots", "6", "-tokens", "100", "-policies", "lru,belady", "-json"}, &out))
	var rep struct {
		Rows []struct {
			Policy  string  `json:"policy"`
			HitRate float64 `json:"hit_rate"`
		} `json:"rows"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	require.Len(t, rep.Rows, 2)
	assert.Equal(t, "Belady", rep.Rows[1].Policy)
	assert.GreaterOrEqual(t, rep.Rows[1].HitRate, rep.Rows[0].HitRate)
}

func TestSimulateBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-model", "qwen3moe-tiny", "-slots", "x"},
		{"-model", "qwen3moe-tiny", "-vram", "lots"},
		{"-model", "qwen3moe-tiny", "-policies", "fifo"},
		{"-model", "/no/such/model.gguf"},
		{"-trace", "/no/such/trace"},
		{"-model", "qwen3moe-tiny", "-slots", "2"}, // fewer than top-4
	} {
		assert.Error(t, run(context.Background(), args, &bytes.Buffer{}), "%q", args)
	}
}

// writeProfile writes an empty profile of model id.
func writeProfile(t *testing.T, id profile.ModelID) string {
	t.Helper()
	rec, err := profile.NewRecorder(id)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "profile.json")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, rec.Profile().Encode(f))
	require.NoError(t, f.Close())
	return path
}

func TestSimulateProfileOfAnotherModel(t *testing.T) {
	ctx := context.Background()
	m, err := openModel(ctx, "qwen3moe-tiny", nil, "", "")
	require.NoError(t, err)
	h := m.Params
	require.NoError(t, m.Close())
	args := []string{"-model", "qwen3moe-tiny", "-slots", "6", "-tokens", "50", "-policies", "pinned+lru", "-profile"}

	same := writeProfile(t, profile.ModelID{Arch: "qwen3moe", Layers: h.NumLayers, Experts: h.NumExperts, ExpertsUsed: h.NumExpertsUsed})
	var out bytes.Buffer
	require.NoError(t, run(ctx, append(args, same), &out))
	assert.Contains(t, out.String(), "pinned+LRU")
	assert.NotContains(t, out.String(), "in-sample")

	other := writeProfile(t, profile.ModelID{Arch: "qwen3moe", Layers: h.NumLayers, Experts: h.NumExperts / 2, ExpertsUsed: h.NumExpertsUsed})
	err = run(ctx, append(args, other), &bytes.Buffer{})
	assert.ErrorIs(t, err, profile.ErrModelMismatch)
}

// TestColumnsAddUp checks on a tiny model, where the host's part dominates,
// that compute, stall and host make the time per token, all in one unit.
func TestColumnsAddUp(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-trace", filepath.Join("..", "..", "profile", "testdata", "mixtral_tiny.jsonl"), "-slots", "8"}, &out))
	rows := 0
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) != 12 || f[1] != "slots" {
			continue
		}
		rows++
		var v [4]float64
		for i := range v {
			var err error
			v[i], err = strconv.ParseFloat(f[7+i], 64)
			require.NoError(t, err, line)
			assert.Len(t, strings.SplitAfter(f[7+i], ".")[1], 3, "three decimals: %s", line)
		}
		assert.InDelta(t, v[3], v[0]+v[1]+v[2], 0.0015, line)
	}
	assert.Equal(t, 4, rows, out.String())
	assert.Contains(t, out.String(), "ms/token")
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	diag = &stderr
	defer func() { diag = os.Stderr }()
	err := run(context.Background(), []string{"-h"}, &bytes.Buffer{})
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, stderr.String(), "usage: simulate")
	assert.Contains(t, stderr.String(), "virtual time")
}
