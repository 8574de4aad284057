package profile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// Model identities of the external traces (see shared/traces beside the repository and its
// READMEs). Layers are numbered as in the model, so DeepSeek's dense layer 0
// has no routing.
var (
	DeepSeekV2Lite = ModelID{Name: "DeepSeek-V2-Lite-Chat", Arch: "deepseek2", Layers: 27, Experts: 64, ExpertsUsed: 6}
	Mixtral8x7B    = ModelID{Name: "Mixtral-8x7B-Instruct-v0.1", Arch: "llama", Layers: 32, Experts: 8, ExpertsUsed: 2}
)

// layerStreams collects per-layer routing streams (the DeepSeek trace is
// written layer by layer, each layer's rows in token order) and lays them out
// as tokens: entry i of layer l's stream is token i at layer l. A stream
// shorter than others leaves its last tokens unrouted at that layer.
type layerStreams struct {
	model  ModelID
	ids    [][]uint16 // [layer][token*k + i]
	counts [][]uint8  // [layer][token]
	input  int64      // bytes of input the streams came from
}

func newLayerStreams(m ModelID) *layerStreams {
	return &layerStreams{model: m, ids: make([][]uint16, m.Layers), counts: make([][]uint8, m.Layers)}
}

// add appends the next token's route at layer; ids were validated.
func (s *layerStreams) add(layer int, ids []int32) {
	s.counts[layer] = append(s.counts[layer], uint8(len(ids)))
	for i := range s.model.ExpertsUsed {
		id := uint16(noExpert)
		if i < len(ids) {
			id = uint16(ids[i])
		}
		s.ids[layer] = append(s.ids[layer], id)
	}
}

// tokens is the length of the longest stream.
func (s *layerStreams) tokens() int {
	n := 0
	for _, c := range s.counts {
		n = max(n, len(c))
	}
	return n
}

// appendTo appends the streams to t as tokens of a new segment name/phase.
func (s *layerStreams) appendTo(t *Trace, name, phase string) {
	tokens := s.tokens()
	t.StartSegment(name, phase)
	first := t.Tokens()
	for range tokens {
		t.AddToken()
	}
	k := s.model.ExpertsUsed
	for l, counts := range s.counts {
		for i, c := range counts {
			r := (first+i)*t.model.Layers + l
			t.counts[r] = c
			copy(t.ids[r*k:(r+1)*k], s.ids[l][i*k:(i+1)*k])
		}
	}
}

// parseIDList parses a JSON-style list of small non-negative integers such as
// "[8, 26, 56]" into dst, fast and without allocating.
func parseIDList(dst []int32, s string) ([]int32, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("expert list %q is not [a, b, ...]", s)
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	if s == "" {
		return dst, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("expert list: %w", err)
		}
		dst = append(dst, int32(v))
	}
	return dst, nil
}

// ReadDeepSeekCSV reads one prompt of the DeepSeek-V2-Lite trace (an
// uncompressed CSV with header "Layer ID,Batch Number,Token,Activated Expert
// IDs", rows grouped by layer and in token order within a layer) and appends
// its tokens to t as a "prefill" segment called name. t must have
// DeepSeekV2Lite's shape.
func ReadDeepSeekCSV(t *Trace, r io.Reader, name string) error {
	if err := DeepSeekV2Lite.Check(t.Model()); err != nil {
		return err
	}
	streams, err := parseDeepSeekCSV(r, name)
	if err != nil {
		return err
	}
	if err := checkGrowth(t.model, t.weights, streams.tokens(), streams.input); err != nil {
		return &FormatError{Format: "deepseek-csv", Source: name, Msg: "trace would outgrow its input", Err: err}
	}
	streams.appendTo(t, name, "prefill")
	return nil
}

