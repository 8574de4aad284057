package experts

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"unicode/utf8"

	"github.com/rotary-moe/rotary/internal/atomicfile"
)

var (
	// ErrWriterInput means a metadata key/value or a tensor declaration that a
	// GGUF file cannot hold (bad name, duplicate, unsupported value, bad shape).
	ErrWriterInput = errors.New("experts: invalid GGUF writer input")
	// ErrTensorSize means a tensor's fill function wrote more or fewer bytes
	// than the tensor's type and shape take.
	ErrTensorSize = errors.New("experts: tensor data size mismatch")
)

// What the writer produces: GGUF version 3, and tensor names llama.cpp can
// hold (GGML_MAX_NAME is 64 bytes with the terminating NUL).
const (
	writerVersion      = 3
	writerMaxNameBytes = 63
)

// writerBufferSize is the buffer between the writer and its destination:
// small tensors and the header are batched, chunks at least this large pass
// straight through.
const writerBufferSize = 1 << 20

// TensorFiller writes a tensor's data, exactly as many bytes as its type and
// shape take, to w. A Writer may call it once per WriteTo or WriteFile, so it
// must produce the same bytes each time. Writes fail once the context given
// to WriteTo is done; a filler should return the first write error it gets.
type TensorFiller func(w io.Writer) error

// WriteOption configures NewWriter, and the writers of the synth package
// (which build on it).
type WriteOption interface {
	applyWrite(*writeConfig)
}

type writeConfig struct {
	alignment int
	progress  func(written, total int64)
}

type writeOptionFunc func(*writeConfig)

func (f writeOptionFunc) applyWrite(c *writeConfig) { f(c) }

// WithAlignment sets the alignment of the tensor data (a power of two; GGUF's
// default is 32). A value other than 32 is recorded in the file as
// general.alignment.
func WithAlignment(n int) WriteOption {
	return writeOptionFunc(func(c *writeConfig) { c.alignment = n })
}

// WithProgress registers a callback that receives the number of bytes
// written so far and the file's total size. It runs on the writing goroutine
// after each piece of data, so it should return quickly.
func WithProgress(fn func(written, total int64)) WriteOption {
	return writeOptionFunc(func(c *writeConfig) { c.progress = fn })
}

func newWriteConfig(opts []WriteOption) writeConfig {
	c := writeConfig{alignment: DefaultAlignment}
	for _, o := range opts {
		if o != nil {
			o.applyWrite(&c)
		}
	}
	return c
}

// Writer streams a GGUF v3 file (little-endian). Metadata and tensors are
// declared first; WriteTo or WriteFile then writes the header and calls each
// tensor's filler in declaration order, so no tensor is ever held in memory
// whole.
type Writer struct {
	alignment int64
	progress  func(written, total int64)
	kvs       []writerKV
	keys      map[string]bool
	tensors   []writerTensor
	names     map[string]bool
}

type writerKV struct {
	key     string
	encoded []byte // value type id and value, as stored in the file
}

type writerTensor struct {
	name   string
	typ    Type
	dims   []uint64
	size   int64
	offset int64 // relative to the start of the data section
	fill   TensorFiller
}

