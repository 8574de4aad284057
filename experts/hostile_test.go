package experts

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireFormatError checks that err is a *FormatError wrapping sentinel,
// naming field (a substring) at offset (unless offset < 0).
func requireFormatError(t *testing.T, err error, sentinel error, field string, offset int64) *FormatError {
	t.Helper()
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, err, sentinel)
	assert.Contains(t, fe.Field, field, "field of %v", err)
	if offset >= 0 {
		assert.Equal(t, offset, fe.Offset, "offset of %v", err)
	}
	return fe
}

func parseBytes(b []byte) (*File, error) { return parse("", b) }

func TestValidTestFiles(t *testing.T) {
	for name, g := range map[string]*testGGUF{"qwen3moe": tinyMoE(ArchQwen3MoE), "qwen35moe": tinyHybrid()} {
		t.Run(name, func(t *testing.T) {
			b, l := g.bytes()
			f, err := parseBytes(b)
			require.NoError(t, err)
			assert.Equal(t, l.dataOffset, f.DataOffset())
			for i, tensor := range f.Tensors() {
				assert.Equal(t, l.dataOffset+int64(l.tensorDataRel[i]), tensor.Offset)
				assert.Equal(t, l.tensorAt[i], tensor.infoOffset)
			}
			m, err := NewModel(f)
			require.NoError(t, err)
			assert.Equal(t, []int{0, 1}, m.MoELayers())
			assert.Equal(t, 8, m.Params.VocabSize)
		})
	}
}

// TestTruncatedEverywhere cuts valid files at every offset of their header
// and at many of their data: each prefix must fail with ErrTruncated at an
// offset inside the prefix.
func TestTruncatedEverywhere(t *testing.T) {
	check := func(t *testing.T, b []byte, ends ...int) {
		for n := range len(b) {
			if !slices.Contains(ends, n) && n > ends[0] && n%97 != 0 {
				continue // every header offset, a sample of the data
			}
			_, err := parseBytes(b[:n])
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrTruncated) || fe.Offset > int64(n) {
				t.Fatalf("cut at %d: got %v, want a FormatError wrapping ErrTruncated at an offset <= %d", n, err, n)
			}
		}
	}
	t.Run("built", func(t *testing.T) {
		b, l := tinyHybrid().bytes()
		check(t, b, int(l.dataOffset), len(b)-1)
	})
	t.Run("oracle", func(t *testing.T) {
		b, err := os.ReadFile(testModelPath("qwen3moe-tiny-q8_0"))
		require.NoError(t, err)
		f, err := parseBytes(b)
		require.NoError(t, err)
		check(t, b, int(f.DataOffset()), len(b)-1)
	})
}

