package experts

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Limits the reader enforces on a GGUF header, beyond the file size that
// bounds every length and count anyway. They are far above what real models
// use and keep a hostile header from asking for absurd amounts of memory.
const (
	// MaxStringLength bounds a metadata string value. A tokenizer.json stored
	// whole in the metadata takes a few MiB.
	MaxStringLength = 16 << 20
	// MaxNameLength bounds a metadata key or tensor name (ggml itself stops
	// at 63 bytes).
	MaxNameLength = 1 << 10
	// MaxArrayLength bounds the element count of one metadata array; the
	// largest vocabularies have about 2^18 tokens.
	MaxArrayLength = 1 << 24
	// MaxArrayDepth bounds the nesting of arrays of arrays.
	MaxArrayDepth = 8
	// MaxKVs bounds the number of metadata key/value pairs.
	MaxKVs = 1 << 20
	// MaxTensors bounds the number of tensors (the largest MoE models have a
	// few thousand: experts are stacked, one tensor per layer and part).
	MaxTensors = 1 << 20
	// MaxDims is the largest number of dimensions of a tensor (ggml's).
	MaxDims = 4
)

// DefaultAlignment is the data alignment of a file without general.alignment.
const DefaultAlignment = 32

const ggufMagic = "GGUF"

const alignmentKey = "general.alignment"

// Smallest encodings, used to reject counts that cannot fit in the bytes left.
const (
	minKVBytes         = 8 + 1 + 4 + 1     // key length, 1-byte key, type, 1-byte value
	minTensorInfoBytes = 8 + 4 + 8 + 4 + 8 // name length, n_dims, one dim, type, offset
	minArrayBytes      = 4 + 8             // element type, length
	stringHeaderBytes  = 8                 // a string's length prefix
)

// preallocLimit caps capacities taken from counts in the file: a hostile
// count within the limits must not make the reader allocate much before the
// entries it claims have been read.
const preallocLimit = 1 << 12

// parser reads a GGUF header from a byte slice, never past its end.
// Primitive reads return *FormatError values without a Field; the structural
// reads above them name the field (see named), so that the hot loops over
// large arrays build no strings unless something fails.
type parser struct {
	path   string
	buf    []byte
	off    int
	places []tensorPlace // the tensors' stored offsets, until they are checked
}

func (p *parser) errorAt(off int, err error) *FormatError {
	return &FormatError{Path: p.path, Offset: int64(off), Err: err}
}

// named sets the field of a *FormatError, or prefixes it to the more precise
// field a nested read has set.
func named(err error, field string) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		if fe.Field == "" {
			fe.Field = field
		} else {
			fe.Field = field + " " + fe.Field
		}
	}
	return err
}

// Field names for errors, built only when something fails.
func kvField(key string) string      { return "kv " + strconv.Quote(key) }
func tensorField(name string) string { return "tensor " + strconv.Quote(name) }

func (p *parser) remaining() int { return len(p.buf) - p.off }

func (p *parser) take(n uint64) ([]byte, error) {
	if n > uint64(p.remaining()) {
		return nil, p.errorAt(p.off, fmt.Errorf("%w: %d bytes needed, %d left", ErrTruncated, n, p.remaining()))
	}
	b := p.buf[p.off : p.off+int(n)]
	p.off += int(n)
	return b, nil
}

