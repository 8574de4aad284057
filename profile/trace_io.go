package profile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Encoding selects a trace encoding. Both are specified in TRACE.md.
type Encoding int

const (
	// JSONL: a header object on the first line, then one JSON object per token
	// (or per segment start). Readable, diffable, streamable.
	JSONL Encoding = iota
	// Binary: a fixed header, then fixed-width token records. JSONL takes 1.4×
	// its size for DeepSeek-V2-Lite's shape (27 layers, top-6, no weights) and
	// 2.3× for Mixtral's (32 layers, top-2, weights), and reads 13-14× slower:
	// 60 against 4.2 µs per token and 76 against 5.8 µs (TestBinaryTraceSize,
	// BenchmarkReadTrace, medians of 5 on a 2-core AMD EPYC). The project's
	// real traces agree: 1.46× (DeepSeek), 1.41× (granite), 2.29× (Mixtral).
	Binary
)

func (e Encoding) String() string {
	switch e {
	case JSONL:
		return "jsonl"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// TraceVersion is the version of both trace encodings.
const TraceVersion = 1

// traceFormat is the JSONL header's "format" value.
const traceFormat = "rotary-trace"

// binaryMagic starts a binary trace.
var binaryMagic = [4]byte{'R', 'T', 'R', 'C'}

// Binary record tags.
const (
	tagToken   = 'T'
	tagSegment = 'S'
)

// Reader limits: a JSONL line may hold one token of MaxLayers × MaxExpertsUsed
// ids and weights; names are short.
const (
	maxJSONLLine   = 64 << 20
	maxSegmentName = 4096
)

// jsonlHeader is the first line of a JSONL trace.
type jsonlHeader struct {
	Format  string  `json:"format"`
	Version int     `json:"version"`
	Model   ModelID `json:"model"`
	Weights bool    `json:"weights"`
}

// jsonlLine is any later line: a segment start or a token.
type jsonlLine struct {
	Segment *string     `json:"segment"`
	Phase   string      `json:"phase"`
	Experts [][]int32   `json:"experts"`
	Weights [][]float32 `json:"weights"`
}

// A TraceWriter writes a trace as a stream: a header, then segment starts and
// tokens as they happen. Call Flush at the end (and whenever the output should
// be readable so far).
type TraceWriter struct {
	w       *bufio.Writer
	enc     Encoding
	model   ModelID
	weights bool
	buf     []byte
}

// NewTraceWriter writes the header of a trace of model in the given encoding.
// Pass WithWeights to store routing weights (other trace options are ignored).
func NewTraceWriter(w io.Writer, enc Encoding, model ModelID, opts ...TraceOption) (*TraceWriter, error) {
	if err := model.Validate(); err != nil {
		return nil, err
	}
	for _, s := range []string{model.Name, model.Arch, model.TensorHash} {
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: model string %q is not UTF-8", ErrInvalid, s)
		}
	}
	var c traceConfig
	for _, o := range opts {
		o.applyTrace(&c)
	}
	tw := &TraceWriter{w: bufio.NewWriterSize(w, 1<<16), enc: enc, model: model, weights: c.weights}
	switch enc {
	case JSONL:
		hdr, err := json.Marshal(jsonlHeader{Format: traceFormat, Version: TraceVersion, Model: model, Weights: c.weights})
		if err != nil {
			return nil, fmt.Errorf("profile: trace header: %w", err)
		}
		tw.buf = append(hdr, '\n')
	case Binary:
		b := append([]byte(nil), binaryMagic[:]...)
		b = binary.LittleEndian.AppendUint16(b, TraceVersion)
		var flags uint16
		if c.weights {
			flags |= 1
		}
		b = binary.LittleEndian.AppendUint16(b, flags)
		b = binary.LittleEndian.AppendUint32(b, uint32(model.Layers))
		b = binary.LittleEndian.AppendUint32(b, uint32(model.Experts))
		b = binary.LittleEndian.AppendUint32(b, uint32(model.ExpertsUsed))
		for _, s := range []string{model.Name, model.Arch, model.TensorHash} {
			if len(s) > math.MaxUint16 {
				return nil, fmt.Errorf("%w: model string of %d bytes", ErrInvalid, len(s))
			}
			b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
			b = append(b, s...)
		}
		tw.buf = b
	default:
		return nil, fmt.Errorf("%w: unknown trace encoding %d", ErrInvalid, int(enc))
	}
	return tw, tw.emit()
}

func (tw *TraceWriter) emit() error {
	if _, err := tw.w.Write(tw.buf); err != nil {
		return fmt.Errorf("profile: write trace: %w", err)
	}
	return nil
}

// StartSegment marks the start of a segment: the tokens written next belong to it.
func (tw *TraceWriter) StartSegment(name, phase string) error {
	if len(name) > maxSegmentName || len(phase) > math.MaxUint8 || !utf8.ValidString(name) || !utf8.ValidString(phase) {
		return fmt.Errorf("%w: segment name %q or phase %q too long or not UTF-8", ErrInvalid, name, phase)
	}
	switch tw.enc {
	case JSONL:
		line, err := json.Marshal(Segment{Name: name, Phase: phase})
		if err != nil {
			return fmt.Errorf("profile: write trace: %w", err)
		}
		tw.buf = append(line, '\n')
	case Binary:
		b := append(tw.buf[:0], tagSegment)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
		b = append(b, uint8(len(phase)))
		tw.buf = append(b, phase...)
	}
	return tw.emit()
}

// WriteToken writes one token: experts[l] are the experts selected at layer l
// (empty for a layer not routed), weights[l] their routing weights. experts has
// one entry per layer; weights is nil or has one entry per layer, and is ignored
// unless the writer stores weights (zeros are written for missing weights).
func (tw *TraceWriter) WriteToken(experts [][]int32, weights [][]float32) error {
	m := tw.model
	if len(experts) != m.Layers || weights != nil && len(weights) != m.Layers {
		return fmt.Errorf("%w: token with %d expert lists and %d weight lists for %d layers",
			ErrInvalid, len(experts), len(weights), m.Layers)
	}
	for l, ids := range experts {
		var w []float32
		if weights != nil {
			w = weights[l]
		}
		if err := checkRoute(m.Experts, m.ExpertsUsed, ids, w); err != nil {
			return fmt.Errorf("%w (layer %d)", err, l)
		}
		if err := checkFinite(w); err != nil {
			return fmt.Errorf("%w (layer %d)", err, l)
		}
	}
	if tw.enc == JSONL {
		tw.buf = tw.appendJSONToken(tw.buf[:0], experts, weights)
	} else {
		tw.buf = tw.appendBinaryToken(tw.buf[:0], experts, weights)
	}
	return tw.emit()
}

func (tw *TraceWriter) appendJSONToken(b []byte, experts [][]int32, weights [][]float32) []byte {
	b = append(b, `{"experts":[`...)
	for l, ids := range experts {
		if l > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for i, id := range ids {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(id), 10)
		}
		b = append(b, ']')
	}
	b = append(b, ']')
	if tw.weights {
		b = append(b, `,"weights":[`...)
		for l, ids := range experts {
			if l > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			for i := range ids {
				if i > 0 {
					b = append(b, ',')
				}
				var w float32
				if weights != nil && weights[l] != nil {
					w = weights[l][i]
				}
				b = strconv.AppendFloat(b, float64(w), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

func (tw *TraceWriter) appendBinaryToken(b []byte, experts [][]int32, weights [][]float32) []byte {
	k := tw.model.ExpertsUsed
	b = append(b, tagToken)
	for l, ids := range experts {
		b = append(b, uint8(len(ids)))
		for i := range k {
			id := uint16(noExpert)
			if i < len(ids) {
				id = uint16(ids[i])
			}
			b = binary.LittleEndian.AppendUint16(b, id)
		}
		if tw.weights {
			for i := range k {
				var w float32
				if i < len(ids) && weights != nil && weights[l] != nil {
					w = weights[l][i]
				}
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(w))
			}
		}
	}
	return b
}

// Flush writes buffered data to the underlying writer.
func (tw *TraceWriter) Flush() error {
	if err := tw.w.Flush(); err != nil {
		return fmt.Errorf("profile: write trace: %w", err)
	}
	return nil
}

// A TraceReader reads a trace written by a TraceWriter, in either encoding, as
// a stream.
type TraceReader struct {
	r        *bufio.Reader
	enc      Encoding
	model    ModelID
	weights  bool
	segments []Segment
	tokens   int
	line     int   // JSONL: lines read
	offset   int64 // bytes read
	dropped  int64 // bytes of a last record cut short, not read as one
	// JSONL: the last line read, as it was in the input (length, and
	// whether a newline ended it or the input did).
	lastLen      int
	lastComplete bool
	record       []byte
	experts      [][]int32
	wts          [][]float32
}

// NewTraceReader reads the header of a trace and detects its encoding.
func NewTraceReader(r io.Reader) (*TraceReader, error) {
	tr := &TraceReader{r: bufio.NewReaderSize(r, 1<<16)}
	magic, err := tr.r.Peek(len(binaryMagic))
	if err == nil && bytes.Equal(magic, binaryMagic[:]) {
		tr.enc = Binary
		err = tr.readBinaryHeader()
	} else {
		tr.enc = JSONL
		err = tr.readJSONLHeader()
	}
	if err != nil {
		return nil, err
	}
	// Per-layer lists grow as tokens need them: the header alone, a few bytes,
	// must not cost the megabytes a wide model's lists could take.
	tr.experts = make([][]int32, tr.model.Layers)
	if tr.weights {
		tr.wts = make([][]float32, tr.model.Layers)
	}
	return tr, nil
}

// Encoding returns the encoding being read.
func (tr *TraceReader) Encoding() Encoding { return tr.enc }

// Model returns the traced model's identity from the header.
func (tr *TraceReader) Model() ModelID { return tr.model }

// HasWeights reports whether the trace stores routing weights.
func (tr *TraceReader) HasWeights() bool { return tr.weights }

// Segments returns the segments started so far (Start counts tokens read).
func (tr *TraceReader) Segments() []Segment { return tr.segments }

// Dropped returns how many bytes at the end of the input did not form a
// complete record and were not read as one: 0 for a trace written to the
// end.
func (tr *TraceReader) Dropped() int64 { return tr.dropped }

// cutOff ends the trace at a record that starts at byte start and that the
// input cut short.
func (tr *TraceReader) cutOff(start int64) error {
	tr.dropped = tr.offset - start
	tr.offset = start
	return io.EOF
}

// isCut reports whether err is the input ending inside a record.
func isCut(err error) bool {
	return err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)
}

// Next reads the next token, skipping past segment starts (see Segments). It
// returns per layer the selected experts and, if the trace has them, the
// weights (else nil); both stay valid until the next call. At the end of the
// trace it returns io.EOF. A last record cut short by the end of the input
// (a writer killed mid-record) ends the trace too: Dropped says how many
// bytes it had.
func (tr *TraceReader) Next() (experts [][]int32, weights [][]float32, err error) {
	if tr.enc == Binary {
		err = tr.nextBinary()
	} else {
		err = tr.nextJSONL()
	}
	if err != nil {
		return nil, nil, err
	}
	tr.tokens++
	return tr.experts, tr.wts, nil
}

func (tr *TraceReader) formatError(msg string, err error) error {
	fe := &FormatError{Format: "trace/" + tr.enc.String(), Msg: msg, Err: err}
	if tr.enc == Binary {
		fe.Where = fmt.Sprintf("byte %d", tr.offset)
	} else {
		fe.Where = fmt.Sprintf("line %d", tr.line)
	}
	return fe
}

// readLine returns the next non-blank line, or io.EOF.
func (tr *TraceReader) readLine() ([]byte, error) {
	for {
		var line []byte
		for {
			chunk, err := tr.r.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > maxJSONLLine {
				return nil, tr.formatError(fmt.Sprintf("line longer than %d bytes", maxJSONLLine), nil)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF && len(line) > 0 {
				break
			}
			if err != nil {
				return nil, err
			}
			break
		}
		tr.line++
		tr.offset += int64(len(line))
		tr.lastLen, tr.lastComplete = len(line), line[len(line)-1] == '\n'
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, nil
		}
	}
}

func (tr *TraceReader) readJSONLHeader() error {
	line, err := tr.readLine()
	if err == io.EOF {
		return tr.formatError("empty input", io.ErrUnexpectedEOF)
	}
	if err != nil {
		return err
	}
	var hdr jsonlHeader
	if err := json.Unmarshal(line, &hdr); err != nil {
		return tr.formatError("header is not a JSON object", err)
	}
	if hdr.Format != traceFormat {
		return tr.formatError(fmt.Sprintf("format %q, want %q", hdr.Format, traceFormat), nil)
	}
	if hdr.Version != TraceVersion {
		return tr.formatError(fmt.Sprintf("version %d, this package reads %d", hdr.Version, TraceVersion), ErrVersion)
	}
	if err := hdr.Model.Validate(); err != nil {
		return tr.formatError("bad model", err)
	}
	tr.model, tr.weights = hdr.Model, hdr.Weights
	return nil
}

func (tr *TraceReader) nextJSONL() error {
	for {
		line, err := tr.readLine()
		if err != nil {
			return err
		}
		var v jsonlLine
		if err := json.Unmarshal(line, &v); err != nil {
			if !tr.lastComplete {
				// The input ended inside the line: a writer stopped mid-line.
				return tr.cutOff(tr.offset - int64(tr.lastLen))
			}
			return tr.formatError("bad JSON", err)
		}
		if v.Segment != nil {
			if v.Experts != nil || len(*v.Segment) > maxSegmentName {
				return tr.formatError("bad segment line", nil)
			}
			tr.segments = append(tr.segments, Segment{Name: *v.Segment, Phase: v.Phase, Start: tr.tokens})
			continue
		}
		if len(v.Experts) != tr.model.Layers {
			return tr.formatError(fmt.Sprintf("%d expert lists, want one per layer (%d)", len(v.Experts), tr.model.Layers), nil)
		}
		if tr.weights != (v.Weights != nil) {
			return tr.formatError(fmt.Sprintf("weights present: %v, header says %v", v.Weights != nil, tr.weights), nil)
		}
		if v.Weights != nil && len(v.Weights) != tr.model.Layers {
			return tr.formatError(fmt.Sprintf("%d weight lists for %d layers", len(v.Weights), tr.model.Layers), nil)
		}
		for l, ids := range v.Experts {
			var w []float32
			if tr.weights {
				w = v.Weights[l]
				if w == nil {
					w = []float32{}
				}
			}
			if err := checkRoute(tr.model.Experts, tr.model.ExpertsUsed, ids, w); err != nil {
				return tr.formatError(fmt.Sprintf("layer %d", l), err)
			}
			tr.experts[l] = append(tr.experts[l][:0], ids...)
			if tr.weights {
				tr.wts[l] = append(tr.wts[l][:0], w...)
			}
		}
		return nil
	}
}

func (tr *TraceReader) readFull(b []byte) error {
	n, err := io.ReadFull(tr.r, b)
	tr.offset += int64(n)
	return err
}

// readRecord reads the next n bytes into tr.record. The buffer grows only as
// the bytes arrive, so a header announcing a megabyte-wide record costs a
// megabyte only if the input has one.
func (tr *TraceReader) readRecord(n int) error {
	if cap(tr.record) >= n {
		tr.record = tr.record[:n]
		return tr.readFull(tr.record)
	}
	tr.record = tr.record[:0]
	for len(tr.record) < n {
		have := len(tr.record)
		tr.record = slices.Grow(tr.record, min(n-have, max(have, 4096)))
		tr.record = tr.record[:min(n, cap(tr.record))]
		if err := tr.readFull(tr.record[have:]); err != nil {
			return err
		}
	}
	return nil
}

func (tr *TraceReader) readString(lenBytes int) (string, error) {
	var n [2]byte
	if err := tr.readFull(n[:lenBytes]); err != nil {
		return "", err
	}
	size := int(n[0])
	if lenBytes == 2 {
		size = int(binary.LittleEndian.Uint16(n[:]))
	}
	s := make([]byte, size)
	if err := tr.readFull(s); err != nil {
		return "", err
	}
	if !utf8.Valid(s) {
		return "", errors.New("string is not UTF-8")
	}
	return string(s), nil
}

func (tr *TraceReader) readBinaryHeader() error {
	var fixed [20]byte
	if err := tr.readFull(fixed[:]); err != nil {
		return tr.formatError("truncated header", noEOF(err))
	}
	if v := binary.LittleEndian.Uint16(fixed[4:]); v != TraceVersion {
		return tr.formatError(fmt.Sprintf("version %d, this package reads %d", v, TraceVersion), ErrVersion)
	}
	flags := binary.LittleEndian.Uint16(fixed[6:])
	if flags&^1 != 0 {
		return tr.formatError(fmt.Sprintf("unknown flags %#x", flags), nil)
	}
	tr.weights = flags&1 != 0
	// Validate before converting so huge values cannot wrap around int.
	dims := [3]uint32{
		binary.LittleEndian.Uint32(fixed[8:]),
		binary.LittleEndian.Uint32(fixed[12:]),
		binary.LittleEndian.Uint32(fixed[16:]),
	}
	if dims[0] > MaxLayers || dims[1] > MaxExperts || dims[2] > MaxExpertsUsed {
		return tr.formatError(fmt.Sprintf("model shape %v beyond limits", dims), nil)
	}
	m := ModelID{Layers: int(dims[0]), Experts: int(dims[1]), ExpertsUsed: int(dims[2])}
	for _, dst := range []*string{&m.Name, &m.Arch, &m.TensorHash} {
		s, err := tr.readString(2)
		if err != nil {
			return tr.formatError("truncated header", noEOF(err))
		}
		*dst = s
	}
	if err := m.Validate(); err != nil {
		return tr.formatError("bad model", err)
	}
	tr.model = m
	return nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: inside a header or record, the
// end of input is a truncation.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (tr *TraceReader) nextBinary() error {
	m := tr.model
	for {
		start := tr.offset
		tag, err := tr.r.ReadByte()
		if err != nil {
			return err // io.EOF between records is the clean end
		}
		tr.offset++
		switch tag {
		case tagSegment:
			name, err := tr.readString(2)
			if err == nil && len(name) > maxSegmentName {
				err = fmt.Errorf("segment name of %d bytes", len(name))
			}
			var phase string
			if err == nil {
				phase, err = tr.readString(1)
			}
			if err != nil {
				if isCut(err) {
					return tr.cutOff(start)
				}
				tr.offset = start
				return tr.formatError("bad segment record", err)
			}
			tr.segments = append(tr.segments, Segment{Name: name, Phase: phase, Start: tr.tokens})
			continue
		case tagToken:
		default:
			tr.offset = start
			return tr.formatError(fmt.Sprintf("unknown record tag %#x", tag), nil)
		}
		if err := tr.readRecord(int(tokenBytes(m, tr.weights))); err != nil {
			if isCut(err) {
				return tr.cutOff(start)
			}
			tr.offset = start
			return tr.formatError("bad token record", err)
		}
		b := tr.record
		for l := range m.Layers {
			n := int(b[0])
			if n > m.ExpertsUsed {
				tr.offset = start
				return tr.formatError(fmt.Sprintf("layer %d selects %d experts, top-k is %d", l, n, m.ExpertsUsed), nil)
			}
			b = b[1:]
			ids := tr.experts[l][:0]
			for i := range n {
				id := binary.LittleEndian.Uint16(b[2*i:])
				if int(id) >= m.Experts {
					tr.offset = start
					return tr.formatError(fmt.Sprintf("layer %d: expert %d of %d", l, id, m.Experts), ErrOutOfRange)
				}
				ids = append(ids, int32(id))
			}
			tr.experts[l] = ids
			b = b[2*m.ExpertsUsed:]
			if tr.weights {
				w := tr.wts[l][:0]
				for i := range n {
					w = append(w, math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
				}
				if err := checkFinite(w); err != nil {
					tr.offset = start
					return tr.formatError(fmt.Sprintf("layer %d", l), err)
				}
				tr.wts[l] = w
				b = b[4*m.ExpertsUsed:]
			}
		}
		return nil
	}
}

// Encode writes the trace in the given encoding.
func (t *Trace) Encode(w io.Writer, enc Encoding) error {
	var opts []TraceOption
	if t.weights {
		opts = append(opts, WithWeights())
	}
	tw, err := NewTraceWriter(w, enc, t.model, opts...)
	if err != nil {
		return err
	}
	experts := make([][]int32, t.model.Layers)
	var weights [][]float32
	if t.weights {
		weights = make([][]float32, t.model.Layers)
	}
	seg := 0
	for tok := range t.tokens {
		for ; seg < len(t.segments) && t.segments[seg].Start == tok; seg++ {
			if err := tw.StartSegment(t.segments[seg].Name, t.segments[seg].Phase); err != nil {
				return err
			}
		}
		for l := range experts {
			experts[l] = t.AppendExperts(experts[l][:0], tok, l)
			if t.weights {
				weights[l] = t.AppendWeights(weights[l][:0], tok, l)
			}
		}
		if err := tw.WriteToken(experts, weights); err != nil {
			return err
		}
	}
	for ; seg < len(t.segments); seg++ { // empty segments at the end
		if err := tw.StartSegment(t.segments[seg].Name, t.segments[seg].Phase); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// ReadTrace reads a whole trace written by Encode or a TraceWriter, in either
// encoding. A last record cut short (the writer was killed) is dropped, and
// the trace's Dropped says how many bytes it had.
func ReadTrace(r io.Reader) (*Trace, error) {
	tr, err := NewTraceReader(r)
	if err != nil {
		return nil, err
	}
	var opts []TraceOption
	if tr.HasWeights() {
		opts = append(opts, WithWeights())
	}
	t, err := NewTrace(tr.Model(), opts...)
	if err != nil {
		return nil, err
	}
	for {
		experts, weights, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := checkGrowth(t.model, t.weights, t.tokens+1, tr.offset); err != nil {
			return nil, tr.formatError("trace would outgrow its input", err)
		}
		tok := t.AddToken()
		for l, ids := range experts {
			var w []float32
			if weights != nil {
				w = weights[l]
			}
			if err := t.Set(tok, l, ids, w); err != nil {
				return nil, err
			}
		}
	}
	t.segments = append([]Segment(nil), tr.Segments()...)
	t.dropped = tr.Dropped()
	return t, nil
}

// Save writes the trace to path in the given encoding. If writing fails, a
// file already at path is left as it was.
func (t *Trace) Save(path string, enc Encoding) error {
	return saveFile(path, func(w io.Writer) error { return t.Encode(w, enc) })
}