func TestHostileHeaders(t *testing.T) {
	huge := uint64(1) << 40
	cases := []struct {
		name     string
		edit     func(g *testGGUF)
		sentinel error
		field    string
		offset   func(l layout) int64 // nil: not checked
	}{
		{"bad magic", func(g *testGGUF) { g.magic = "GGML" }, ErrNotGGUF, "magic", at(0)},
		{"version 0", func(g *testGGUF) { g.version = 0 }, ErrUnsupportedVersion, "version", at(4)},
		{"version 1", func(g *testGGUF) { g.version = 1 }, ErrUnsupportedVersion, "version", at(4)},
		{"version 4", func(g *testGGUF) { g.version = 4 }, ErrUnsupportedVersion, "version", at(4)},
		{"big-endian", func(g *testGGUF) { g.version = 3 << 24 }, ErrUnsupportedVersion, "version", at(4)},
		{"tensor count beyond limit", func(g *testGGUF) { g.tensorCount = ptr(uint64(1) << 62) }, ErrLimit, "tensor count", at(8)},
		{"tensor count beyond file", func(g *testGGUF) { g.tensorCount = ptr(uint64(MaxTensors)) }, ErrTruncated, "tensor and kv counts", at(8)},
		{"kv count beyond limit", func(g *testGGUF) { g.kvCount = ptr(uint64(1) << 63) }, ErrLimit, "kv count", at(16)},
		{"kv count beyond file", func(g *testGGUF) { g.kvCount = ptr(uint64(MaxKVs)) }, ErrTruncated, "tensor and kv counts", at(8)},
		{"key too long", func(g *testGGUF) { g.set(strings.Repeat("k", MaxNameLength+1), u32v(1)) }, ErrLimit, "key", lastKV},
		{"empty key", func(g *testGGUF) { g.set("", u32v(1)) }, ErrMalformed, "key", lastKV},
		{"duplicate key", func(g *testGGUF) { g.kvs = append(g.kvs, g.kvs[0]) }, ErrDuplicate, `kv "general.architecture"`, lastKV},
		{"unknown value type", func(g *testGGUF) { g.set("x", rawv(13)) }, ErrUnknownValueType, `kv "x" type`, nil},
		{"huge string", func(g *testGGUF) { g.set("x", encoded{uint32(ValueString), le64(huge)}) }, ErrLimit, `kv "x"`, nil},
		{"string beyond file", func(g *testGGUF) { g.set("x", encoded{uint32(ValueString), le64(MaxStringLength)}) }, ErrTruncated, `kv "x"`, nil},
		{"huge array", func(g *testGGUF) { g.set("x", arrv(ValueUint8, huge, nil)) }, ErrLimit, `kv "x"`, nil},
		{"array beyond file", func(g *testGGUF) { g.set("x", arrv(ValueUint64, MaxArrayLength, nil)) }, ErrTruncated, `kv "x"`, nil},
		{"string array beyond file", func(g *testGGUF) { g.set("x", arrv(ValueString, MaxArrayLength, nil)) }, ErrTruncated, `kv "x"`, nil},
		{"string in array too long", func(g *testGGUF) {
			g.set("x", arrv(ValueString, 2, append(encStr("ok"), le64(huge)...)))
		}, ErrLimit, `kv "x" element 1`, nil},
		{"unknown array type", func(g *testGGUF) { g.set("x", arrv(99, 1, []byte{0})) }, ErrUnknownValueType, `kv "x"`, nil},
		{"arrays nested too deep", func(g *testGGUF) {
			v := arrv(ValueUint8, 0, nil)
			for range MaxArrayDepth {
				v = arrv(ValueArray, 1, v.payload)
			}
			g.set("x", v)
		}, ErrLimit, `kv "x"`, nil},
		{"alignment not a power of two", func(g *testGGUF) { g.set(alignmentKey, u32v(48)) }, ErrMalformed, `kv "general.alignment"`, lastKV},
		{"alignment zero", func(g *testGGUF) { g.set(alignmentKey, u32v(0)) }, ErrMalformed, `kv "general.alignment"`, lastKV},
		{"alignment not uint32", func(g *testGGUF) { g.set(alignmentKey, u64v(32)) }, ErrMalformed, `kv "general.alignment"`, lastKV},
		{"alignment beyond file", func(g *testGGUF) { g.set(alignmentKey, u32v(1<<31)) }, ErrTruncated, "data section", nil},
		{"tensor name too long", func(g *testGGUF) { g.tensors[0].name = strings.Repeat("t", MaxNameLength+1) }, ErrLimit, "tensor[0] name", tensorInfo(0)},
		{"duplicate tensor", func(g *testGGUF) { g.tensors[1].name = g.tensors[0].name }, ErrDuplicate, `tensor "token_embd.weight"`, tensorInfo(1)},
		{"five dimensions", func(g *testGGUF) { g.tensors[0].dims = []uint64{32, 1, 1, 1, 1} }, ErrMalformed, `tensor "token_embd.weight" n_dims`, nil},
		{"no dimensions", func(g *testGGUF) { g.tensors[0].dims = nil }, ErrMalformed, "n_dims", nil},
		{"n_dims beyond the dims", func(g *testGGUF) { g.tensors[0].nDims = ptr(uint32(4)) }, ErrMalformed, "dims[2]", nil},
		{"zero dimension", func(g *testGGUF) { g.tensors[0].dims = []uint64{32, 0} }, ErrMalformed, "dims[1]", nil},
		{"dimensions overflow uint64", func(g *testGGUF) { g.tensors[0].dims = []uint64{1 << 32, 1 << 32} }, ErrLimit, "dims[1]", nil},
		{"dimensions overflow int64", func(g *testGGUF) { g.tensors[0].dims = []uint64{1 << 62, 3} }, ErrLimit, "dims[1]", nil},
		{"byte size overflows", func(g *testGGUF) { g.tensors[0].dims = []uint64{1 << 61, 2} }, ErrLimit, `tensor "token_embd.weight" type`, nil},
		{"partial block", func(g *testGGUF) { g.tensors[0].typ, g.tensors[0].dims = TypeQ4_K, []uint64{100, 8} }, ErrMalformed, "type", nil},
		{"retired type id", func(g *testGGUF) { g.tensors[0].typ = 4 }, ErrUnknownType, `tensor "token_embd.weight" type`, nil},
		{"type id beyond the table", func(g *testGGUF) { g.tensors[0].typ = 1000 }, ErrUnknownType, "type", nil},
		{"misaligned data", func(g *testGGUF) { g.tensors[1].offset = ptr(uint64(8)) }, ErrMalformed, `tensor "output_norm.weight" offset`, tensorOffset(1)},
		{"data past the end", func(g *testGGUF) { g.tensors[1].offset = ptr(uint64(1) << 20) }, ErrTruncated, "offset", tensorOffset(1)},
		{"data offset overflows", func(g *testGGUF) { g.tensors[1].offset = ptr(uint64(1) << 63) }, ErrTruncated, "offset", tensorOffset(1)},
		{"data overlapping", func(g *testGGUF) { g.tensors[2].offset = ptr(uint64(0)) }, ErrMalformed, "offset", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := tinyMoE(ArchQwen3MoE)
			c.edit(g)
			b, l := g.bytes()
			f, err := parseBytes(b)
			require.Nil(t, f)
			offset := int64(-1)
			if c.offset != nil {
				offset = c.offset(l)
			}
			requireFormatError(t, err, c.sentinel, c.field, offset)
			assert.True(t, strings.HasPrefix(err.Error(), "experts: "), err.Error())
			assert.NotContains(t, err.Error(), "experts: experts:")
		})
	}
}

