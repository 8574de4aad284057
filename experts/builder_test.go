package experts

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// testGGUF builds GGUF files byte by byte for the tests, including files no
// well-behaved writer would produce: every field can be overridden.
type testGGUF struct {
	magic       string
	version     uint32
	alignment   uint64 // layout of the data section (the key is separate)
	kvs         []testKV
	tensors     []testTensor
	tensorCount *uint64 // overrides len(tensors)
	kvCount     *uint64 // overrides len(kvs)
	noData      bool    // stop after the header
}

type testKV struct {
	key   string
	value encoded
}

// encoded is a metadata value: its type id and its bytes.
type encoded struct {
	typ     uint32
	payload []byte
}

type testTensor struct {
	name   string
	typ    Type
	dims   []uint64
	nDims  *uint32 // overrides len(dims)
	offset *uint64 // overrides the laid-out relative offset
	size   int     // data bytes; 0: computed from type and dims
}

// layout records where the builder put things.
type layout struct {
	kvAt          []int64 // start of each kv
	tensorAt      []int64 // start of each tensor info
	tensorOffAt   []int64 // the offset field of each tensor info
	headerEnd     int64
	dataOffset    int64
	tensorDataRel []uint64
}

func newTestGGUF() *testGGUF { return &testGGUF{magic: "GGUF", version: 3, alignment: 32} }

func le32(x uint32) []byte   { return binary.LittleEndian.AppendUint32(nil, x) }
func le64(x uint64) []byte   { return binary.LittleEndian.AppendUint64(nil, x) }
func encStr(s string) []byte { return append(le64(uint64(len(s))), s...) }

func u32v(x uint32) encoded  { return encoded{uint32(ValueUint32), le32(x)} }
func i32v(x int32) encoded   { return encoded{uint32(ValueInt32), le32(uint32(x))} }
func u64v(x uint64) encoded  { return encoded{uint32(ValueUint64), le64(x)} }
func f32v(x float32) encoded { return encoded{uint32(ValueFloat32), le32(math.Float32bits(x))} }
func boolv(b bool) encoded {
	return encoded{uint32(ValueBool), []byte{map[bool]byte{false: 0, true: 1}[b]}}
}
func strv(s string) encoded   { return encoded{uint32(ValueString), encStr(s)} }
func rawv(typ uint32) encoded { return encoded{typ: typ} }

// arrv is an array of elem with n claimed elements and the given payload.
func arrv(elem ValueType, n uint64, payload []byte) encoded {
	return encoded{uint32(ValueArray), slices.Concat(le32(uint32(elem)), le64(n), payload)}
}

func strsv(ss ...string) encoded {
	var p []byte
	for _, s := range ss {
		p = append(p, encStr(s)...)
	}
	return arrv(ValueString, uint64(len(ss)), p)
}

func i32sv(xs ...int32) encoded {
	var p []byte
	for _, x := range xs {
		p = append(p, le32(uint32(x))...)
	}
	return arrv(ValueInt32, uint64(len(xs)), p)
}

// set replaces key's value, or appends the key.
func (g *testGGUF) set(key string, v encoded) *testGGUF {
	for i := range g.kvs {
		if g.kvs[i].key == key {
			g.kvs[i].value = v
			return g
		}
	}
	g.kvs = append(g.kvs, testKV{key, v})
	return g
}

func (g *testGGUF) del(key string) *testGGUF {
	g.kvs = slices.DeleteFunc(g.kvs, func(kv testKV) bool { return kv.key == key })
	return g
}

func (g *testGGUF) add(name string, typ Type, dims ...uint64) *testGGUF {
	g.tensors = append(g.tensors, testTensor{name: name, typ: typ, dims: dims})
	return g
}

func (g *testGGUF) tensor(name string) *testTensor {
	for i := range g.tensors {
		if g.tensors[i].name == name {
			return &g.tensors[i]
		}
	}
	panic("test: no tensor " + name)
}

func (g *testGGUF) dropTensor(name string) *testGGUF {
	g.tensors = slices.DeleteFunc(g.tensors, func(t testTensor) bool { return t.name == name })
	return g
}

// dataSize is a tensor's data size, or 0 where it cannot be computed (the
// hostile shapes); such tensors get no data.
func (t *testTensor) dataSize() uint64 {
	if t.size > 0 {
		return uint64(t.size)
	}
	n := uint64(1)
	for _, d := range t.dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return 0
		}
		n = lo
	}
	size, err := t.typ.RowBytes(n)
	if err != nil || size > 1<<24 {
		return 0
	}
	return size
}