func parseDeepSeekCSV(r io.Reader, name string) (*layerStreams, error) {
	fail := func(line int, msg string, err error) error {
		return &FormatError{Format: "deepseek-csv", Source: name, Where: fmt.Sprintf("line %d", line), Msg: msg, Err: err}
	}
	m := DeepSeekV2Lite
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 4
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fail(1, "no header", noEOF(err))
	}
	if header[0] != "Layer ID" || header[3] != "Activated Expert IDs" {
		return nil, fail(1, fmt.Sprintf("header %q", header), nil)
	}
	streams := newLayerStreams(m)
	ids := make([]int32, 0, m.ExpertsUsed)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			streams.input = cr.InputOffset()
			return streams, nil
		}
		if err != nil { // FieldPos would panic: there is no record
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fail(pe.StartLine, "bad CSV", err)
			}
			return nil, &FormatError{Format: "deepseek-csv", Source: name, Msg: "unreadable", Err: err}
		}
		line, _ := cr.FieldPos(0)
		layer, err := strconv.Atoi(rec[0])
		if err != nil || layer < 0 || layer >= m.Layers {
			return nil, fail(line, fmt.Sprintf("layer %q of a %d-layer model", rec[0], m.Layers), ErrOutOfRange)
		}
		if ids, err = parseIDList(ids[:0], rec[3]); err != nil {
			return nil, fail(line, "bad expert list", err)
		}
		if err := checkRoute(m.Experts, m.ExpertsUsed, ids, nil); err != nil {
			return nil, fail(line, "bad route", err)
		}
		streams.add(layer, ids)
	}
}

var deepSeekPrompt = regexp.MustCompile(`^prompt_(\d+)_data\.csv(\.gz)?$`)

