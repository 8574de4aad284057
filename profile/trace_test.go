package profile

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden trace files in testdata")

// sampleTrace is a small trace with weights, segments (one empty), an unrouted
// layer and a short route.
func sampleTrace(t testing.TB) *Trace {
	t.Helper()
	m := ModelID{Name: "sample", Arch: "test", Layers: 3, Experts: 6, ExpertsUsed: 2, TensorHash: "abc123"}
	tr, err := NewTrace(m, WithWeights())
	require.NoError(t, err)
	tr.StartSegment("first", "prefill")
	routes := [][][]int32{
		{{0, 1}, {2, 3}, {}},
		{{1, 5}, {3}, {4, 0}},
	}
	for _, layers := range routes {
		tok := tr.AddToken()
		for l, ids := range layers {
			w := make([]float32, len(ids))
			for i := range w {
				w[i] = 0.25 * float32(i+1)
			}
			require.NoError(t, tr.Set(tok, l, ids, w))
		}
	}
	tr.StartSegment("empty", "")
	tr.StartSegment("second", "decode")
	tok := tr.AddToken()
	require.NoError(t, tr.Set(tok, 2, []int32{5, 4}, nil))
	tr.StartSegment("trailing", "decode")
	return tr
}

func assertSameTrace(t *testing.T, want, got *Trace) {
	t.Helper()
	require.Equal(t, want.Model(), got.Model())
	require.Equal(t, want.Tokens(), got.Tokens())
	assert.Equal(t, want.HasWeights(), got.HasWeights())
	assert.Equal(t, want.Segments(), got.Segments())
	for tok := range want.Tokens() {
		for l := range want.Model().Layers {
			assert.Equal(t, want.AppendExperts(nil, tok, l), got.AppendExperts(nil, tok, l), "token %d layer %d", tok, l)
			assert.Equal(t, want.AppendWeights(nil, tok, l), got.AppendWeights(nil, tok, l), "token %d layer %d", tok, l)
		}
	}
}

func TestTraceAccessors(t *testing.T) {
	tr := sampleTrace(t)
	assert.Equal(t, 3, tr.Tokens())
	assert.Equal(t, []int32{1, 5}, tr.AppendExperts(nil, 1, 0))
	assert.Equal(t, []float32{0.25, 0.5}, tr.AppendWeights(nil, 1, 0))
	assert.Equal(t, 0, tr.Len(0, 2))
	assert.Equal(t, 1, tr.Len(1, 1))
	assert.Equal(t, []float32{0, 0}, tr.AppendWeights(nil, 2, 2), "Set without weights stores zeros")
	assert.Equal(t, 0, tr.Len(3, 0), "out of range reads as unrouted")
	assert.Nil(t, tr.AppendExperts(nil, 0, 7))
	assert.Equal(t, 2, tr.SegmentEnd(0))
	assert.Equal(t, 2, tr.SegmentEnd(1))
	assert.Equal(t, 3, tr.SegmentEnd(2))

	assert.ErrorIs(t, tr.Set(0, 0, []int32{6}, nil), ErrOutOfRange)
	assert.ErrorIs(t, tr.Set(0, 0, []int32{0, 1, 2}, nil), ErrOutOfRange)
	assert.ErrorIs(t, tr.Set(0, 0, []int32{0}, []float32{1, 2}), ErrInvalid)
	assert.ErrorIs(t, tr.Set(3, 0, nil, nil), ErrOutOfRange)
	assert.ErrorIs(t, tr.Set(0, 3, nil, nil), ErrOutOfRange)
}

func TestTraceSubset(t *testing.T) {
	tr := sampleTrace(t)
	dec := tr.Subset(func(s Segment) bool { return s.Phase == "decode" })
	require.Equal(t, 1, dec.Tokens())
	assert.Equal(t, []Segment{{Name: "second", Phase: "decode", Start: 0}, {Name: "trailing", Phase: "decode", Start: 1}}, dec.Segments())
	assert.Equal(t, []int32{5, 4}, dec.AppendExperts(nil, 0, 2))
	first := tr.Subset(func(s Segment) bool { return s.Name == "first" })
	assert.Equal(t, 2, first.Tokens())
	assert.Equal(t, []int32{4, 0}, first.AppendExperts(nil, 1, 2))
}