// NewWriter returns an empty Writer. Of the options, WithAlignment and
// WithProgress apply.
func NewWriter(opts ...WriteOption) (*Writer, error) {
	c := newWriteConfig(opts)
	w := &Writer{
		alignment: DefaultAlignment,
		progress:  c.progress,
		keys:      map[string]bool{},
		names:     map[string]bool{},
	}
	if c.alignment != DefaultAlignment {
		if c.alignment <= 0 || c.alignment > math.MaxUint32 {
			return nil, fmt.Errorf("%w: alignment %d", ErrWriterInput, c.alignment)
		}
		if err := w.SetKV(alignmentKey, uint32(c.alignment)); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// SetKV adds a metadata key/value pair; keys keep the order in which they are
// added. The value's Go type picks the GGUF type: uint8, int8, uint16, int16,
// uint32, int32, uint64, int64, float32, float64, bool, string, or a slice of
// one of these (a GGUF array). Setting general.alignment (uint32, a power of
// two) changes the data alignment.
func (w *Writer) SetKV(key string, value any) error {
	if key == "" || len(key) > math.MaxUint16 || !utf8.ValidString(key) {
		return fmt.Errorf("%w: metadata key %q", ErrWriterInput, key)
	}
	if w.keys[key] {
		return fmt.Errorf("%w: duplicate metadata key %q", ErrWriterInput, key)
	}
	if len(w.tensors) > 0 && key == alignmentKey {
		return fmt.Errorf("%w: %s must be set before tensors are added", ErrWriterInput, key)
	}
	encoded, err := writerEncodeValue(value)
	if err != nil {
		return fmt.Errorf("%w: metadata key %q: %w", ErrWriterInput, key, err)
	}
	if key == alignmentKey {
		a, ok := value.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return fmt.Errorf("%w: %s must be a uint32 power of two, got %v", ErrWriterInput, key, value)
		}
		w.alignment = int64(a)
	}
	w.keys[key] = true
	w.kvs = append(w.kvs, writerKV{key: key, encoded: encoded})
	return nil
}

// AddTensor declares a tensor: its name, ggml type and shape in ggml order
// (dims[0] is the contiguous row length, a multiple of the type's block
// size), and the function that writes its data.
func (w *Writer) AddTensor(name string, typ Type, dims []uint64, fill TensorFiller) error {
	if name == "" || len(name) > writerMaxNameBytes || !utf8.ValidString(name) {
		return fmt.Errorf("%w: tensor name %q (1 to %d bytes of UTF-8)", ErrWriterInput, name, writerMaxNameBytes)
	}
	if w.names[name] {
		return fmt.Errorf("%w: duplicate tensor %q", ErrWriterInput, name)
	}
	if fill == nil {
		return fmt.Errorf("%w: tensor %q has no filler", ErrWriterInput, name)
	}
	if !typ.Known() {
		return fmt.Errorf("%w: tensor %q: %w: %v", ErrWriterInput, name, ErrUnknownType, typ)
	}
	size, err := writerTensorBytes(typ, dims)
	if err != nil {
		return fmt.Errorf("%w: tensor %q: %w", ErrWriterInput, name, err)
	}
	var offset int64
	if n := len(w.tensors); n > 0 {
		last := w.tensors[n-1]
		offset = last.offset + writerPad(last.size, w.alignment)
		if offset < 0 || offset+writerPad(size, w.alignment) < 0 {
			return fmt.Errorf("%w: tensor %q: data section overflows", ErrWriterInput, name)
		}
	}
	w.names[name] = true
	w.tensors = append(w.tensors, writerTensor{
		name: name, typ: typ, dims: append([]uint64(nil), dims...),
		size: size, offset: offset, fill: fill,
	})
	return nil
}

// AddZeros declares a tensor whose data is all zeros (see AddTensor): a
// placeholder for weights that do not matter, such as those of a model
// written only to be planned or simulated.
func (w *Writer) AddZeros(name string, typ Type, dims []uint64) error {
	var size int64 // known once declared
	err := w.AddTensor(name, typ, dims, func(dst io.Writer) error {
		for left := size; left > 0; {
			k := min(left, int64(len(writerZeros)))
			if _, err := dst.Write(writerZeros[:k]); err != nil {
				return err
			}
			left -= k
		}
		return nil
	})
	if err == nil {
		size = w.tensors[len(w.tensors)-1].size
	}
	return err
}

// writerTensorBytes is the storage size of a tensor, checked for shapes
// ggml cannot represent.
func writerTensorBytes(typ Type, dims []uint64) (int64, error) {
	if len(dims) == 0 || len(dims) > MaxDims {
		return 0, fmt.Errorf("%d dimensions (1 to %d)", len(dims), MaxDims)
	}
	elements := uint64(1)
	for i, d := range dims {
		if d == 0 || d > math.MaxInt64 {
			return 0, fmt.Errorf("dimension %d is %d", i, d)
		}
		hi, lo := bits.Mul64(elements, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("element count of %v overflows", dims)
		}
		elements = lo
	}
	row, err := typ.RowBytes(dims[0])
	if err != nil {
		return 0, err
	}
	hi, size := bits.Mul64(row, elements/dims[0])
	if hi != 0 || size > math.MaxInt64 {
		return 0, fmt.Errorf("size of %v overflows", dims)
	}
	return int64(size), nil
}

func writerPad(n, alignment int64) int64 {
	return (n + alignment - 1) / alignment * alignment
}

// HeaderSize is the size of everything before the data section (metadata
// and tensor descriptions), excluding the padding that aligns the data: the
// first HeaderSize bytes WriteTo writes describe the whole file.
func (w *Writer) HeaderSize() int64 {
	n := int64(4 + 4 + 8 + 8)
	for _, kv := range w.kvs {
		n += 8 + int64(len(kv.key)) + int64(len(kv.encoded))
	}
	for _, t := range w.tensors {
		n += 8 + int64(len(t.name)) + 4 + 8*int64(len(t.dims)) + 4 + 8
	}
	return n
}

// dataSize is the size of the data section, each tensor padded to the
// alignment.
func (w *Writer) dataSize() int64 {
	if len(w.tensors) == 0 {
		return 0
	}
	last := w.tensors[len(w.tensors)-1]
	return last.offset + writerPad(last.size, w.alignment)
}

// Size is the number of bytes the file will have.
func (w *Writer) Size() int64 {
	return writerPad(w.HeaderSize(), w.alignment) + w.dataSize()
}

// WriteTo writes the whole file to dst and returns the number of bytes
// written. It stops with the context's error once ctx is done.
func (w *Writer) WriteTo(ctx context.Context, dst io.Writer) (int64, error) {
	out := &writerCounter{ctx: ctx, total: w.Size(), progress: w.progress}
	out.buf = bufio.NewWriterSize(writerDest{ctx: ctx, w: dst}, writerBufferSize)
	if err := w.writeHeader(out); err != nil {
		return out.written, err
	}
	for i := range w.tensors {
		t := &w.tensors[i]
		sink := &writerTensorSink{out: out, tensor: t, left: t.size}
		err := t.fill(sink)
		if err == nil {
			err = out.err // a filler that ignored a write error
		}
		if err == nil && sink.left != 0 {
			err = fmt.Errorf("%w: filler wrote %d of %d bytes", ErrTensorSize, t.size-sink.left, t.size)
		}
		if err != nil {
			return out.written, fmt.Errorf("experts: writing tensor %q: %w", t.name, err)
		}
		out.zeros(writerPad(t.size, w.alignment) - t.size)
	}
	if out.err == nil {
		out.err = out.buf.Flush()
	}
	if out.err != nil {
		return out.written, out.err
	}
	out.report()
	return out.written, nil
}

// WriteHeader writes the start of the file up to its tensor data: the
// metadata, the tensor table and the padding that aligns the data, exactly
// the bytes WriteTo writes first. A file of Size bytes that holds them and
// reads as zeros after them is the model with its tensors zeroed (see
// OpenShape).
func (w *Writer) WriteHeader(dst io.Writer) error {
	out := &writerCounter{ctx: context.Background(), buf: bufio.NewWriter(dst)}
	err := w.writeHeader(out)
	if err == nil {
		err = out.buf.Flush()
	}
	if err != nil {
		return fmt.Errorf("experts: writing the header: %w", err)
	}
	return nil
}

func (w *Writer) writeHeader(out *writerCounter) error {
	le := binary.LittleEndian
	var scratch []byte
	str := func(s string) {
		out.write(le.AppendUint64(scratch[:0], uint64(len(s))))
		out.write([]byte(s))
	}
	out.write([]byte(ggufMagic))
	out.write(le.AppendUint32(scratch[:0], writerVersion))
	out.write(le.AppendUint64(scratch[:0], uint64(len(w.tensors))))
	out.write(le.AppendUint64(scratch[:0], uint64(len(w.kvs))))
	for _, kv := range w.kvs {
		str(kv.key)
		out.write(kv.encoded)
	}
	for _, t := range w.tensors {
		str(t.name)
		b := le.AppendUint32(scratch[:0], uint32(len(t.dims)))
		for _, d := range t.dims {
			b = le.AppendUint64(b, d)
		}
		b = le.AppendUint32(b, uint32(t.typ))
		b = le.AppendUint64(b, uint64(t.offset))
		out.write(b)
		scratch = b
	}
	h := w.HeaderSize()
	out.zeros(writerPad(h, w.alignment) - h)
	return out.err
}

// WriteFile writes the file to path through a temporary file in the same
// folder that is synced and renamed into place only when everything was
// written: on any error or cancellation no file is left under path (an
// existing file there stays as it was) and the temporary file is removed.
func (w *Writer) WriteFile(ctx context.Context, path string) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return fmt.Errorf("experts: %w", err)
	}
	defer f.Close() // abandons the temporary file unless committed
	if _, err := w.WriteTo(ctx, f); err != nil {
		return fmt.Errorf("experts: writing %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("experts: writing %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("experts: %w", err)
	}
	return nil
}

