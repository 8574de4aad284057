package experts

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantHParams are the oracle README's tables.
var wantHParams = map[string]HParams{
	"qwen3moe-tiny": {
		Arch: ArchQwen3MoE, NumLayers: 2, EmbeddingDim: 64, NumHeads: 4, NumKVHeads: 2, KeyDim: 32, ValueDim: 32,
		NumExperts: 16, NumExpertsUsed: 4, ExpertFFNDim: 64, ContextLength: 4096, VocabSize: 759,
		RopeFreqBase: 1e6, RopeDims: 32, RMSEps: 1e-6, FullAttentionInterval: 1,
		ExpertWeightsNorm: true, ExpertGatingFunc: GatingSoftmax,
	},
	"qwen3moe-small": {
		Arch: ArchQwen3MoE, NumLayers: 2, EmbeddingDim: 256, NumHeads: 4, NumKVHeads: 2, KeyDim: 128, ValueDim: 128,
		NumExperts: 8, NumExpertsUsed: 2, ExpertFFNDim: 256, ContextLength: 4096, VocabSize: 759,
		RopeFreqBase: 1e6, RopeDims: 128, RMSEps: 1e-6, FullAttentionInterval: 1,
		ExpertWeightsNorm: true, ExpertGatingFunc: GatingSoftmax,
	},
	"qwen35moe-tiny": {
		Arch: ArchQwen35MoE, NumLayers: 4, EmbeddingDim: 64, NumHeads: 2, NumKVHeads: 1, KeyDim: 64, ValueDim: 64,
		NumExperts: 16, NumExpertsUsed: 4, ExpertFFNDim: 32, SharedExpertFFNDim: 64, ContextLength: 4096, VocabSize: 759,
		RopeFreqBase: 1e7, RopeDims: 16, RopeSections: [4]int{3, 3, 2, 0}, RMSEps: 1e-6,
		FullAttentionInterval: 2, SSMConvKernel: 4, SSMStateSize: 32, SSMGroupCount: 2, SSMTimeStepRank: 4, SSMInnerSize: 128,
		ExpertWeightsNorm: true, ExpertGatingFunc: GatingSoftmax,
	},
	"qwen35moe-small": {
		Arch: ArchQwen35MoE, NumLayers: 4, EmbeddingDim: 256, NumHeads: 2, NumKVHeads: 1, KeyDim: 256, ValueDim: 256,
		NumExperts: 8, NumExpertsUsed: 2, ExpertFFNDim: 256, SharedExpertFFNDim: 256, ContextLength: 4096, VocabSize: 759,
		RopeFreqBase: 1e7, RopeDims: 64, RopeSections: [4]int{11, 11, 10, 0}, RMSEps: 1e-6,
		FullAttentionInterval: 4, SSMConvKernel: 4, SSMStateSize: 128, SSMGroupCount: 1, SSMTimeStepRank: 2, SSMInnerSize: 256,
		ExpertWeightsNorm: true, ExpertGatingFunc: GatingSoftmax,
	},
}

// shapeOf maps "qwen3moe-tiny-q8_0" to "qwen3moe-tiny".
func shapeOf(model string) string {
	parts := strings.SplitN(model, "-", 3)
	return parts[0] + "-" + parts[1]
}