func (p *parser) u32() (uint32, error) {
	b, err := p.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64() (uint64, error) {
	b, err := p.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (p *parser) str(limit uint64) (string, error) {
	at := p.off
	n, err := p.u64()
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", p.errorAt(at, fmt.Errorf("%w: string of %d bytes, the limit is %d", ErrLimit, n, limit))
	}
	b, err := p.take(n)
	return string(b), err
}

// strings reads an array of n strings. Vocabularies hold hundreds of
// thousands of short strings, so rather than one allocation per string the
// array's bytes are copied into one string once (after a pass that checks
// every length) and the elements are slices of it.
func (p *parser) strings(n int) ([]string, error) {
	start, total := p.off, 0
	for i := range n {
		l, err := p.skipString()
		if err != nil {
			return nil, named(err, "element "+strconv.Itoa(i))
		}
		total += int(l)
	}
	var b strings.Builder
	b.Grow(total)
	for at := start; at < p.off; {
		l := int(binary.LittleEndian.Uint64(p.buf[at:]))
		at += stringHeaderBytes
		b.Write(p.buf[at : at+l])
		at += l
	}
	blob := b.String()
	a := make([]string, n)
	for i, at := 0, start; i < n; i++ {
		l := int(binary.LittleEndian.Uint64(p.buf[at:]))
		a[i] = blob[:l]
		blob = blob[l:]
		at += stringHeaderBytes + l
	}
	return a, nil
}

// skipString checks and steps over one string, returning its length.
func (p *parser) skipString() (uint64, error) {
	at := p.off
	n, err := p.u64()
	if err != nil {
		return 0, err
	}
	if n > MaxStringLength {
		return 0, p.errorAt(at, fmt.Errorf("%w: string of %d bytes, the limit is %d", ErrLimit, n, uint64(MaxStringLength)))
	}
	_, err = p.take(n)
	return n, err
}

// parse reads the header of a GGUF file held in buf and checks every tensor's
// place in it. The File it returns reads data from buf.
func parse(path string, buf []byte) (*File, error) {
	p := &parser{path: path, buf: buf}
	f := &File{path: path, size: int64(len(buf)), data: buf, alignment: DefaultAlignment}
	if err := p.header(f); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *parser) header(f *File) error {
	magic, err := p.take(4)
	if err != nil {
		return named(err, "magic")
	}
	if string(magic) != ggufMagic {
		return &FormatError{Path: p.path, Field: "magic", Err: fmt.Errorf("%w: magic %q", ErrNotGGUF, magic)}
	}
	if f.version, err = p.readVersion(); err != nil {
		return named(err, "version")
	}

	countAt := p.off
	nTensors, err := p.u64()
	if err != nil {
		return named(err, "tensor count")
	}
	if nTensors > MaxTensors {
		return named(p.errorAt(countAt, fmt.Errorf("%w: %d tensors, the limit is %d", ErrLimit, nTensors, MaxTensors)), "tensor count")
	}
	kvCountAt := p.off
	nKV, err := p.u64()
	if err != nil {
		return named(err, "kv count")
	}
	if nKV > MaxKVs {
		return named(p.errorAt(kvCountAt, fmt.Errorf("%w: %d key/value pairs, the limit is %d", ErrLimit, nKV, MaxKVs)), "kv count")
	}
	// Both counts are capped, so this cannot overflow.
	if need := nKV*minKVBytes + nTensors*minTensorInfoBytes; need > uint64(p.remaining()) {
		return named(p.errorAt(countAt, fmt.Errorf("%w: %d tensors and %d key/value pairs need at least %d bytes, %d left",
			ErrTruncated, nTensors, nKV, need, p.remaining())), "tensor and kv counts")
	}

	if err := p.readKVs(f, int(nKV)); err != nil {
		return err
	}
	if err := p.readTensorInfos(f, int(nTensors)); err != nil {
		return err
	}
	return p.placeTensors(f)
}

func (p *parser) readVersion() (uint32, error) {
	at := p.off
	v, err := p.u32()
	if err != nil {
		return 0, err
	}
	switch {
	case v == 2 || v == 3:
		return v, nil
	case v&0xFFFF == 0 && bits.ReverseBytes32(v) <= 3:
		// A version written big-endian reads as a huge number with its low
		// half zero.
		return 0, p.errorAt(at, fmt.Errorf("%w: big-endian file (version %d); only little-endian GGUF is supported",
			ErrUnsupportedVersion, bits.ReverseBytes32(v)))
	default:
		return 0, p.errorAt(at, fmt.Errorf("%w: version %d; versions 2 and 3 are supported", ErrUnsupportedVersion, v))
	}
}

func (p *parser) readKVs(f *File, n int) error {
	f.kvs = make([]KV, 0, min(n, preallocLimit))
	f.kvIndex = make(map[string]int, min(n, preallocLimit))
	for i := range n {
		at := p.off
		key, err := p.str(MaxNameLength)
		if err != nil {
			return named(err, "kv["+strconv.Itoa(i)+"] key")
		}
		if key == "" {
			return named(p.errorAt(at, fmt.Errorf("%w: empty key", ErrMalformed)), "kv["+strconv.Itoa(i)+"] key")
		}
		if _, dup := f.kvIndex[key]; dup {
			return named(p.errorAt(at, fmt.Errorf("%w: key %q appears twice", ErrDuplicate, key)), kvField(key))
		}
		typeAt := p.off
		t, err := p.u32()
		if err != nil {
			return named(err, kvField(key)+" type")
		}
		if !ValueType(t).valid() {
			return named(p.errorAt(typeAt, fmt.Errorf("%w: %d", ErrUnknownValueType, t)), kvField(key)+" type")
		}
		v, err := p.value(ValueType(t), 0)
		if err != nil {
			return named(err, kvField(key))
		}
		if key == alignmentKey {
			if f.alignment, err = checkAlignment(v); err != nil {
				return named(p.errorAt(at, err), kvField(key))
			}
		}
		f.kvIndex[key] = len(f.kvs)
		f.kvs = append(f.kvs, KV{Key: key, Value: v})
	}
	return nil
}

// checkAlignment accepts what llama.cpp accepts: a uint32 power of two.
func checkAlignment(v Value) (int64, error) {
	if v.Type() != ValueUint32 {
		return 0, fmt.Errorf("%w: alignment is %v, want uint32", ErrMalformed, v.Type())
	}
	a := uint64(v.x.(uint32))
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("%w: alignment %d is not a power of two", ErrMalformed, a)
	}
	return int64(a), nil
}