// writerDest stops the buffered writer once the context is done, so a
// cancelled write ends at the next flush even inside a large filler.
type writerDest struct {
	ctx context.Context
	w   io.Writer
}

func (d writerDest) Write(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	return d.w.Write(p)
}

// writerCounter counts what goes into the buffered writer, keeps the first
// error (later writes do nothing) and reports progress.
type writerCounter struct {
	ctx      context.Context
	buf      *bufio.Writer
	written  int64
	total    int64
	progress func(written, total int64)
	err      error
}

func (c *writerCounter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.buf.Write(p)
	c.written += int64(n)
	c.err = err
}

var writerZeros [4096]byte

func (c *writerCounter) zeros(n int64) {
	for n > 0 {
		k := min(n, int64(len(writerZeros)))
		c.write(writerZeros[:k])
		n -= k
	}
}

func (c *writerCounter) report() {
	if c.progress != nil {
		c.progress(c.written, c.total)
	}
}

// writerTensorSink is the io.Writer a filler writes into: it refuses bytes
// beyond the tensor's size and anything after cancellation.
type writerTensorSink struct {
	out    *writerCounter
	tensor *writerTensor
	left   int64
}

func (s *writerTensorSink) Write(p []byte) (int, error) {
	if s.out.err == nil {
		s.out.err = s.out.ctx.Err()
	}
	if s.out.err != nil {
		return 0, s.out.err
	}
	if int64(len(p)) > s.left {
		return 0, fmt.Errorf("%w: filler wrote more than %d bytes", ErrTensorSize, s.tensor.size)
	}
	before := s.out.written
	s.out.write(p)
	n := int(s.out.written - before)
	s.left -= int64(n)
	if s.out.err == nil && len(p) >= 64<<10 {
		s.out.report()
	}
	return n, s.out.err
}