func at(off int64) func(layout) int64       { return func(layout) int64 { return off } }
func lastKV(l layout) int64                 { return l.kvAt[len(l.kvAt)-1] }
func tensorInfo(i int) func(layout) int64   { return func(l layout) int64 { return l.tensorAt[i] } }
func tensorOffset(i int) func(layout) int64 { return func(l layout) int64 { return l.tensorOffAt[i] } }

func TestBigEndianMessage(t *testing.T) {
	g := tinyMoE(ArchQwen3MoE)
	g.version = 2 << 24
	b, _ := g.bytes()
	_, err := parseBytes(b)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.Contains(t, err.Error(), "big-endian")
	assert.Contains(t, err.Error(), "version 2")
}

// A known type this package cannot dequantize, or a tensor file without any
// tensors, still opens.
func TestUnusualButValid(t *testing.T) {
	g := tinyMoE(ArchQwen3MoE)
	g.add("extra.weight", TypeIQ2_XXS, 256, 2)
	g.add("ternary.weight", TypeTQ1_0, 256)
	g.set("nested", arrv(ValueArray, 2, append(arrv(ValueUint8, 1, []byte{7}).payload, arrv(ValueString, 1, encStr("s")).payload...)))
	g.set("general.alignment", u32v(64))
	g.alignment = 64
	g.version = 2
	b, l := g.bytes()
	f, err := parseBytes(b)
	require.NoError(t, err)
	assert.EqualValues(t, 2, f.Version())
	assert.EqualValues(t, 64, f.Alignment())
	assert.Equal(t, l.dataOffset, f.DataOffset())
	iq, ok := f.Tensor("extra.weight")
	require.True(t, ok)
	assert.Equal(t, TypeIQ2_XXS, iq.Type)
	assert.EqualValues(t, 2*66, iq.Size)
	assert.Zero(t, iq.Offset%64)

	nested, ok := f.Value("nested")
	require.True(t, ok)
	assert.Equal(t, ValueArray, nested.ElemType())
	require.Equal(t, 2, nested.Len())
	inner, ok := nested.Index(0).AsInts()
	assert.True(t, ok)
	assert.Equal(t, []int64{7}, inner)
	s, ok := nested.Index(1).AsStrings()
	assert.True(t, ok)
	assert.Equal(t, []string{"s"}, s)
	assert.Equal(t, `[[7] ["s"]]`, nested.String())

	empty := newTestGGUF()
	empty.set("general.architecture", strv("none"))
	b, _ = empty.bytes()
	f, err = parseBytes(b)
	require.NoError(t, err)
	assert.Empty(t, f.Tensors())
	assert.Equal(t, int64(len(b)), f.DataOffset())
	_, err = NewModel(f)
	assert.ErrorIs(t, err, ErrKeyNotFound)
}