func TestTraceRoundTrip(t *testing.T) {
	noWeights, err := NewTrace(ModelID{Arch: "test", Layers: 2, Experts: 300, ExpertsUsed: 3})
	require.NoError(t, err)
	for range 5 {
		tok := noWeights.AddToken()
		require.NoError(t, noWeights.Set(tok, 0, []int32{299, int32(tok), 7}, []float32{1, 2, 3}))
		require.NoError(t, noWeights.Set(tok, 1, []int32{int32(tok * 50)}, nil))
	}
	for name, tr := range map[string]*Trace{"weights+segments": sampleTrace(t), "no weights": noWeights} {
		for _, enc := range []Encoding{JSONL, Binary} {
			t.Run(name+"/"+enc.String(), func(t *testing.T) {
				var buf bytes.Buffer
				require.NoError(t, tr.Encode(&buf, enc))
				got, err := ReadTrace(&buf)
				require.NoError(t, err)
				assertSameTrace(t, tr, got)
			})
		}
	}
}

// TestTraceGolden pins both encodings byte for byte (go test -update rewrites
// the files); the files also seed the fuzzers.
func TestTraceGolden(t *testing.T) {
	tr := sampleTrace(t)
	for _, g := range []struct {
		file string
		enc  Encoding
	}{{"sample.trace.jsonl", JSONL}, {"sample.trace.bin", Binary}} {
		var buf bytes.Buffer
		require.NoError(t, tr.Encode(&buf, g.enc))
		path := filepath.Join("testdata", g.file)
		if *update {
			require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, string(want), buf.String(), "%s differs from the encoder's output", path)
		got, err := OpenTrace(t.Context(), path)
		require.NoError(t, err)
		assertSameTrace(t, tr, got)
	}
}

func TestTraceSave(t *testing.T) {
	tr := sampleTrace(t)
	path := filepath.Join(t.TempDir(), "t.bin")
	require.NoError(t, tr.Save(path, Binary))
	got, err := OpenTrace(t.Context(), path)
	require.NoError(t, err)
	assertSameTrace(t, tr, got)

	// A segment name too long to encode fails mid-file: the file saved
	// before is left as it was, and nothing else.
	tr.StartSegment(strings.Repeat("x", maxSegmentName+1), "")
	assert.ErrorIs(t, tr.Save(path, Binary), ErrInvalid)
	again, err := OpenTrace(t.Context(), path)
	require.NoError(t, err)
	assertSameTrace(t, got, again)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left")
	assert.Error(t, tr.Save(filepath.Join(t.TempDir(), "missing", "t.bin"), Binary))
}

func TestTraceStreaming(t *testing.T) {
	m := ModelID{Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 2}
	var buf bytes.Buffer
	w, err := NewTraceWriter(&buf, JSONL, m)
	require.NoError(t, err)
	require.NoError(t, w.StartSegment("p", "decode"))
	require.NoError(t, w.WriteToken([][]int32{{0, 1}, {2}}, nil))
	assert.ErrorIs(t, w.WriteToken([][]int32{{0, 1}}, nil), ErrInvalid, "one list per layer")
	assert.ErrorIs(t, w.WriteToken([][]int32{{0, 9}, {}}, nil), ErrOutOfRange)
	require.NoError(t, w.WriteToken([][]int32{{3}, {}}, nil))
	require.NoError(t, w.Flush())
	assert.Equal(t, `{"format":"rotary-trace","version":1,"model":{"arch":"test","layers":2,"experts":4,"experts_used":2},"weights":false}
{"segment":"p","phase":"decode"}
{"experts":[[0,1],[2]]}
{"experts":[[3],[]]}
`, buf.String())

	r, err := NewTraceReader(&buf)
	require.NoError(t, err)
	assert.Equal(t, JSONL, r.Encoding())
	assert.Equal(t, m, r.Model())
	experts, weights, err := r.Next()
	require.NoError(t, err)
	assert.Equal(t, [][]int32{{0, 1}, {2}}, experts)
	assert.Nil(t, weights)
	assert.Equal(t, []Segment{{Name: "p", Phase: "decode", Start: 0}}, r.Segments())
	experts, _, err = r.Next()
	require.NoError(t, err)
	assert.Equal(t, [][]int32{{3}, {}}, experts)
	_, _, err = r.Next()
	assert.Equal(t, io.EOF, err)
}

