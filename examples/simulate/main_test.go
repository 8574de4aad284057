package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