func TestHostileModels(t *testing.T) {
	cases := []struct {
		name     string
		build    func() *testGGUF
		sentinel error
		inMsg    string // a substring of the error message
	}{
		{"no architecture", func() *testGGUF { return tinyMoE(ArchQwen3MoE).del("general.architecture") }, ErrKeyNotFound, "general.architecture"},
		{"missing block_count", func() *testGGUF { return tinyMoE(ArchQwen3MoE).del("qwen3moe.block_count") }, ErrKeyNotFound, `"qwen3moe.block_count"`},
		{"missing expert_count", func() *testGGUF { return tinyMoE("mixtral").del("mixtral.expert_count") }, ErrKeyNotFound, `"mixtral.expert_count"`},
		{"missing rms epsilon", func() *testGGUF {
			return tinyMoE(ArchQwen3MoE).del("qwen3moe.attention.layer_norm_rms_epsilon")
		}, ErrKeyNotFound, "layer_norm_rms_epsilon"},
		{"missing ssm key", func() *testGGUF { return tinyHybrid().del("qwen35moe.ssm.conv_kernel") }, ErrKeyNotFound, `"qwen35moe.ssm.conv_kernel"`},
		{"missing rope sections", func() *testGGUF { return tinyHybrid().del("qwen35moe.rope.dimension_sections") }, ErrKeyNotFound, "rope.dimension_sections"},
		{"block_count a string", func() *testGGUF { return tinyMoE(ArchQwen3MoE).set("qwen3moe.block_count", strv("2")) }, ErrValueType, "block_count"},
		{"block_count negative", func() *testGGUF { return tinyMoE(ArchQwen3MoE).set("qwen3moe.block_count", i32v(-2)) }, ErrValueType, "block_count"},
		{"block_count huge", func() *testGGUF {
			return tinyMoE(ArchQwen3MoE).set("qwen3moe.block_count", u64v(1<<40))
		}, ErrValueType, "block_count"},
		{"block_count beyond limit", func() *testGGUF {
			return tinyMoE(ArchQwen3MoE).set("qwen3moe.block_count", u32v(1<<30))
		}, ErrInconsistentModel, "block_count"},
		{"rope freq NaN", func() *testGGUF {
			return tinyMoE(ArchQwen3MoE).set("qwen3moe.rope.freq_base", f32v(float32(nan())))
		}, ErrValueType, "freq_base"},
		{"five rope sections", func() *testGGUF {
			return tinyHybrid().set("qwen35moe.rope.dimension_sections", i32sv(1, 1, 1, 1, 1))
		}, ErrValueType, "dimension_sections"},
		{"architecture with a dot", func() *testGGUF { return tinyMoE(ArchQwen3MoE).set("general.architecture", strv("a.b")) }, ErrValueType, "general.architecture"},
		{"zero experts", func() *testGGUF { return tinyMoE(ArchQwen3MoE).set("qwen3moe.expert_count", u32v(0)) }, ErrInconsistentModel, "expert_count"},
		{"more used than experts", func() *testGGUF {
			return tinyMoE(ArchQwen3MoE).set("qwen3moe.expert_used_count", u32v(5))
		}, ErrInconsistentModel, "expert_used_count"},
		{"zero attention interval", func() *testGGUF {
			return tinyHybrid().set("qwen35moe.full_attention_interval", u32v(0))
		}, ErrInconsistentModel, "full_attention_interval"},
		{"unknown gating", func() *testGGUF { return tinyMoE("olmoe").set("olmoe.expert_gating_func", u32v(9)) }, ErrInconsistentModel, "expert_gating_func"},
		{"no experts", func() *testGGUF {
			g := tinyMoE(ArchQwen3MoE)
			for _, l := range []string{"0", "1"} {
				for _, p := range []string{"gate", "up", "down"} {
					g.dropTensor("blk." + l + ".ffn_" + p + "_exps.weight")
				}
			}
			return g
		}, ErrNoExperts, "ffn_"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := c.build().bytes()
			f, err := parseBytes(b)
			require.NoError(t, err)
			m, err := NewModel(f)
			require.Nil(t, m)
			require.ErrorIs(t, err, c.sentinel)
			assert.Contains(t, err.Error(), c.inMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "experts: "), err.Error())
			assert.NotContains(t, err.Error(), "experts: experts:")
		})
	}
}

