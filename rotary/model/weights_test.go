package model_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model"
)

func TestSetPart(t *testing.T) {
	data := make([]byte, 4*4*8) // 4 rows of 8 F32 values
	for i := range data {
		data[i] = byte(i)
	}
	var e model.ExpertWeights
	require.NoError(t, e.SetPart(experts.PartGateUp, model.Weight{Data: data, Type: experts.TypeF32, Rows: 4, Cols: 8, Name: "gate_up"}))
	assert.Equal(t, model.Weight{Data: data[:64], Type: experts.TypeF32, Rows: 2, Cols: 8, Name: "gate_up"}, e.Gate, "the gate's rows come first")
	assert.Equal(t, model.Weight{Data: data[64:], Type: experts.TypeF32, Rows: 2, Cols: 8, Name: "gate_up"}, e.Up)
	assert.Equal(t, 64, cap(e.Gate.Data), "appending to the gate cannot overwrite the up")

	down := model.Weight{Data: data[:32], Type: experts.TypeF32, Rows: 8, Cols: 1}
	require.NoError(t, e.SetPart(experts.PartDown, down))
	assert.Equal(t, down, e.Down)
	assert.ErrorIs(t, e.SetPart(experts.PartRole(9), down), model.ErrExpertSource)
}

func TestFileSource(t *testing.T) {
	em, err := experts.OpenModel(filepath.Join(modelDir, "qwen3moe-tiny-q8_0.gguf"))
	require.NoError(t, err)
	defer em.Close()
	src := model.NewFileSource(em)
	ctx := context.Background()

	l, err := src.Acquire(ctx, 1, []int{3, 7})
	require.NoError(t, err)
	defer l.Release()
	require.Len(t, l.Weights(), 2)
	want, err := em.Expert(1, 7)
	require.NoError(t, err)
	got := l.Weights()[1]
	mapping := em.File.Mapping()
	for i, w := range []model.Weight{got.Gate, got.Up, got.Down} {
		p := want.Parts[i]
		assert.Equal(t, mapping[p.Offset:p.Offset+p.Size], w.Data, "%v", p.Role)
		assert.Equal(t, model.Weight{Data: w.Data, Type: p.Type, Rows: int(p.Rows), Cols: int(p.Cols), Name: p.Tensor.Name}, w)
	}

	for _, bad := range []struct {
		layer int
		ids   []int
	}{{1, []int{em.Params.NumExperts}}, {1, []int{-1}}, {em.Params.NumLayers, []int{0}}} {
		_, err := src.Acquire(ctx, bad.layer, bad.ids)
		assert.ErrorIs(t, err, model.ErrExpertSource, "layer %d, experts %v", bad.layer, bad.ids)
	}
}
