package experts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writerTestKVs has a value of every GGUF type the writer accepts.
var writerTestKVs = []struct {
	key   string
	value any
	typ   ValueType
}{
	{"test.u8", uint8(200), ValueUint8},
	{"test.i8", int8(-100), ValueInt8},
	{"test.u16", uint16(60000), ValueUint16},
	{"test.i16", int16(-30000), ValueInt16},
	{"test.u32", uint32(4000000000), ValueUint32},
	{"test.i32", int32(-2000000000), ValueInt32},
	{"test.f32", float32(1.5), ValueFloat32},
	{"test.bool", true, ValueBool},
	{"test.string", "héllo", ValueString},
	{"test.u64", uint64(1) << 60, ValueUint64},
	{"test.i64", int64(-1) << 60, ValueInt64},
	{"test.f64", 2.25, ValueFloat64},
	{"test.strings", []string{"a", "", "ÿ b"}, ValueArray},
	{"test.u8s", []uint8{1, 2, 3}, ValueArray},
	{"test.i8s", []int8{-1, 2}, ValueArray},
	{"test.u16s", []uint16{7}, ValueArray},
	{"test.i16s", []int16{-7, 7}, ValueArray},
	{"test.u32s", []uint32{}, ValueArray},
	{"test.i32s", []int32{11, 11, 10, 0}, ValueArray},
	{"test.f32s", []float32{0.5, -0.25}, ValueArray},
	{"test.bools", []bool{true, false, true}, ValueArray},
	{"test.u64s", []uint64{1 << 40}, ValueArray},
	{"test.i64s", []int64{-5}, ValueArray},
	{"test.f64s", []float64{3.5}, ValueArray},
}

// writerTestTensor is a tensor with deterministic bytes.
type writerTestTensor struct {
	name string
	typ  Type
	dims []uint64
}

func (tt writerTestTensor) data(t testing.TB) []byte {
	size, err := writerTensorBytes(tt.typ, tt.dims)
	require.NoError(t, err)
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + len(tt.name))
	}
	return b
}

var writerTestTensors = []writerTestTensor{
	{"a.weight", TypeF32, []uint64{3, 5}},
	{"b.weight", TypeQ4_K, []uint64{256, 2, 3}},
	{"c.bias", TypeF16, []uint64{7}},
	{"d.weight", TypeQ8_0, []uint64{64, 1, 1, 2}},
}

func newWriterTest(t testing.TB, opts ...WriteOption) *Writer {
	w, err := NewWriter(opts...)
	require.NoError(t, err)
	for _, kv := range writerTestKVs {
		require.NoError(t, w.SetKV(kv.key, kv.value))
	}
	for _, tt := range writerTestTensors {
		data := tt.data(t)
		require.NoError(t, w.AddTensor(tt.name, tt.typ, tt.dims, func(dst io.Writer) error {
			// Uneven pieces, to exercise the buffering.
			for len(data) > 0 {
				n := min(len(data), 13)
				if _, err := dst.Write(data[:n]); err != nil {
					return err
				}
				data = data[n:]
			}
			data = tt.data(t)
			return nil
		}))
	}
	return w
}

func TestWriterRoundTrip(t *testing.T) {
	for _, alignment := range []int{DefaultAlignment, 64, 8} {
		var calls, last, total int64
		w := newWriterTest(t, WithAlignment(alignment), WithProgress(func(written, size int64) {
			assert.GreaterOrEqual(t, written, last, "progress goes backwards")
			calls, last, total = calls+1, written, size
		}))
		path := filepath.Join(t.TempDir(), "test.gguf")
		require.NoError(t, w.WriteFile(context.Background(), path))

		st, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, w.Size(), st.Size())
		assert.Positive(t, calls)
		assert.Equal(t, w.Size(), last)
		assert.Equal(t, w.Size(), total)

		f, err := Open(path)
		require.NoError(t, err)
		assert.EqualValues(t, 3, f.Version())
		assert.EqualValues(t, alignment, f.Alignment())
		kvs := f.KVs()
		if alignment != DefaultAlignment {
			require.NotEmpty(t, kvs)
			assert.Equal(t, alignmentKey, kvs[0].Key)
			kvs = kvs[1:]
		}
		require.Len(t, kvs, len(writerTestKVs))
		for i, want := range writerTestKVs {
			got := kvs[i]
			assert.Equal(t, want.key, got.Key)
			assert.Equal(t, want.typ, got.Value.Type(), want.key)
			assert.Equal(t, want.value, got.Value.x, want.key)
		}
		tensors := f.Tensors()
		require.Len(t, tensors, len(writerTestTensors))
		for i, want := range writerTestTensors {
			got := tensors[i]
			assert.Equal(t, want.name, got.Name)
			assert.Equal(t, want.typ, got.Type)
			assert.Equal(t, want.dims, got.Dims)
			assert.Zero(t, got.Offset%int64(alignment), "tensor %s misaligned", want.name)
			data, err := f.TensorData(got)
			require.NoError(t, err)
			assert.Equal(t, want.data(t), data, want.name)
		}
		require.NoError(t, f.Close())
	}
}