func nan() float64 { return float64(float32(0)) / zero }

var zero = 0.0

// TestInconsistentExpertTensors: expert tensors that disagree with the
// hyper-parameters or each other give a *FormatError naming the tensor, at
// the offset of its description.
func TestInconsistentExpertTensors(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(g *testGGUF)
		tensor string
		field  string
	}{
		{"wrong expert count", func(g *testGGUF) { g.tensor("blk.1.ffn_up_exps.weight").dims[2] = 3 }, "blk.1.ffn_up_exps.weight", "dims[2]"},
		{"two-dimensional stack", func(g *testGGUF) {
			g.tensor("blk.0.ffn_gate_exps.weight").dims = []uint64{32, 128}
		}, "blk.0.ffn_gate_exps.weight", "dims"},
		{"wrong width", func(g *testGGUF) { g.tensor("blk.0.ffn_up_exps.weight").dims = []uint64{64, 32, 4} }, "blk.0.ffn_up_exps.weight", "dims"},
		{"down not embedding-sized", func(g *testGGUF) {
			g.tensor("blk.0.ffn_down_exps.weight").dims = []uint64{32, 16, 4}
		}, "blk.0.ffn_down_exps.weight", "dims[1]"},
		{"hidden size disagrees with the key", func(g *testGGUF) {
			g.set("qwen3moe.expert_feed_forward_length", u32v(64))
		}, "blk.0.ffn_down_exps.weight", "dims[0]"},
		{"missing down", func(g *testGGUF) { g.dropTensor("blk.1.ffn_down_exps.weight") }, "blk.1.ffn_gate_exps.weight", "name"},
		{"missing up", func(g *testGGUF) { g.dropTensor("blk.0.ffn_up_exps.weight") }, "blk.0.ffn_gate_exps.weight", "name"},
		{"missing router", func(g *testGGUF) { g.dropTensor("blk.0.ffn_gate_inp.weight") }, "blk.0.ffn_gate_exps.weight", "name"},
		{"router of the wrong size", func(g *testGGUF) { g.tensor("blk.0.ffn_gate_inp.weight").dims = []uint64{32, 5} }, "blk.0.ffn_gate_inp.weight", "dims"},
		{"layer beyond block_count", func(g *testGGUF) { g.add("blk.2.ffn_down_exps.weight", TypeF16, 32, 32, 4) }, "blk.2.ffn_down_exps.weight", "name"},
		{"merged and separate gate", func(g *testGGUF) { g.add("blk.0.ffn_gate_up_exps.weight", TypeQ8_0, 32, 64, 4) }, "blk.0.ffn_gate_up_exps.weight", "name"},
		{"half a shared expert", func(g *testGGUF) { g.add("blk.0.ffn_up_shexp.weight", TypeF32, 32, 32) }, "blk.0.ffn_up_shexp.weight", "name"},
		{"shared down alone", func(g *testGGUF) { g.add("blk.1.ffn_down_shexp.weight", TypeF32, 32, 32) }, "blk.1.ffn_down_shexp.weight", "name"},
		{"shared gate alone", func(g *testGGUF) { g.add("blk.0.ffn_gate_inp_shexp.weight", TypeF32, 32) }, "blk.0.ffn_gate_inp_shexp.weight", "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := tinyMoE(ArchQwen3MoE)
			c.edit(g)
			b, l := g.bytes()
			f, err := parseBytes(b)
			require.NoError(t, err)
			_, err = NewModel(f)
			idx := -1
			for i, tt := range g.tensors {
				if tt.name == c.tensor {
					idx = i
				}
			}
			require.GreaterOrEqual(t, idx, 0)
			requireFormatError(t, err, ErrInconsistentModel, strconv.Quote(c.tensor)+" "+c.field, l.tensorAt[idx])
		})
	}
	t.Run("shared expert of the wrong size", func(t *testing.T) {
		g := tinyHybrid()
		g.tensor("blk.1.ffn_up_shexp.weight").dims = []uint64{32, 16}
		b, _ := g.bytes()
		f, err := parseBytes(b)
		require.NoError(t, err)
		_, err = NewModel(f)
		requireFormatError(t, err, ErrInconsistentModel, `"blk.1.ffn_up_shexp.weight" dims`, -1)
	})
}