func openTestModel(t testing.TB, name string) *Model {
	t.Helper()
	m, err := OpenModel(testModelPath(name))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func TestModelHParams(t *testing.T) {
	for _, name := range testModels {
		t.Run(name, func(t *testing.T) {
			m := openTestModel(t, name)
			want := wantHParams[shapeOf(name)]
			want.Name = m.Params.Name
			assert.Equal(t, want, m.Params)
			assert.Equal(t, want.Arch, m.Arch)
			assert.Contains(t, m.Params.Name, shapeOf(name))
		})
	}
}

func TestIsFullAttention(t *testing.T) {
	full := func(name string) (full, linear []int) {
		m := openTestModel(t, name)
		for l := range m.Params.NumLayers {
			if m.Params.IsFullAttention(l) {
				full = append(full, l)
			} else {
				linear = append(linear, l)
			}
		}
		return full, linear
	}
	f, l := full("qwen35moe-tiny-f32")
	assert.Equal(t, []int{1, 3}, f)
	assert.Equal(t, []int{0, 2}, l)
	f, l = full("qwen35moe-small-q4_k_m")
	assert.Equal(t, []int{3}, f)
	assert.Equal(t, []int{0, 1, 2}, l)
	f, l = full("qwen3moe-small-q4_k_m")
	assert.Equal(t, []int{0, 1}, f)
	assert.Empty(t, l)

	// The real Qwen3.5-35B-A3B: 40 layers, every fourth full attention.
	h := HParams{NumLayers: 40, FullAttentionInterval: 4}
	n := 0
	for l := range h.NumLayers {
		if h.IsFullAttention(l) {
			n++
		}
	}
	assert.Equal(t, 10, n)
	assert.True(t, HParams{}.IsFullAttention(7), "no interval: every layer")
}

// TestExpertIndex checks every expert of every model against the listing:
// expert e of a stacked tensor is its e-th equal slice.
func TestExpertIndex(t *testing.T) {
	for _, name := range testModels {
		t.Run(name, func(t *testing.T) {
			m := openTestModel(t, name)
			listing := readListing(t, name)
			h := m.Params

			var wantExpertBytes, wantOther int64
			stacked := map[string]int64{} // name -> n_bytes
			for _, lt := range listing.Tensors {
				if strings.HasSuffix(lt.Name, "_exps.weight") {
					wantExpertBytes += lt.NBytes
					stacked[lt.Name] = lt.NBytes
				} else {
					wantOther += lt.NBytes
				}
			}
			assert.Equal(t, wantExpertBytes, m.TotalExpertBytes())
			assert.Equal(t, wantOther, m.NonExpertBytes())

			layers := make([]int, h.NumLayers)
			for i := range layers {
				layers[i] = i
			}
			assert.Equal(t, layers, m.MoELayers(), "every layer is MoE")

			var sum int64
			for _, layer := range m.MoELayers() {
				el, ok := m.Experts(layer)
				require.True(t, ok)
				assert.Equal(t, h.NumExperts, el.NumExperts)
				assert.Equal(t, []uint64{uint64(h.EmbeddingDim), uint64(h.NumExperts)}, el.Router.Dims)
				roles := []PartRole{}
				for _, p := range el.Parts {
					roles = append(roles, p.Role)
				}
				assert.Equal(t, []PartRole{PartGate, PartUp, PartDown}, roles)
				assert.Equal(t, m.ExpertBytes(layer), el.ExpertBytes)

				for e := range h.NumExperts {
					x, err := m.Expert(layer, e)
					require.NoError(t, err)
					assert.Equal(t, layer, x.Layer)
					assert.Equal(t, e, x.ID)
					assert.Equal(t, el.ExpertBytes, x.Size())
					sum += x.Size()
					for _, p := range x.Parts {
						prefix := "blk." + strconv.Itoa(layer) + ".ffn_" + p.Role.String()
						assert.Equal(t, prefix+"_exps.weight", p.Tensor.Name)
						assert.Equal(t, stacked[p.Tensor.Name]/int64(h.NumExperts), p.Size)
						assert.Equal(t, p.Tensor.Offset+int64(e)*p.Size, p.Offset)
						assert.Equal(t, p.Tensor.Type, p.Type)
						if p.Role == PartDown {
							assert.Equal(t, [2]uint64{uint64(h.ExpertFFNDim), uint64(h.EmbeddingDim)}, [2]uint64{p.Cols, p.Rows})
						} else {
							assert.Equal(t, [2]uint64{uint64(h.EmbeddingDim), uint64(h.ExpertFFNDim)}, [2]uint64{p.Cols, p.Rows})
						}
						rowBytes, err := p.Type.RowBytes(p.Cols)
						require.NoError(t, err)
						assert.EqualValues(t, rowBytes*p.Rows, p.Size)

						// The expert's bytes through ReadAt equal the slice of the view.
						view, err := m.File.TensorData(p.Tensor)
						require.NoError(t, err)
						buf := make([]byte, p.Size)
						_, err = m.File.ReadAt(buf, p.Offset)
						require.NoError(t, err)
						assert.Equal(t, view[int64(e)*p.Size:int64(e+1)*p.Size], buf)
					}
				}
				_, err := m.Expert(layer, h.NumExperts)
				assert.ErrorIs(t, err, ErrOutOfRange)
				_, err = m.Expert(layer, -1)
				assert.ErrorIs(t, err, ErrOutOfRange)
			}
			assert.Equal(t, m.TotalExpertBytes(), sum)
			_, err := m.Expert(h.NumLayers, 0)
			assert.ErrorIs(t, err, ErrOutOfRange)
			_, ok := m.Experts(-1)
			assert.False(t, ok)
			assert.Zero(t, m.ExpertBytes(h.NumLayers))
		})
	}
}

func TestSharedExpert(t *testing.T) {
	m := openTestModel(t, "qwen35moe-small-q4_k_m")
	for layer := range m.Params.NumLayers {
		se, ok := m.SharedExpert(layer)
		require.True(t, ok)
		assert.Equal(t, layer, se.Layer)
		prefix := "blk." + strconv.Itoa(layer) + "."
		assert.Equal(t, prefix+"ffn_gate_shexp.weight", se.Gate.Name)
		assert.Equal(t, prefix+"ffn_up_shexp.weight", se.Up.Name)
		assert.Equal(t, prefix+"ffn_down_shexp.weight", se.Down.Name)
		require.NotNil(t, se.InputGate)
		assert.Equal(t, prefix+"ffn_gate_inp_shexp.weight", se.InputGate.Name)
		assert.Equal(t, []uint64{256, 256}, se.Gate.Dims)
	}
	_, ok := m.SharedExpert(m.Params.NumLayers)
	assert.False(t, ok)

	q3 := openTestModel(t, "qwen3moe-tiny-f32")
	_, ok = q3.SharedExpert(0)
	assert.False(t, ok, "qwen3moe has no shared expert")
}

// AppendExpert reads an expert's parts back to back: the file's bytes at
// each part's offset, ExpertBytes in all; a bad id is ErrOutOfRange.
func TestAppendExpert(t *testing.T) {
	m := openTestModel(t, "qwen35moe-small-q4_k_m")
	l := m.MoELayers()[1]
	ex, err := m.Expert(l, 3)
	require.NoError(t, err)
	got, err := m.AppendExpert([]byte{7}, l, 3)
	require.NoError(t, err)
	require.Len(t, got, 1+int(m.ExpertBytes(l)))
	assert.Equal(t, byte(7), got[0])
	off := 1
	for _, p := range ex.Parts {
		want := make([]byte, p.Size)
		_, err := m.File.ReadAt(want, p.Offset)
		require.NoError(t, err)
		assert.Equal(t, want, got[off:off+int(p.Size)], "%s", p.Role)
		off += int(p.Size)
	}
	_, err = m.AppendExpert(nil, l, m.Params.NumExperts)
	assert.ErrorIs(t, err, ErrOutOfRange)
}