func TestWriterRejectsBadInput(t *testing.T) {
	nop := func(io.Writer) error { return nil }
	w, err := NewWriter()
	require.NoError(t, err)
	require.NoError(t, w.SetKV("k", uint32(1)))
	require.NoError(t, w.AddTensor("t", TypeF32, []uint64{4}, nop))

	for name, err := range map[string]error{
		"duplicate key":         w.SetKV("k", uint32(2)),
		"empty key":             w.SetKV("", uint32(2)),
		"int has no GGUF width": w.SetKV("int", 1),
		"nested array":          w.SetKV("nested", [][]int32{{1}}),
		"invalid UTF-8":         w.SetKV("bad", "\xff"),
		"alignment after data":  w.SetKV(alignmentKey, uint32(64)),
		"duplicate tensor":      w.AddTensor("t", TypeF32, []uint64{4}, nop),
		"long name":             w.AddTensor(string(bytes.Repeat([]byte("x"), 64)), TypeF32, []uint64{4}, nop),
		"no filler":             w.AddTensor("u", TypeF32, []uint64{4}, nil),
		"unknown type":          w.AddTensor("u", Type(4), []uint64{4}, nop),
		"partial block":         w.AddTensor("u", TypeQ4_K, []uint64{255}, nop),
		"zero dimension":        w.AddTensor("u", TypeF32, []uint64{4, 0}, nop),
		"five dimensions":       w.AddTensor("u", TypeF32, []uint64{1, 1, 1, 1, 1}, nop),
		"no dimension":          w.AddTensor("u", TypeF32, nil, nop),
		"overflow":              w.AddTensor("u", TypeF32, []uint64{1 << 40, 1 << 40}, nop),
	} {
		assert.ErrorIs(t, err, ErrWriterInput, name)
	}
	assert.ErrorIs(t, w.AddTensor("u", Type(4), []uint64{4}, nop), ErrUnknownType)

	w, err = NewWriter()
	require.NoError(t, err)
	assert.ErrorIs(t, w.SetKV(alignmentKey, uint32(48)), ErrWriterInput, "not a power of two")
	assert.ErrorIs(t, w.SetKV(alignmentKey, uint64(64)), ErrWriterInput, "not uint32")
	_, err = NewWriter(WithAlignment(0))
	assert.ErrorIs(t, err, ErrWriterInput)
}

// TestWriterFailureLeavesNoFile checks that a filler writing the wrong
// amount, a failing filler and a cancellation all leave the destination as
// it was and no temporary file behind.
func TestWriterFailureLeavesNoFile(t *testing.T) {
	errFill := errors.New("fill failed")
	cases := map[string]struct {
		fill func(ctx context.Context, cancel func()) TensorFiller
		want error
	}{
		"short": {func(context.Context, func()) TensorFiller {
			return func(w io.Writer) error { _, err := w.Write(make([]byte, 12)); return err }
		}, ErrTensorSize},
		"long": {func(context.Context, func()) TensorFiller {
			return func(w io.Writer) error { _, err := w.Write(make([]byte, 20)); return err }
		}, ErrTensorSize},
		"failing": {func(context.Context, func()) TensorFiller {
			return func(io.Writer) error { return errFill }
		}, errFill},
		"cancelled": {func(_ context.Context, cancel func()) TensorFiller {
			return func(w io.Writer) error {
				cancel()
				_, err := w.Write(make([]byte, 16))
				return err
			}
		}, context.Canceled},
		"cancelled, error ignored": {func(_ context.Context, cancel func()) TensorFiller {
			return func(w io.Writer) error {
				cancel()
				_, _ = w.Write(make([]byte, 16))
				return nil
			}
		}, context.Canceled},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for _, existing := range []bool{false, true} {
				dir := t.TempDir()
				path := filepath.Join(dir, "model.gguf")
				if existing {
					require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
				}
				ctx, cancel := context.WithCancel(context.Background())
				w, err := NewWriter()
				require.NoError(t, err)
				require.NoError(t, w.AddTensor("first", TypeF32, []uint64{4}, func(w io.Writer) error {
					_, err := w.Write(make([]byte, 16))
					return err
				}))
				require.NoError(t, w.AddTensor("second", TypeF32, []uint64{4}, c.fill(ctx, cancel)))
				err = w.WriteFile(ctx, path)
				cancel()
				assert.ErrorIs(t, err, c.want)

				entries, err := os.ReadDir(dir)
				require.NoError(t, err)
				if existing {
					require.Len(t, entries, 1, "temporary file left behind")
					old, err := os.ReadFile(path)
					require.NoError(t, err)
					assert.Equal(t, "old", string(old))
				} else {
					assert.Empty(t, entries, "file left behind")
				}
			}
		})
	}
}

func TestWriterToCancelledContext(t *testing.T) {
	w := newWriterTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := w.WriteTo(ctx, io.Discard)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestWriterWriteToMatchesWriteFile(t *testing.T) {
	w := newWriterTest(t)
	var buf bytes.Buffer
	n, err := w.WriteTo(context.Background(), &buf)
	require.NoError(t, err)
	assert.Equal(t, w.Size(), n)
	path := filepath.Join(t.TempDir(), "x.gguf")
	require.NoError(t, w.WriteFile(context.Background(), path))
	onDisk, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, buf.Bytes(), onDisk)
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.ErrUnsupported }

func TestWriterWriteHeader(t *testing.T) {
	for _, alignment := range []int{DefaultAlignment, 64, 4096} {
		w := newWriterTest(t, WithAlignment(alignment))
		var head, whole bytes.Buffer
		require.NoError(t, w.WriteHeader(&head))
		_, err := w.WriteTo(context.Background(), &whole)
		require.NoError(t, err)
		assert.Equal(t, writerPad(w.HeaderSize(), int64(alignment)), int64(head.Len()), "header and padding")
		assert.Equal(t, whole.Bytes()[:head.Len()], head.Bytes(), "what WriteTo writes first")
	}
	assert.ErrorIs(t, newWriterTest(t).WriteHeader(failWriter{}), errors.ErrUnsupported)
}