func (p *parser) value(t ValueType, depth int) (Value, error) {
	switch t {
	case ValueString:
		s, err := p.str(MaxStringLength)
		return Value{typ: t, x: s}, err
	case ValueArray:
		return p.array(depth + 1)
	}
	b, err := p.take(uint64(t.size()))
	if err != nil {
		return Value{}, err
	}
	return Value{typ: t, x: scalar(t, b)}, nil
}

func scalar(t ValueType, b []byte) any {
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return b[0]
	case ValueInt8:
		return int8(b[0])
	case ValueUint16:
		return le.Uint16(b)
	case ValueInt16:
		return int16(le.Uint16(b))
	case ValueUint32:
		return le.Uint32(b)
	case ValueInt32:
		return int32(le.Uint32(b))
	case ValueFloat32:
		return math.Float32frombits(le.Uint32(b))
	case ValueBool:
		return b[0] != 0 // as llama.cpp reads it
	case ValueUint64:
		return le.Uint64(b)
	case ValueInt64:
		return int64(le.Uint64(b))
	case ValueFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	panic("experts: scalar of type " + t.String()) // callers pass fixed-size types only
}

func (p *parser) array(depth int) (Value, error) {
	at := p.off
	if depth > MaxArrayDepth {
		return Value{}, p.errorAt(at, fmt.Errorf("%w: arrays nested deeper than %d", ErrLimit, MaxArrayDepth))
	}
	et, err := p.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return Value{}, p.errorAt(at, fmt.Errorf("%w: array of %d", ErrUnknownValueType, et))
	}
	n, err := p.u64()
	if err != nil {
		return Value{}, err
	}
	if n > MaxArrayLength {
		return Value{}, p.errorAt(at, fmt.Errorf("%w: array of %d elements, the limit is %d", ErrLimit, n, MaxArrayLength))
	}
	minElem := uint64(elem.size())
	switch elem {
	case ValueString:
		minElem = stringHeaderBytes
	case ValueArray:
		minElem = minArrayBytes
	}
	if n*minElem > uint64(p.remaining()) {
		return Value{}, p.errorAt(at, fmt.Errorf("%w: array of %d %v needs at least %d bytes, %d left",
			ErrTruncated, n, elem, n*minElem, p.remaining()))
	}
	v := Value{typ: ValueArray, elem: elem}
	switch elem {
	case ValueString:
		if v.x, err = p.strings(int(n)); err != nil {
			return Value{}, err
		}
	case ValueArray:
		a := make([]Value, n)
		for i := range a {
			if a[i], err = p.array(depth + 1); err != nil {
				return Value{}, named(err, "element "+strconv.Itoa(i))
			}
		}
		v.x = a
	default:
		b, err := p.take(n * minElem)
		if err != nil {
			return Value{}, err
		}
		v.x = fixedArray(elem, b)
	}
	return v, nil
}