func TestTraceReaderErrors(t *testing.T) {
	var bin bytes.Buffer
	require.NoError(t, sampleTrace(t).Encode(&bin, Binary))
	full := bin.Bytes()
	header := `{"format":"rotary-trace","version":1,"model":{"arch":"t","layers":1,"experts":4,"experts_used":2},"weights":false}` + "\n"
	for name, tc := range map[string]struct {
		input string
		want  error
	}{
		"empty":              {"", ErrFormat},
		"not json":           {"hello\n", ErrFormat},
		"wrong format":       {`{"format":"x","version":1}`, ErrFormat},
		"future version":     {`{"format":"rotary-trace","version":9}`, ErrVersion},
		"bad model":          {`{"format":"rotary-trace","version":1,"model":{"layers":0}}`, ErrInvalid},
		"layers mismatch":    {header + `{"experts":[[0],[1]]}`, ErrFormat},
		"expert range":       {header + `{"experts":[[4]]}`, ErrOutOfRange},
		"unexpected weights": {header + `{"experts":[[1]],"weights":[[1]]}`, ErrFormat},
		"bin truncated head": {string(full[:10]), ErrFormat},
		"bin bad tag":        {string(full) + "X", ErrFormat},
		"bin future version": {string(full[:4]) + "\x09\x00" + string(full[6:]), ErrVersion},
		"bin huge layers":    {string(full[:8]) + "\xff\xff\xff\xff" + string(full[12:]), ErrFormat},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadTrace(bytes.NewReader([]byte(tc.input)))
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

// TestTraceReaderRecoversCutOffRecords cuts an encoded trace at every byte
// past its header, as a writer killed mid-record leaves it: the complete
// records are read, and Dropped counts the rest.
func TestTraceReaderRecoversCutOffRecords(t *testing.T) {
	for _, enc := range []Encoding{JSONL, Binary} {
		var buf bytes.Buffer
		require.NoError(t, sampleTrace(t).Encode(&buf, enc))
		full := buf.Bytes()
		var hdr bytes.Buffer
		empty, err := NewTrace(sampleTrace(t).Model(), WithWeights())
		require.NoError(t, err)
		require.NoError(t, empty.Encode(&hdr, enc))
		for cut := hdr.Len(); cut <= len(full); cut++ {
			got, err := ReadTrace(bytes.NewReader(full[:cut]))
			require.NoError(t, err, "%v cut at %d of %d", enc, cut, len(full))
			var again bytes.Buffer
			require.NoError(t, got.Encode(&again, enc))
			kept := cut - int(got.Dropped())
			if enc == JSONL && cut < len(full) && full[cut] == '\n' && got.Dropped() == 0 {
				kept++ // a last line complete but for its newline is read
			}
			require.Equal(t, string(full[:kept]), again.String(), "%v cut at %d: dropped %d", enc, cut, got.Dropped())
		}
		got, err := ReadTrace(bytes.NewReader(full))
		require.NoError(t, err)
		assert.Zero(t, got.Dropped())
	}
}

func TestTraceReaderDropped(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, sampleTrace(t).Encode(&buf, Binary))
	full := buf.Bytes()
	const trailingSegment = 1 + 2 + len("trailing") + 1 + len("decode")           // tag, name, phase
	r, err := NewTraceReader(bytes.NewReader(full[:len(full)-trailingSegment-3])) // into the last token
	require.NoError(t, err)
	n := 0
	for {
		_, _, err := r.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 2, n, "the third token's record is cut short")
	assert.Positive(t, r.Dropped())
	_, _, err = r.Next()
	assert.Equal(t, io.EOF, err, "the end stays the end")
}

// fuzzSeeds adds the testdata traces to a fuzz corpus.
func fuzzSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzReadTrace feeds arbitrary bytes to the trace reader: it must not panic,
// and whatever it accepts must survive a round trip through both encodings.
func FuzzReadTrace(f *testing.F) {
	fuzzSeeds(f, "sample.trace.jsonl", "sample.trace.bin")
	f.Fuzz(func(t *testing.T, data []byte) {
		if tr, err := ReadTrace(bytes.NewReader(data)); err == nil {
			assertRoundTrips(t, tr)
		}
	})
}

// assertRoundTrips checks that tr reads back the same from both encodings.
func assertRoundTrips(t *testing.T, tr *Trace) {
	t.Helper()
	for _, enc := range []Encoding{JSONL, Binary} {
		var buf bytes.Buffer
		require.NoError(t, tr.Encode(&buf, enc))
		again, err := ReadTrace(&buf)
		require.NoError(t, err)
		assertSameTrace(t, tr, again)
	}
}

// TestLoadATraceAsAProfile gives a trace where a profile is wanted: the
// error says it is a trace.
func TestLoadATraceAsAProfile(t *testing.T) {
	dir := t.TempDir()
	for _, enc := range []Encoding{JSONL, Binary} {
		path := filepath.Join(dir, "t."+enc.String())
		require.NoError(t, sampleTrace(t).Save(path, enc))
		_, err := Load(path)
		assert.ErrorIs(t, err, ErrFormat)
		assert.ErrorContains(t, err, "this is a routing trace, not a profile")
	}
}