func (g *testGGUF) bytes() ([]byte, layout) {
	var b []byte
	var l layout
	b = append(b, g.magic...)
	b = append(b, le32(g.version)...)
	nt, nkv := uint64(len(g.tensors)), uint64(len(g.kvs))
	if g.tensorCount != nil {
		nt = *g.tensorCount
	}
	if g.kvCount != nil {
		nkv = *g.kvCount
	}
	b = append(b, le64(nt)...)
	b = append(b, le64(nkv)...)
	for _, kv := range g.kvs {
		l.kvAt = append(l.kvAt, int64(len(b)))
		b = append(b, encStr(kv.key)...)
		b = append(b, le32(kv.value.typ)...)
		b = append(b, kv.value.payload...)
	}
	align := func(x uint64) uint64 { return (x + g.alignment - 1) / g.alignment * g.alignment }
	var rel uint64
	for _, t := range g.tensors {
		l.tensorDataRel = append(l.tensorDataRel, rel)
		rel = align(rel + t.dataSize())
	}
	for i, t := range g.tensors {
		l.tensorAt = append(l.tensorAt, int64(len(b)))
		b = append(b, encStr(t.name)...)
		nd := uint32(len(t.dims))
		if t.nDims != nil {
			nd = *t.nDims
		}
		b = append(b, le32(nd)...)
		for _, d := range t.dims {
			b = append(b, le64(d)...)
		}
		b = append(b, le32(uint32(t.typ))...)
		l.tensorOffAt = append(l.tensorOffAt, int64(len(b)))
		off := l.tensorDataRel[i]
		if t.offset != nil {
			off = *t.offset
		}
		b = append(b, le64(off)...)
	}
	l.headerEnd = int64(len(b))
	if len(g.tensors) > 0 {
		b = append(b, make([]byte, align(uint64(len(b)))-uint64(len(b)))...)
	}
	l.dataOffset = int64(len(b))
	if rel > 0 && !g.noData {
		data := make([]byte, rel)
		for i := range data {
			data[i] = byte(i*7 + 1) // not all zeros, so views can be told apart
		}
		b = append(b, data...)
	}
	return b, l
}

func ptr[T any](x T) *T { return &x }

// tinyMoE is a small valid MoE model of arch with 2 layers, 4 experts of
// which 2 are used, embedding and expert width 32; gate and up experts are
// Q8_0, down experts F16.
func tinyMoE(arch string) *testGGUF { return smallMoE(arch, 32, TypeQ8_0, TypeF16) }

// smallMoE is tinyMoE with another width and expert types.
func smallMoE(arch string, width uint64, gateUpType, downType Type) *testGGUF {
	g := newTestGGUF()
	g.set("general.architecture", strv(arch))
	g.set("general.name", strv("tiny "+arch))
	for _, kv := range []struct {
		key string
		v   encoded
	}{
		{"block_count", u32v(2)},
		{"context_length", u32v(256)},
		{"embedding_length", u32v(uint32(width))},
		{"attention.head_count", u32v(4)},
		{"attention.head_count_kv", u32v(2)},
		{"expert_count", u32v(4)},
		{"expert_used_count", u32v(2)},
		{"expert_feed_forward_length", u32v(uint32(width))},
		{"attention.layer_norm_rms_epsilon", f32v(1e-6)},
	} {
		g.set(arch+"."+kv.key, kv.v)
	}
	g.set("tokenizer.ggml.tokens", strsv("a", "b", "c", "d", "e", "f", "g", "h"))
	g.add("token_embd.weight", TypeF32, width, 8)
	g.add("output_norm.weight", TypeF32, width)
	for _, l := range []string{"0", "1"} {
		g.add("blk."+l+".ffn_gate_inp.weight", TypeF32, width, 4)
		g.add("blk."+l+".ffn_gate_exps.weight", gateUpType, width, width, 4)
		g.add("blk."+l+".ffn_up_exps.weight", gateUpType, width, width, 4)
		g.add("blk."+l+".ffn_down_exps.weight", downType, width, width, 4)
	}
	return g
}

// tinyHybrid is tinyMoE as a qwen35moe with a shared expert per layer and
// full attention every second layer.
func tinyHybrid() *testGGUF { return addHybrid(tinyMoE(ArchQwen35MoE), 32) }

func addHybrid(g *testGGUF, width uint64) *testGGUF {
	for _, kv := range []struct {
		key string
		v   encoded
	}{
		{"full_attention_interval", u32v(2)},
		{"ssm.conv_kernel", u32v(4)},
		{"ssm.state_size", u32v(8)},
		{"ssm.group_count", u32v(2)},
		{"ssm.time_step_rank", u32v(4)},
		{"ssm.inner_size", u32v(32)},
		{"rope.dimension_count", u32v(4)},
		{"rope.dimension_sections", i32sv(1, 1, 0, 0)},
		{"expert_shared_feed_forward_length", u32v(uint32(width))},
	} {
		g.set(ArchQwen35MoE+"."+kv.key, kv.v)
	}
	for _, l := range []string{"0", "1"} {
		g.add("blk."+l+".ffn_gate_shexp.weight", TypeF32, width, width)
		g.add("blk."+l+".ffn_up_shexp.weight", TypeF32, width, width)
		g.add("blk."+l+".ffn_down_shexp.weight", TypeF32, width, width)
		g.add("blk."+l+".ffn_gate_inp_shexp.weight", TypeF32, width)
	}
	return g
}
