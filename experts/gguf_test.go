package experts

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The oracle models (see shared/testdata/oracle/README.md beside the repository), each with
// its llama.cpp-made listing <name>.tensors.json.
var testModels = []string{
	"qwen3moe-tiny-f32",
	"qwen3moe-tiny-q8_0",
	"qwen3moe-tiny-mxfp4_moe",
	"qwen3moe-small-q4_k_m",
	"qwen35moe-tiny-f32",
	"qwen35moe-small-q4_k_m",
}

func testModelPath(name string) string { return filepath.Join("testdata", name+".gguf") }

// tensorListing is the part of a .tensors.json file the tests compare.
type tensorListing struct {
	File     string `json:"file"`
	FileSize int64  `json:"file_size"`
	NTensors int    `json:"n_tensors"`
	Metadata map[string]struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	} `json:"metadata"`
	Tensors []struct {
		Name       string   `json:"name"`
		Type       string   `json:"type"`
		Ne         []uint64 `json:"ne"`
		NElements  uint64   `json:"n_elements"`
		NBytes     int64    `json:"n_bytes"`
		DataOffset int64    `json:"data_offset"`
	} `json:"tensors"`
}

func readListing(t *testing.T, name string) tensorListing {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".tensors.json"))
	require.NoError(t, err)
	var l tensorListing
	require.NoError(t, json.Unmarshal(b, &l))
	return l
}

