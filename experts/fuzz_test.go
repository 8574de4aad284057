package experts

import (
	"errors"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzOpen feeds arbitrary bytes to the GGUF parser and, when they parse,
// to the model view. Nothing may panic, every failure must be a
// *FormatError or a model error, and everything that parses must keep the
// reader's promises: tensor data inside the file, aligned, sized by type
// and shape; experts inside their stacked tensors.
//
// The seeds are small: the headers of the oracle models in testdata
// re-encoded with their arrays cut to a few elements and without tensor
// data (so they stop at the first tensor), and small complete models built
// by the tests.
func FuzzOpen(f *testing.F) {
	for _, name := range testModels {
		b, err := os.ReadFile(testModelPath(name))
		if err != nil {
			f.Fatal(err)
		}
		file, err := parseBytes(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(shrunkHeader(file))
	}
	for _, g := range []*testGGUF{
		smallMoE(ArchQwen3MoE, 4, TypeF32, TypeF16),
		addHybrid(smallMoE(ArchQwen35MoE, 4, TypeF32, TypeF32), 4),
		smallMoE("llama", 4, TypeF16, TypeBF16),
	} {
		b, _ := g.bytes()
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := parseBytes(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("parse error is not a *FormatError: %v", err)
			}
			_ = err.Error()
			return
		}
		checkFileInvariants(t, file, b)
		m, err := NewModel(file)
		if err != nil {
			_ = err.Error()
			return
		}
		checkModelInvariants(t, m)
	})
}

// shrunkHeader re-encodes f's header with every array cut to at most 4
// elements and no tensor data.
func shrunkHeader(f *File) []byte {
	g := newTestGGUF()
	g.version = f.Version()
	g.alignment = uint64(f.Alignment())
	g.noData = true
	for _, kv := range f.KVs() {
		g.set(kv.Key, encodeValue(kv.Value, 4))
	}
	for _, t := range f.Tensors() {
		g.tensors = append(g.tensors, testTensor{name: t.Name, typ: t.Type, dims: t.Dims, offset: ptr(uint64(t.Offset - f.DataOffset()))})
	}
	b, _ := g.bytes()
	return b
}

// encodeValue encodes v, keeping at most maxElems elements of arrays.
func encodeValue(v Value, maxElems int) encoded {
	if v.Type() != ValueArray {
		return scalarEncoding(v)
	}
	n := min(v.Len(), maxElems)
	var payload []byte
	for i := range n {
		// Elements are stored without their type: arrays of arrays hold
		// bare (element type, length, elements) triples.
		payload = append(payload, encodeValue(v.Index(i), maxElems).payload...)
	}
	return arrv(v.ElemType(), uint64(n), payload)
}

func scalarEncoding(v Value) encoded {
	switch x := v.x.(type) {
	case string:
		return strv(x)
	case bool:
		return boolv(x)
	case float32:
		return f32v(x)
	case float64:
		return encoded{uint32(ValueFloat64), le64(math.Float64bits(x))}
	}
	var b []byte
	i, _ := v.AsInt()
	if u, ok := v.x.(uint64); ok {
		i = int64(u)
	}
	for range v.Type().size() {
		b = append(b, byte(i))
		i >>= 8
	}
	return encoded{uint32(v.Type()), b}
}

func checkFileInvariants(t *testing.T, f *File, b []byte) {
	size := int64(len(b))
	if f.DataOffset() > size || f.DataOffset()%f.Alignment() != 0 && f.DataOffset() != size {
		t.Fatalf("data offset %d in a %d-byte file with alignment %d", f.DataOffset(), size, f.Alignment())
	}
	for _, kv := range f.KVs() {
		_ = kv.Value.String()
		_, _ = kv.Value.AsInts()
		_, _ = kv.Value.AsFloats()
		_, _ = kv.Value.AsStrings()
	}
	for _, ti := range f.Tensors() {
		want, err := ti.Type.RowBytes(ti.Elements())
		if err != nil || int64(want) != ti.Size {
			t.Fatalf("tensor %q: size %d, type and shape say %d (%v)", ti.Name, ti.Size, want, err)
		}
		if ti.Offset < f.DataOffset() || ti.Offset+ti.Size > size || (ti.Offset-f.DataOffset())%f.Alignment() != 0 {
			t.Fatalf("tensor %q: %d bytes at %d, data section at %d, file size %d", ti.Name, ti.Size, ti.Offset, f.DataOffset(), size)
		}
		if ti.Stride(len(ti.Dims)) != ti.Size {
			t.Fatalf("tensor %q: outermost stride %d, size %d", ti.Name, ti.Stride(len(ti.Dims)), ti.Size)
		}
		data, err := f.TensorData(ti)
		if err != nil || int64(len(data)) != ti.Size {
			t.Fatalf("tensor %q: TensorData gave %d bytes, %v", ti.Name, len(data), err)
		}
	}
}

func checkModelInvariants(t *testing.T, m *Model) {
	var total int64
	for _, layer := range m.MoELayers() {
		el, ok := m.Experts(layer)
		if !ok {
			t.Fatalf("MoE layer %d has no experts", layer)
		}
		total += el.ExpertBytes * int64(el.NumExperts)
		for _, e := range []int{0, el.NumExperts - 1} {
			x, err := m.Expert(layer, e)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range x.Parts {
				if p.Offset < p.Tensor.Offset || p.Offset+p.Size > p.Tensor.Offset+p.Tensor.Size {
					t.Fatalf("layer %d expert %d %v: %d bytes at %d outside tensor %q", layer, e, p.Role, p.Size, p.Offset, p.Tensor.Name)
				}
				buf := make([]byte, p.Size)
				if _, err := m.File.ReadAt(buf, p.Offset); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if total != m.TotalExpertBytes() || m.NonExpertBytes() < 0 {
		t.Fatalf("expert bytes %d (sum %d), non-expert bytes %d", m.TotalExpertBytes(), total, m.NonExpertBytes())
	}
	for l := range m.Params.NumLayers {
		_ = m.Params.IsFullAttention(l)
		_, _ = m.SharedExpert(l)
	}
}

// TestShrunkHeader checks the seed encoder: a shrunk header parses up to
// the tensor data it lacks, with the original's metadata, arrays cut short.
func TestShrunkHeader(t *testing.T) {
	f := openTest(t, "qwen35moe-small-q4_k_m")
	b := shrunkHeader(f)
	assert.Less(t, len(b), 8<<10)
	_, err := parseBytes(b)
	requireFormatError(t, err, ErrTruncated, `tensor "output.weight" offset`, -1)

	g := newTestGGUF()
	for _, kv := range f.KVs() {
		g.set(kv.Key, encodeValue(kv.Value, 4))
	}
	b, _ = g.bytes()
	meta, err := parseBytes(b)
	require.NoError(t, err)
	require.Len(t, meta.KVs(), len(f.KVs()))
	for i, kv := range meta.KVs() {
		orig := f.KVs()[i]
		assert.Equal(t, orig.Key, kv.Key)
		assert.Equal(t, orig.Value.Type(), kv.Value.Type(), kv.Key)
		if kv.Value.Type() == ValueArray {
			assert.Equal(t, min(4, orig.Value.Len()), kv.Value.Len(), kv.Key)
			assert.Equal(t, orig.Value.Index(0), kv.Value.Index(0), kv.Key)
		} else {
			assert.Equal(t, orig.Value, kv.Value, kv.Key)
		}
	}
}