// writerEncodeValue encodes a metadata value as the file stores it: its type
// id followed by the value.
func writerEncodeValue(value any) ([]byte, error) {
	le := binary.LittleEndian
	var b []byte
	switch v := value.(type) {
	case string:
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("string %q is not UTF-8", v)
		}
		b = le.AppendUint32(b, uint32(ValueString))
		b = le.AppendUint64(b, uint64(len(v)))
		return append(b, v...), nil
	case []string:
		b = le.AppendUint32(b, uint32(ValueArray))
		b = le.AppendUint32(b, uint32(ValueString))
		b = le.AppendUint64(b, uint64(len(v)))
		for _, s := range v {
			if !utf8.ValidString(s) {
				return nil, fmt.Errorf("string %q is not UTF-8", s)
			}
			b = le.AppendUint64(b, uint64(len(s)))
			b = append(b, s...)
		}
		return b, nil
	}
	t, length, isArray := writerFixedType(value)
	if t == ValueArray {
		return nil, fmt.Errorf("unsupported value type %T", value)
	}
	if isArray {
		b = le.AppendUint32(b, uint32(ValueArray))
		b = le.AppendUint32(b, uint32(t))
		b = le.AppendUint64(b, uint64(length))
	} else {
		b = le.AppendUint32(b, uint32(t))
	}
	// encoding/binary stores these fixed-size types (bool as one byte) exactly
	// as GGUF does.
	return binary.Append(b, le, value)
}

// writerFixedType maps a fixed-size Go value or slice to its GGUF type; it
// returns ValueArray for anything else.
func writerFixedType(value any) (t ValueType, length int, isArray bool) {
	switch v := value.(type) {
	case uint8:
		return ValueUint8, 1, false
	case int8:
		return ValueInt8, 1, false
	case uint16:
		return ValueUint16, 1, false
	case int16:
		return ValueInt16, 1, false
	case uint32:
		return ValueUint32, 1, false
	case int32:
		return ValueInt32, 1, false
	case float32:
		return ValueFloat32, 1, false
	case bool:
		return ValueBool, 1, false
	case uint64:
		return ValueUint64, 1, false
	case int64:
		return ValueInt64, 1, false
	case float64:
		return ValueFloat64, 1, false
	case []uint8:
		return ValueUint8, len(v), true
	case []int8:
		return ValueInt8, len(v), true
	case []uint16:
		return ValueUint16, len(v), true
	case []int16:
		return ValueInt16, len(v), true
	case []uint32:
		return ValueUint32, len(v), true
	case []int32:
		return ValueInt32, len(v), true
	case []float32:
		return ValueFloat32, len(v), true
	case []bool:
		return ValueBool, len(v), true
	case []uint64:
		return ValueUint64, len(v), true
	case []int64:
		return ValueInt64, len(v), true
	case []float64:
		return ValueFloat64, len(v), true
	}
	return ValueArray, 0, false
}