func openTest(t testing.TB, name string) *File {
	t.Helper()
	f, err := Open(testModelPath(name))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// TestOpenMatchesListing checks every tensor's type, shape, size and data
// offset, and every metadata key, against llama.cpp's listing.
func TestOpenMatchesListing(t *testing.T) {
	for _, name := range testModels {
		t.Run(name, func(t *testing.T) {
			want := readListing(t, name)
			f := openTest(t, name)

			assert.EqualValues(t, 3, f.Version())
			assert.Equal(t, want.FileSize, f.Size())
			assert.EqualValues(t, 32, f.Alignment())
			assert.Zero(t, f.DataOffset()%f.Alignment())

			tensors := f.Tensors()
			require.Len(t, tensors, want.NTensors)
			require.Len(t, want.Tensors, want.NTensors)
			for i, wt := range want.Tensors {
				got := tensors[i]
				assert.Equal(t, wt.Name, got.Name, "tensor %d", i)
				assert.Equal(t, wt.Type, got.Type.String(), wt.Name)
				assert.Equal(t, wt.Ne, got.Dims, wt.Name)
				assert.Equal(t, wt.NElements, got.Elements(), wt.Name)
				assert.Equal(t, wt.NBytes, got.Size, wt.Name)
				assert.Equal(t, wt.DataOffset, got.Offset, wt.Name)
				byName, ok := f.Tensor(wt.Name)
				assert.True(t, ok)
				assert.Same(t, got, byName)
				data, err := f.TensorData(got)
				require.NoError(t, err)
				assert.Len(t, data, int(wt.NBytes))
			}

			kvs := f.KVs()
			assert.Len(t, kvs, len(want.Metadata))
			for _, kv := range kvs {
				wm, ok := want.Metadata[kv.Key]
				if !assert.True(t, ok, "unexpected key %q", kv.Key) {
					continue
				}
				checkListedValue(t, kv.Key, wm.Type, wm.Value, kv.Value)
			}
		})
	}
}

// checkListedValue compares a value with its JSON listing: scalars by value,
// arrays by element type and length.
func checkListedValue(t *testing.T, key, typ string, raw json.RawMessage, v Value) {
	t.Helper()
	listedTypes := map[string]ValueType{
		"UINT8": ValueUint8, "INT8": ValueInt8, "UINT16": ValueUint16, "INT16": ValueInt16,
		"UINT32": ValueUint32, "INT32": ValueInt32, "FLOAT32": ValueFloat32, "BOOL": ValueBool,
		"STRING": ValueString, "ARRAY": ValueArray, "UINT64": ValueUint64, "INT64": ValueInt64,
		"FLOAT64": ValueFloat64,
	}
	require.Contains(t, listedTypes, typ, key)
	require.Equal(t, listedTypes[typ], v.Type(), key)
	switch v.Type() {
	case ValueArray:
		var arr struct {
			ArrayOf string `json:"array_of"`
			Length  int    `json:"length"`
		}
		require.NoError(t, json.Unmarshal(raw, &arr), key)
		assert.Equal(t, listedTypes[arr.ArrayOf], v.ElemType(), key)
		assert.Equal(t, arr.Length, v.Len(), key)
	case ValueString:
		var s string
		require.NoError(t, json.Unmarshal(raw, &s), key)
		got, ok := v.AsString()
		assert.True(t, ok, key)
		assert.Equal(t, s, got, key)
	case ValueBool:
		var b bool
		require.NoError(t, json.Unmarshal(raw, &b), key)
		got, ok := v.AsBool()
		assert.True(t, ok, key)
		assert.Equal(t, b, got, key)
	case ValueFloat32, ValueFloat64:
		var x float64
		require.NoError(t, json.Unmarshal(raw, &x), key)
		got, ok := v.AsFloat()
		assert.True(t, ok, key)
		assert.Equal(t, float32(x), float32(got), key)
	default:
		var x int64
		require.NoError(t, json.Unmarshal(raw, &x), key)
		got, ok := v.AsInt()
		assert.True(t, ok, key)
		assert.Equal(t, x, got, key)
	}
}

func TestTypedGetters(t *testing.T) {
	f := openTest(t, "qwen35moe-small-q4_k_m")

	n, err := f.Uint("qwen35moe.block_count")
	require.NoError(t, err)
	assert.EqualValues(t, 4, n)
	i, err := f.Int("qwen35moe.expert_count")
	require.NoError(t, err)
	assert.EqualValues(t, 8, i)
	base, err := f.Float("qwen35moe.rope.freq_base")
	require.NoError(t, err)
	assert.EqualValues(t, 1e7, base)
	arch, err := f.String("general.architecture")
	require.NoError(t, err)
	assert.Equal(t, "qwen35moe", arch)
	addBOS, err := f.Bool("tokenizer.ggml.add_bos_token")
	require.NoError(t, err)
	assert.False(t, addBOS)
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	assert.Len(t, tokens, 759)
	assert.Equal(t, "<|im_end|>", tokens[758])
	sections, err := f.Ints("qwen35moe.rope.dimension_sections")
	require.NoError(t, err)
	assert.Equal(t, []int64{11, 11, 10, 0}, sections)
	types, err := f.Floats("tokenizer.ggml.token_type")
	require.NoError(t, err)
	assert.EqualValues(t, 3, types[758])

	tokens[0] = "changed"
	again, err := f.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	assert.Equal(t, "!", again[0], "Strings must return a copy")

	_, err = f.Uint("no.such.key")
	assert.ErrorIs(t, err, ErrKeyNotFound)
	assert.ErrorContains(t, err, "no.such.key")
	_, err = f.Uint("general.architecture")
	assert.ErrorIs(t, err, ErrValueType)
	_, err = f.String("qwen35moe.block_count")
	assert.ErrorIs(t, err, ErrValueType)
	_, err = f.Strings("qwen35moe.rope.dimension_sections")
	assert.ErrorIs(t, err, ErrValueType)
	_, err = f.Ints("tokenizer.ggml.tokens")
	assert.ErrorIs(t, err, ErrValueType)
	_, err = f.Bool("general.name")
	assert.ErrorIs(t, err, ErrValueType)
}

func TestReadAtAndClose(t *testing.T) {
	f, err := Open(testModelPath("qwen3moe-tiny-q8_0"))
	require.NoError(t, err)
	raw, err := os.ReadFile(testModelPath("qwen3moe-tiny-q8_0"))
	require.NoError(t, err)

	tensor, ok := f.Tensor("blk.1.ffn_up_exps.weight")
	require.True(t, ok)
	view, err := f.TensorData(tensor)
	require.NoError(t, err)
	assert.Equal(t, raw[tensor.Offset:tensor.Offset+tensor.Size], view)
	assert.Equal(t, raw, f.Mapping())

	buf := make([]byte, tensor.Size)
	n, err := f.ReadAt(buf, tensor.Offset)
	require.NoError(t, err)
	assert.Equal(t, len(buf), n)
	assert.Equal(t, view, buf)

	n, err = f.ReadAt(make([]byte, 100), f.Size()-10)
	assert.Equal(t, 10, n)
	assert.ErrorIs(t, err, io.EOF)
	_, err = f.ReadAt(buf, f.Size())
	assert.ErrorIs(t, err, io.EOF)
	_, err = f.ReadAt(buf, -1)
	assert.Error(t, err)
	assert.NoError(t, f.WillNeed(tensor.Offset, tensor.Size))
	assert.Error(t, f.WillNeed(f.Size()-1, 2))

	other := openTest(t, "qwen3moe-tiny-f32")
	foreign, _ := other.Tensor("blk.1.ffn_up_exps.weight")
	_, err = f.TensorData(foreign)
	assert.Error(t, err, "a tensor of another file")

	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "Close is idempotent")
	_, err = f.ReadAt(buf, 0)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = f.TensorData(tensor)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, f.WillNeed(0, 1), ErrClosed)
	assert.Nil(t, f.Mapping())
	arch, err := f.String("general.architecture")
	assert.NoError(t, err, "metadata outlive Close")
	assert.Equal(t, "qwen3moe", arch)
}