// fixedArray decodes an array of fixed-size elements.
func fixedArray(t ValueType, b []byte) any {
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return decodeEach(b, 1, func(b []byte) uint8 { return b[0] })
	case ValueInt8:
		return decodeEach(b, 1, func(b []byte) int8 { return int8(b[0]) })
	case ValueUint16:
		return decodeEach(b, 2, le.Uint16)
	case ValueInt16:
		return decodeEach(b, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case ValueUint32:
		return decodeEach(b, 4, le.Uint32)
	case ValueInt32:
		return decodeEach(b, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case ValueFloat32:
		return decodeEach(b, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case ValueBool:
		return decodeEach(b, 1, func(b []byte) bool { return b[0] != 0 })
	case ValueUint64:
		return decodeEach(b, 8, le.Uint64)
	case ValueInt64:
		return decodeEach(b, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case ValueFloat64:
		return decodeEach(b, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	}
	panic("experts: array of type " + t.String()) // callers pass fixed-size types only
}

func decodeEach[T any](b []byte, size int, get func([]byte) T) []T {
	out := make([]T, len(b)/size)
	for i := range out {
		out[i] = get(b[i*size:])
	}
	return out
}

// tensorPlace remembers where a tensor info's offset field was, for errors.
type tensorPlace struct {
	t        *TensorInfo
	rel      uint64 // offset relative to the data section, as stored
	offsetAt int
}

func (p *parser) readTensorInfos(f *File, n int) error {
	f.tensors = make([]*TensorInfo, 0, min(n, preallocLimit))
	f.tensorIndex = make(map[string]*TensorInfo, min(n, preallocLimit))
	p.places = make([]tensorPlace, 0, min(n, preallocLimit))
	for i := range n {
		at := p.off
		name, err := p.str(MaxNameLength)
		if err != nil {
			return named(err, "tensor["+strconv.Itoa(i)+"] name")
		}
		if _, dup := f.tensorIndex[name]; dup {
			return named(p.errorAt(at, fmt.Errorf("%w: tensor %q appears twice", ErrDuplicate, name)), tensorField(name))
		}
		t := &TensorInfo{Name: name, infoOffset: int64(at)}
		if err := p.readShape(t); err != nil {
			return named(err, tensorField(name))
		}
		offsetAt := p.off
		rel, err := p.u64()
		if err != nil {
			return named(err, tensorField(name)+" offset")
		}
		f.tensorIndex[name] = t
		f.tensors = append(f.tensors, t)
		p.places = append(p.places, tensorPlace{t: t, rel: rel, offsetAt: offsetAt})
	}
	return nil
}

// readShape reads n_dims, the dimensions and the type, and computes the size.
func (p *parser) readShape(t *TensorInfo) error {
	at := p.off
	nDims, err := p.u32()
	if err != nil {
		return named(err, "n_dims")
	}
	if nDims == 0 || nDims > MaxDims {
		return named(p.errorAt(at, fmt.Errorf("%w: %d dimensions, want 1 to %d", ErrMalformed, nDims, MaxDims)), "n_dims")
	}
	t.Dims = make([]uint64, nDims)
	elements := uint64(1)
	for j := range t.Dims {
		dimAt := p.off
		d, err := p.u64()
		if err != nil {
			return named(err, "dims["+strconv.Itoa(j)+"]")
		}
		if d == 0 {
			return named(p.errorAt(dimAt, fmt.Errorf("%w: dimension is 0", ErrMalformed)), "dims["+strconv.Itoa(j)+"]")
		}
		hi, lo := bits.Mul64(elements, d)
		if hi != 0 || lo > math.MaxInt64 {
			return named(p.errorAt(dimAt, fmt.Errorf("%w: element count overflows int64", ErrLimit)), "dims["+strconv.Itoa(j)+"]")
		}
		t.Dims[j], elements = d, lo
	}
	typeAt := p.off
	typ, err := p.u32()
	if err != nil {
		return named(err, "type")
	}
	t.Type = Type(typ)
	if !t.Type.Known() {
		return named(p.errorAt(typeAt, fmt.Errorf("%w: id %d", ErrUnknownType, typ)), "type")
	}
	if bs := uint64(t.Type.BlockSize()); t.Dims[0]%bs != 0 {
		return named(p.errorAt(typeAt, fmt.Errorf("%w: rows of %d elements are not a whole number of %d-element %v blocks",
			ErrMalformed, t.Dims[0], bs, t.Type)), "type")
	}
	size, err := t.Type.RowBytes(elements)
	if err != nil || size > math.MaxInt64 {
		return named(p.errorAt(typeAt, fmt.Errorf("%w: byte size of %d %v elements overflows", ErrLimit, elements, t.Type)), "type")
	}
	t.Size = int64(size)
	return nil
}

// placeTensors finds the data section and checks that every tensor lies in
// it, aligned, overlapping no other.
func (p *parser) placeTensors(f *File) error {
	end := uint64(len(p.buf))
	start := (uint64(p.off) + uint64(f.alignment) - 1) &^ (uint64(f.alignment) - 1)
	if start > end {
		if len(p.places) > 0 {
			return named(p.errorAt(p.off, fmt.Errorf("%w: data section would start at %d, past the end of the %d-byte file",
				ErrTruncated, start, end)), "data section")
		}
		start = end
	}
	f.dataOffset = int64(start)
	for _, pl := range p.places {
		if pl.rel%uint64(f.alignment) != 0 {
			return named(p.errorAt(pl.offsetAt, fmt.Errorf("%w: offset %d is not a multiple of the alignment %d",
				ErrMalformed, pl.rel, f.alignment)), tensorField(pl.t.Name)+" offset")
		}
		if pl.rel > end-start || uint64(pl.t.Size) > end-start-pl.rel {
			return named(p.errorAt(pl.offsetAt, fmt.Errorf("%w: %d bytes of data at %d+%d, past the end of the %d-byte file",
				ErrTruncated, pl.t.Size, start, pl.rel, end)), tensorField(pl.t.Name)+" offset")
		}
		pl.t.Offset = int64(start + pl.rel)
	}
	slices.SortFunc(p.places, func(a, b tensorPlace) int { return cmp.Compare(a.t.Offset, b.t.Offset) })
	for i := 1; i < len(p.places); i++ {
		prev, cur := p.places[i-1].t, p.places[i]
		if prev.Offset+prev.Size > cur.t.Offset {
			return named(p.errorAt(cur.offsetAt, fmt.Errorf("%w: data at %d overlaps tensor %q (%d bytes at %d)",
				ErrMalformed, cur.t.Offset, prev.Name, prev.Size, prev.Offset)), tensorField(cur.t.Name)+" offset")
		}
	}
	return nil
}