// TestGenericArchitectures: MoE models of other architectures open with
// llama.cpp's defaults for the keys they lack.
func TestGenericArchitectures(t *testing.T) {
	t.Run("mixtral-style llama", func(t *testing.T) {
		g := tinyMoE("llama")
		g.del("llama.expert_feed_forward_length").del("llama.attention.head_count_kv").del("tokenizer.ggml.tokens")
		b, _ := g.bytes()
		f, err := parseBytes(b)
		require.NoError(t, err)
		m, err := NewModel(f)
		require.NoError(t, err)
		h := m.Params
		assert.Equal(t, "llama", h.Arch)
		assert.Equal(t, 4, h.NumKVHeads, "defaults to head_count")
		assert.Equal(t, 8, h.KeyDim, "embedding/heads")
		assert.Equal(t, 8, h.ValueDim)
		assert.Equal(t, 8, h.RopeDims, "defaults to the head size")
		assert.EqualValues(t, 10000, h.RopeFreqBase)
		assert.Equal(t, 32, h.ExpertFFNDim, "from the tensors")
		assert.Equal(t, 8, h.VocabSize, "from token_embd")
		assert.True(t, h.ExpertWeightsNorm)
		assert.Equal(t, GatingSoftmax, h.ExpertGatingFunc)
		assert.True(t, h.IsFullAttention(1))
	})
	t.Run("deepseek2-style leading dense layer and merged gate_up", func(t *testing.T) {
		g := tinyMoE("deepseek2")
		for _, p := range []string{"gate_inp", "gate_exps", "up_exps", "down_exps"} {
			g.dropTensor("blk.0.ffn_" + p + ".weight")
		}
		g.dropTensor("blk.1.ffn_gate_exps.weight").dropTensor("blk.1.ffn_up_exps.weight")
		g.add("blk.0.ffn_gate.weight", TypeF32, 32, 64)
		g.add("blk.1.ffn_gate_up_exps.weight", TypeQ8_0, 32, 64, 4)
		g.set("deepseek2.expert_gating_func", u32v(uint32(GatingSigmoid)))
		g.set("deepseek2.expert_weights_norm", boolv(true))
		g.set("deepseek2.attention.head_count", i32sv(4, 4))
		b, _ := g.bytes()
		f, err := parseBytes(b)
		require.NoError(t, err)
		m, err := NewModel(f)
		require.NoError(t, err)
		assert.Equal(t, []int{1}, m.MoELayers())
		assert.Equal(t, GatingSigmoid, m.Params.ExpertGatingFunc)
		assert.True(t, m.Params.ExpertWeightsNorm)
		assert.Equal(t, 4, m.Params.NumHeads, "per-layer head counts")
		x, err := m.Expert(1, 3)
		require.NoError(t, err)
		require.Len(t, x.Parts, 2)
		assert.Equal(t, PartGateUp, x.Parts[0].Role)
		assert.Equal(t, uint64(64), x.Parts[0].Rows)
		assert.Equal(t, PartDown, x.Parts[1].Role)
		gateUp, _ := f.Tensor("blk.1.ffn_gate_up_exps.weight")
		assert.Equal(t, gateUp.Offset+3*gateUp.Size/4, x.Parts[0].Offset)
		_, err = m.Expert(0, 0)
		assert.ErrorIs(t, err, ErrOutOfRange)
		assert.Zero(t, m.ExpertBytes(0))
	})
}

func TestOpenModelErrorClosesFile(t *testing.T) {
	g := tinyMoE(ArchQwen3MoE).del("qwen3moe.block_count")
	b, _ := g.bytes()
	path := filepath.Join(t.TempDir(), "bad.gguf")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	_, err := OpenModel(path)
	require.ErrorIs(t, err, ErrKeyNotFound)
	assert.Contains(t, err.Error(), path)
	assert.False(t, errors.Is(err, ErrInconsistentModel))
}