// LoadDeepSeek reads the DeepSeek-V2-Lite trace at path: a directory of
// prompt_N_data.csv[.gz] files, concatenated in numeric order of N with one
// "prefill" segment per prompt named "prompt_N" (the order the trace's README
// hit-rate table uses), or a single such file. The files are parsed in
// parallel; when ctx is done, parsing stops and LoadDeepSeek returns ctx's
// error.
func LoadDeepSeek(ctx context.Context, path string) (*Trace, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			if deepSeekPrompt.MatchString(e.Name()) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: %s is a folder without prompt_N_data.csv[.gz] files (a folder is read as the DeepSeek CSV trace)", ErrFormat, path)
		}
		slices.SortFunc(files, func(a, b string) int { return promptNumber(a) - promptNumber(b) })
	}
	// Files parse independently, so parse them in parallel and append in order.
	parsed := make([]*layerStreams, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, f := range files {
		g.Go(func() error {
			return readFileWith(gctx, f, func(r *bufio.Reader) (err error) {
				parsed[i], err = parseDeepSeekCSV(r, promptName(f))
				return err
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	tokens, input := 0, int64(0)
	for _, s := range parsed {
		tokens, input = tokens+s.tokens(), input+s.input
	}
	if err := checkGrowth(DeepSeekV2Lite, false, tokens, input); err != nil {
		return nil, &FormatError{Format: "deepseek-csv", Source: path, Msg: "trace would outgrow its input", Err: err}
	}
	t, err := NewTrace(DeepSeekV2Lite, WithTokenCapacity(tokens))
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		parsed[i].appendTo(t, promptName(f), "prefill")
	}
	return t, nil
}

// promptName turns ".../prompt_12_data.csv.gz" into "prompt_12".
func promptName(path string) string {
	name := strings.TrimSuffix(filepath.Base(path), ".gz")
	return strings.TrimSuffix(strings.TrimSuffix(name, ".csv"), "_data")
}

func promptNumber(path string) int {
	m := deepSeekPrompt.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// readFileWith opens path, transparently gunzips it, and passes it to read.
// Reading stops at the next buffer refill once ctx is done, and then
// readFileWith returns ctx's error, whatever read made of it.
func readFileWith(ctx context.Context, path string, read func(*bufio.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("profile: read %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer f.Close()
	r, err := maybeGunzip(bufio.NewReaderSize(ctxReader{ctx, f}, 1<<16))
	if err != nil {
		err = fmt.Errorf("profile: %s: %w", path, err)
	} else {
		err = read(r)
	}
	if cerr := ctx.Err(); err != nil && cerr != nil {
		return fmt.Errorf("profile: read %s: %w", path, cerr)
	}
	return err
}

// ctxReader is a reader that fails with ctx's error once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// maybeGunzip returns a decompressing reader if br starts with the gzip magic.
func maybeGunzip(br *bufio.Reader) (*bufio.Reader, error) {
	magic, err := br.Peek(2)
	if err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	return bufio.NewReaderSize(zr, 1<<16), nil
}

// mixtralRecord is one line of the Mixtral speculative_moe_decode trace.
type mixtralRecord struct {
	Dataset     string    `json:"dataset"`
	ProblemID   *int      `json:"problem_id"`
	Layer       *int      `json:"layer"`
	Experts     []int32   `json:"experts"`
	GatingProbs []float32 `json:"gating_probs"`
	TokenIdx    *int      `json:"token_idx"`
}

// maxTokenLead is how far the tokens of a Mixtral trace may run ahead of its
// records. In a well-formed file every token of a (problem, layer) stream comes
// after the stream's earlier tokens, so the problems never span more tokens
// than records have been read; the lead tolerates records out of order. A
// token_idx beyond it would make the reader lay out tokens the file does not
// have, a megabyte of trace for a 100-byte line.
const maxTokenLead = 4096

// mixtralRoute is one validated record of a Mixtral trace, kept until the
// problems' lengths are known.
type mixtralRoute struct {
	line, problem, layer, token int
	experts                     []int32
	probs                       []float32
}

// ReadMixtral reads a Mixtral-8x7B routing file of the speculative_moe_decode
// trace (JSON lines {"dataset","problem_id","layer","experts","gating_probs",
// "token_idx"}), one "decode" segment per problem named "dataset/problem_id" in
// order of first appearance, with gating probabilities as weights. Each layer's
// stream is placed by token_idx; the README warns that per-layer token counts
// differ by up to 3, so a token missing from a layer's stream is left unrouted
// there. A problem is as long as its longest stream, and all problems together
// may not hold more tokens than the file has records (plus a small lead): a
// token_idx beyond that is an error.
func ReadMixtral(r io.Reader, source string) (*Trace, error) {
	t, err := NewTrace(Mixtral8x7B, WithWeights())
	if err != nil {
		return nil, err
	}
	m := t.Model()
	type problem struct {
		name   string
		tokens int // the longest stream's length
	}
	var (
		problems []problem
		byName   = map[string]int{}
		routes   []mixtralRoute
		tokens   int // over all problems
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		fail := func(msg string, err error) error {
			return &FormatError{Format: "mixtral-jsonl", Source: source, Where: fmt.Sprintf("line %d", line), Msg: msg, Err: err}
		}
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rec mixtralRecord
		if err := json.Unmarshal(text, &rec); err != nil {
			return nil, fail("bad JSON", err)
		}
		if rec.ProblemID == nil || rec.Layer == nil || rec.TokenIdx == nil {
			return nil, fail("record without problem_id, layer or token_idx", nil)
		}
		layer, token := *rec.Layer, *rec.TokenIdx
		records := len(routes) + 1
		if layer < 0 || layer >= m.Layers || token < 0 || token >= records+maxTokenLead {
			return nil, fail(fmt.Sprintf("layer %d or token_idx %d out of range (record %d)", layer, token, records), ErrOutOfRange)
		}
		if err := checkRoute(m.Experts, m.ExpertsUsed, rec.Experts, rec.GatingProbs); err != nil {
			return nil, fail("bad route", err)
		}
		name := rec.Dataset + "/" + strconv.Itoa(*rec.ProblemID)
		p, ok := byName[name]
		if !ok {
			p = len(problems)
			byName[name] = p
			problems = append(problems, problem{name: name})
		}
		if grow := token + 1 - problems[p].tokens; grow > 0 {
			if tokens+grow > records+maxTokenLead {
				return nil, fail(fmt.Sprintf("token_idx %d of %s would make %d tokens from %d records", token, name, tokens+grow, records), ErrOutOfRange)
			}
			problems[p].tokens += grow
			tokens += grow
		}
		routes = append(routes, mixtralRoute{line: line, problem: p, layer: layer, token: token, experts: rec.Experts, probs: rec.GatingProbs})
	}
	if err := sc.Err(); err != nil {
		return nil, &FormatError{Format: "mixtral-jsonl", Source: source, Where: fmt.Sprintf("line %d", line+1), Msg: "unreadable line", Err: err}
	}
	first := make([]int, len(problems)) // each problem's first token in t
	for i, p := range problems {
		t.StartSegment(p.name, "decode")
		first[i] = t.Tokens()
		for range p.tokens {
			t.AddToken()
		}
	}
	for _, r := range routes { // in file order: a repeated record replaces the earlier one
		if err := t.Set(first[r.problem]+r.token, r.layer, r.experts, r.probs); err != nil {
			return nil, &FormatError{Format: "mixtral-jsonl", Source: source, Where: fmt.Sprintf("line %d", r.line), Msg: "bad route", Err: err}
		}
	}
	return t, nil
}

// granitePrompt is one prompt of the granite trace.
type granitePrompt struct {
	PromptLen int         `json:"prompt_len"`
	Prefill   [][][]int32 `json:"prefill"`
	Decode    [][][]int32 `json:"decode"`
}

// ReadGranite reads the granite-3.0-1b-a400m trace (one JSON object
// {"model","num_layers","num_experts","top_k","prompts":{name:{"prompt_len",
// "prefill":[pos][layer][k],"decode":[step][layer][k]}}}). Each prompt, in file
// order, becomes a "prefill" and a "decode" segment named after it.
func ReadGranite(r io.Reader, source string) (*Trace, error) {
	fail := func(where, msg string, err error) error {
		return &FormatError{Format: "granite-json", Source: source, Where: where, Msg: msg, Err: err}
	}
	var doc struct {
		Model      string          `json:"model"`
		NumLayers  int             `json:"num_layers"`
		NumExperts int             `json:"num_experts"`
		TopK       int             `json:"top_k"`
		Prompts    json.RawMessage `json:"prompts"`
	}
	if err := json.NewDecoder(io.LimitReader(r, 1<<30)).Decode(&doc); err != nil {
		return nil, fail("", "bad JSON", err)
	}
	m := ModelID{Name: doc.Model, Arch: "granitemoe", Layers: doc.NumLayers, Experts: doc.NumExperts, ExpertsUsed: doc.TopK}
	t, err := NewTrace(m)
	if err != nil {
		return nil, fail("header", "bad model shape", err)
	}
	// The prompts object is walked token by token to keep the file's order.
	input := int64(len(doc.Prompts))
	dec := json.NewDecoder(bytes.NewReader(doc.Prompts))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fail("prompts", "not an object", err)
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, fail("prompts", "bad key", err)
		}
		name, _ := key.(string)
		var p granitePrompt
		if err := dec.Decode(&p); err != nil {
			return nil, fail("prompt "+name, "bad prompt", err)
		}
		for _, phase := range []struct {
			name   string
			tokens [][][]int32
		}{{"prefill", p.Prefill}, {"decode", p.Decode}} {
			t.StartSegment(name, phase.name)
			for i, layers := range phase.tokens {
				where := fmt.Sprintf("prompt %s %s token %d", name, phase.name, i)
				if len(layers) != m.Layers {
					return nil, fail(where, fmt.Sprintf("%d layers, want %d", len(layers), m.Layers), nil)
				}
				if err := checkGrowth(m, false, t.Tokens()+1, input); err != nil {
					return nil, fail(where, "trace would outgrow its input", err)
				}
				tok := t.AddToken()
				for l, ids := range layers {
					if err := t.Set(tok, l, ids, nil); err != nil {
						return nil, fail(where, "bad route", err)
					}
				}
			}
		}
	}
	return t, nil
}

// OpenTrace reads a trace file in any supported format, detected from its
// content: the package's binary or JSONL encodings, the DeepSeek-V2-Lite CSV
// trace (a directory of prompt files, or one file), a Mixtral-8x7B
// speculative_moe_decode routing file, or the granite JSON trace. Gzip'd files
// are decompressed. When ctx is done, reading stops and OpenTrace returns
// ctx's error.
func OpenTrace(ctx context.Context, path string) (*Trace, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return LoadDeepSeek(ctx, path)
	}
	var t *Trace
	err := readFileWith(ctx, path, func(br *bufio.Reader) error {
		head, _ := br.Peek(4096)
		var err error
		switch {
		case bytes.HasPrefix(head, binaryMagic[:]), bytes.Contains(head, []byte(`"`+traceFormat+`"`)):
			t, err = ReadTrace(br)
		case bytes.HasPrefix(head, []byte("Layer ID,")):
			t, err = NewTrace(DeepSeekV2Lite)
			if err == nil {
				err = ReadDeepSeekCSV(t, br, promptName(path))
			}
		case bytes.Contains(head, []byte(`"gating_probs"`)) || bytes.Contains(head, []byte(`"token_idx"`)):
			t, err = ReadMixtral(br, path)
		case bytes.Contains(head, []byte(`"prompts"`)) || bytes.Contains(head, []byte(`"num_experts"`)):
			t, err = ReadGranite(br, path)
		default:
			err = &FormatError{Format: "trace", Source: path, Msg: "unknown trace format"}
		}
		return err
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) && fe.Source == "" {
			fe.Source = path
		}
		return nil, err
	}
	return t, nil
}
