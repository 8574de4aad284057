package synth

import (
	"bytes"
	"context"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShapeWriter(t *testing.T) {
	s := Shape{Name: "shape", Arch: "llama", Layers: 3, MoELayers: []int{1, 2}, Experts: 16, TopK: 4,
		Embedding: 256, ExpertFFN: 96, NonExpertBytes: 1 << 20}
	w, err := ShapeWriter(s)
	require.NoError(t, err)
	m, err := OpenShape(w, t.TempDir())
	require.NoError(t, err)
	defer m.Close()
	h := m.Params
	assert.Equal(t, "shape", h.Name)
	assert.Equal(t, 3, h.NumLayers)
	assert.Equal(t, 16, h.NumExperts)
	assert.Equal(t, 4, h.NumExpertsUsed)
	assert.Equal(t, 256, h.EmbeddingDim)
	assert.Equal(t, 96, h.ExpertFFNDim)
	assert.Equal(t, []int{1, 2}, m.MoELayers())
	assert.Equal(t, w.Size(), m.File.Size())
	el, ok := m.Experts(1)
	require.True(t, ok)
	var types []experts.Type
	for _, p := range el.Parts {
		types = append(types, p.Type)
	}
	// Gate and up rows of 256 take Q4_K; down rows of 96 only Q8_0.
	assert.Equal(t, []experts.Type{experts.TypeQ4_K, experts.TypeQ4_K, experts.TypeQ8_0}, types)
	assert.Len(t, m.ExpertTensors(), 6)
	routers := int64(2 * 256 * 16 * 4)
	assert.GreaterOrEqual(t, m.NonExpertBytes(), int64(1<<20)+routers)
	assert.Less(t, m.NonExpertBytes(), int64(1<<20)+routers+2*256)

	// The sparse file is the file the Writer writes: its header, then zeros.
	var whole bytes.Buffer
	_, err = w.WriteTo(context.Background(), &whole)
	require.NoError(t, err)
	assert.Equal(t, whole.Bytes(), m.File.Mapping())

	for _, bad := range []Shape{
		{Arch: "", Layers: 1, Experts: 4, TopK: 2, Embedding: 32, ExpertFFN: 32},
		{Arch: "llama", Layers: 1, Experts: 4, TopK: 5, Embedding: 32, ExpertFFN: 32},
		{Arch: "llama", Layers: 2, MoELayers: []int{2}, Experts: 4, TopK: 2, Embedding: 32, ExpertFFN: 32},
		{Arch: "llama", Layers: 1, Experts: 4, TopK: 2, Embedding: 32, ExpertFFN: 32, NonExpertBytes: -1},
	} {
		_, err := ShapeWriter(bad)
		assert.ErrorIs(t, err, experts.ErrWriterInput, "%+v", bad)
	}
}

// TestOpenShapePreset opens the full-size Qwen3.5-35B-A3B preset without
// generating its 20 GB of weights.
func TestOpenShapePreset(t *testing.T) {
	w, err := NewWriter("qwen35moe-35b-a3b")
	require.NoError(t, err)
	m, err := OpenShape(w, t.TempDir())
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, w.Size(), m.File.Size())
	assert.Len(t, m.MoELayers(), 40)
	assert.Equal(t, 256, m.Params.NumExperts)
	assert.Greater(t, m.TotalExpertBytes(), int64(18<<30))
}