// TestReadAtTruncatedFile maps a copy of a model, truncates the copy, and
// reads past the new end: the page fault must become an error, not kill the
// process.
func TestReadAtTruncatedFile(t *testing.T) {
	raw, err := os.ReadFile(testModelPath("qwen3moe-tiny-q8_0"))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "copy.gguf")
	require.NoError(t, os.WriteFile(path, raw, 0o644))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()

	page := int64(os.Getpagesize())
	require.NoError(t, os.Truncate(path, page))

	buf := make([]byte, 1024)
	_, err = f.ReadAt(buf, 0)
	assert.NoError(t, err, "the page still in the file reads fine")
	_, err = f.ReadAt(buf, 4*page)
	require.ErrorIs(t, err, ErrFault)
	assert.ErrorContains(t, err, "file offset")
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	_, err = Open(t.TempDir())
	assert.Error(t, err, "a directory")

	empty := filepath.Join(t.TempDir(), "empty.gguf")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err = Open(empty)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	assert.ErrorIs(t, err, ErrTruncated)
	assert.Equal(t, empty, fe.Path)
	assert.Equal(t, "magic", fe.Field)

	notGGUF := filepath.Join(t.TempDir(), "x.gguf")
	require.NoError(t, os.WriteFile(notGGUF, []byte("PK\x03\x04 this is a zip file, not a model"), 0o644))
	_, err = Open(notGGUF)
	assert.ErrorIs(t, err, ErrNotGGUF)
	assert.True(t, errors.As(err, &fe))
}

// BenchmarkOpen measures opening a model: mapping it and parsing and
// checking its header (759 tokens, 500 merges, 76 tensors).
func BenchmarkOpen(b *testing.B) {
	path := testModelPath("qwen35moe-small-q4_k_m")
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// TestCloseDuringReads: Close waits for copies in flight; reads after it
// fail with ErrClosed instead of touching unmapped memory.
func TestCloseDuringReads(t *testing.T) {
	f, err := Open(testModelPath("qwen3moe-tiny-f32"))
	require.NoError(t, err)
	size := f.Size()
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			buf := make([]byte, 64<<10)
			for i := 0; ; i++ {
				off := int64((g*7919 + i*104729) % int(size-int64(len(buf))))
				if _, err := f.ReadAt(buf, off); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	require.NoError(t, f.Close())
	for range 4 {
		assert.ErrorIs(t, <-errs, ErrClosed)
	}
	assert.Equal(t, size, f.Size(), "the size outlives Close")
}

// TestOpenLeavesFileAlone: opening, reading and closing never modify the
// model file.
func TestOpenLeavesFileAlone(t *testing.T) {
	path := testModelPath("qwen3moe-tiny-mxfp4_moe")
	before, err := os.Stat(path)
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)

	m, err := OpenModel(path)
	require.NoError(t, err)
	for _, l := range m.MoELayers() {
		x, err := m.Expert(l, 0)
		require.NoError(t, err)
		for _, p := range x.Parts {
			view, err := m.File.TensorData(p.Tensor)
			require.NoError(t, err)
			assert.NotEmpty(t, view)
		}
	}
	require.NoError(t, m.Close())

	after, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, before.ModTime(), after.ModTime())
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, raw, again)
}
