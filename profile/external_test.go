package profile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/internal/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadDeepSeekDir(t *testing.T) {
	tr, err := OpenTrace(t.Context(), filepath.Join("testdata", "deepseek"))
	require.NoError(t, err)
	assert.Equal(t, DeepSeekV2Lite, tr.Model())
	require.Equal(t, 3, tr.Tokens())
	assert.Equal(t, []Segment{{Name: "prompt_2", Phase: "prefill", Start: 0}, {Name: "prompt_10", Phase: "prefill", Start: 1}},
		tr.Segments(), "prompts in numeric order")
	assert.Equal(t, 0, tr.Len(0, 0), "layer 0 is dense")
	assert.Equal(t, []int32{0, 1, 2, 3, 4, 5}, tr.AppendExperts(nil, 0, 1))
	assert.Equal(t, []int32{63, 62, 61, 60, 59, 58}, tr.AppendExperts(nil, 0, 26))
	assert.Equal(t, []int32{8, 22, 43, 46, 63, 7}, tr.AppendExperts(nil, 2, 1), "quoted token with a comma")
	assert.Equal(t, []int32{0, 9, 18, 27, 36, 45}, tr.AppendExperts(nil, 2, 2))
	assert.Equal(t, 0, tr.Len(2, 3))

	one, err := OpenTrace(t.Context(), filepath.Join("testdata", "deepseek", "prompt_2_data.csv.gz"))
	require.NoError(t, err)
	assert.Equal(t, 1, one.Tokens())
}

func TestReadDeepSeekCSVErrors(t *testing.T) {
	for name, input := range map[string]string{
		"no header":   "",
		"bad header":  "a,b,c,d\n",
		"bad layer":   "Layer ID,Batch Number,Token,Activated Expert IDs\n27,0,x,\"[1]\"\n",
		"bad list":    "Layer ID,Batch Number,Token,Activated Expert IDs\n1,0,x,\"1, 2\"\n",
		"bad expert":  "Layer ID,Batch Number,Token,Activated Expert IDs\n1,0,x,\"[64]\"\n",
		"duplicate":   "Layer ID,Batch Number,Token,Activated Expert IDs\n1,0,x,\"[1, 1]\"\n",
		"too many":    "Layer ID,Batch Number,Token,Activated Expert IDs\n1,0,x,\"[1,2,3,4,5,6,7]\"\n",
		"field count": "Layer ID,Batch Number,Token,Activated Expert IDs\n1,0,\"[1]\"\n",
		"bad quote":   "Layer ID,Batch Number,Token,Activated Expert IDs\n\"0",
	} {
		t.Run(name, func(t *testing.T) {
			tr, err := NewTrace(DeepSeekV2Lite)
			require.NoError(t, err)
			err = ReadDeepSeekCSV(tr, bytes.NewReader([]byte(input)), "p")
			assert.ErrorIs(t, err, ErrFormat)
		})
	}
}

func TestReadMixtral(t *testing.T) {
	tr, err := OpenTrace(t.Context(), filepath.Join("testdata", "mixtral_tiny.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, Mixtral8x7B, tr.Model())
	assert.True(t, tr.HasWeights())
	require.Equal(t, 3, tr.Tokens())
	assert.Equal(t, []Segment{{Name: "gsm8k/0", Phase: "decode", Start: 0}, {Name: "gsm8k/1", Phase: "decode", Start: 2}}, tr.Segments())
	assert.Equal(t, []int32{7, 0}, tr.AppendExperts(nil, 0, 0))
	assert.Equal(t, []float32{0.75, 0.25}, tr.AppendWeights(nil, 0, 0))
	assert.Equal(t, []int32{1, 2}, tr.AppendExperts(nil, 0, 31))
	assert.Equal(t, 0, tr.Len(1, 31), "layer 31's stream is one token shorter")
	assert.Equal(t, []int32{3, 4}, tr.AppendExperts(nil, 2, 0))

	for name, line := range map[string]string{
		"no layer":    `{"dataset":"d","problem_id":0,"experts":[1,2],"gating_probs":[0.5,0.5],"token_idx":0}`,
		"bad layer":   `{"dataset":"d","problem_id":0,"layer":32,"experts":[1,2],"gating_probs":[0.5,0.5],"token_idx":0}`,
		"huge token":  `{"dataset":"d","problem_id":0,"layer":0,"experts":[1,2],"gating_probs":[0.5,0.5],"token_idx":99999999}`,
		"bad weights": `{"dataset":"d","problem_id":0,"layer":0,"experts":[1,2],"gating_probs":[0.5],"token_idx":0}`,
		"not json":    `{"dataset"`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadMixtral(bytes.NewReader([]byte(line)), "x")
			assert.ErrorIs(t, err, ErrFormat)
		})
	}
}

// allocated returns the bytes f allocates on the heap (the package's tests do
// not run in parallel, so nothing else allocates meanwhile to speak of).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// hostileMixtral is the review's 2 KB input: every line a new problem routed
// at token 1048575, which made the reader lay out a million tokens per line
// (45 GB for these 20 lines).
func hostileMixtral() []byte {
	var b bytes.Buffer
	for p := range 20 {
		fmt.Fprintf(&b, `{"dataset":"d","problem_id":%d,"layer":0,"experts":[1,2],"gating_probs":[0.5,0.5],"token_idx":1048575}`+"\n", p)
	}
	return b.Bytes()
}

func TestReadMixtralHostileTokenIdx(t *testing.T) {
	line := func(problem, token int) string {
		return fmt.Sprintf(`{"dataset":"d","problem_id":%d,"layer":0,"experts":[1,2],"gating_probs":[0.5,0.5],"token_idx":%d}`+"\n", problem, token)
	}
	for name, tc := range map[string]struct {
		input string
		where string
	}{
		"far index": {string(hostileMixtral()), "line 1"},
		// Each index alone is within the lead; together the problems would
		// hold twice as many tokens as the file can describe.
		"tokens add up": {line(0, 0) + line(1, maxTokenLead-1) + line(2, maxTokenLead-1), "line 3"},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = ReadMixtral(strings.NewReader(tc.input), "x") })
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.where, fe.Where)
			assert.ErrorIs(t, err, ErrOutOfRange)
			assert.Less(t, alloc, uint64(16<<20), "allocated for a %d-byte input", len(tc.input))
		})
	}

	// Records out of order within the lead are fine.
	tr, err := ReadMixtral(strings.NewReader(line(0, 2)+line(0, 1)+line(0, 0)), "x")
	require.NoError(t, err)
	assert.Equal(t, 3, tr.Tokens())
}

// TestReadersBoundTraceByInput feeds each text reader a wide model routed
// nowhere: three bytes of input per layer that the trace stores at full width.
func TestReadersBoundTraceByInput(t *testing.T) {
	const layers, topK, tokens = 1024, 255, 1000 // 1.5 MB of trace per 6 KB token
	empty := "[" + strings.TrimSuffix(strings.Repeat("[],", layers), ",") + "]"

	var jsonl strings.Builder
	fmt.Fprintf(&jsonl, `{"format":"rotary-trace","version":1,"model":{"arch":"wide","layers":%d,"experts":%d,"experts_used":%d},"weights":true}`+"\n", layers, topK, topK)
	for range tokens {
		fmt.Fprintf(&jsonl, `{"experts":%s,"weights":%s}`+"\n", empty, empty)
	}
	var err error
	alloc := allocated(func() { _, err = ReadTrace(strings.NewReader(jsonl.String())) })
	assert.ErrorIs(t, err, ErrFormat)
	assert.Less(t, alloc, uint64(512<<20), "allocated for a %d-byte input", jsonl.Len())

	granite := fmt.Sprintf(`{"num_layers":%d,"num_experts":%d,"top_k":%d,"prompts":{"a":{"prefill":[%s]}}}`,
		layers, topK, topK, strings.TrimSuffix(strings.Repeat(empty+",", tokens/10), ","))
	_, err = ReadGranite(strings.NewReader(granite), "x")
	assert.ErrorIs(t, err, ErrFormat)

	// DeepSeek: every row at layer 1 makes a token of 27 layers per 8-byte row.
	csv := "Layer ID,Batch Number,Token,Activated Expert IDs\n" + strings.Repeat("1,0,,[]\n", 400_000)
	tr, err := NewTrace(DeepSeekV2Lite)
	require.NoError(t, err)
	err = ReadDeepSeekCSV(tr, strings.NewReader(csv), "p")
	assert.ErrorIs(t, err, ErrFormat)
	assert.Zero(t, tr.Tokens())
}

func TestReadGranite(t *testing.T) {
	tr, err := OpenTrace(t.Context(), filepath.Join("testdata", "granite_tiny.json"))
	require.NoError(t, err)
	m := tr.Model()
	assert.Equal(t, ModelID{Name: "granite-tiny", Arch: "granitemoe", Layers: 2, Experts: 4, ExpertsUsed: 2}, m)
	require.Equal(t, 4, tr.Tokens())
	assert.Equal(t, []Segment{
		{Name: "zeta", Phase: "prefill", Start: 0}, {Name: "zeta", Phase: "decode", Start: 1},
		{Name: "alpha", Phase: "prefill", Start: 3}, {Name: "alpha", Phase: "decode", Start: 4},
	}, tr.Segments(), "prompts in file order")
	assert.Equal(t, []int32{3, 0}, tr.AppendExperts(nil, 1, 1))
	assert.Equal(t, []int32{3, 2}, tr.AppendExperts(nil, 3, 0))
	decode := tr.Subset(func(s Segment) bool { return s.Phase == "decode" })
	assert.Equal(t, 2, decode.Tokens())

	for name, doc := range map[string]string{
		"bad shape":  `{"num_layers":0,"num_experts":4,"top_k":2,"prompts":{}}`,
		"layers":     `{"num_layers":2,"num_experts":4,"top_k":2,"prompts":{"a":{"prefill":[[[0,1]]]}}}`,
		"expert":     `{"num_layers":1,"num_experts":4,"top_k":2,"prompts":{"a":{"prefill":[[[0,4]]]}}}`,
		"no prompts": `{"num_layers":1,"num_experts":4,"top_k":2,"prompts":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadGranite(bytes.NewReader([]byte(doc)), "x")
			assert.ErrorIs(t, err, ErrFormat)
		})
	}
}

func TestOpenTraceUnknown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.txt")
	require.NoError(t, os.WriteFile(path, []byte("hello"), 0o644))
	_, err := OpenTrace(t.Context(), path)
	assert.ErrorIs(t, err, ErrFormat)
	_, err = OpenTrace(t.Context(), filepath.Join(t.TempDir(), "missing"))
	assert.Error(t, err)
}

func TestOpenTraceCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, name := range []string{"deepseek", "mixtral_tiny.jsonl", "granite_tiny.json", "sample.trace.bin"} {
		_, err := OpenTrace(ctx, filepath.Join("testdata", name))
		assert.ErrorIs(t, err, context.Canceled, name)
	}
	_, err := LoadDeepSeek(ctx, filepath.Join("testdata", "deepseek"))
	assert.ErrorIs(t, err, context.Canceled)
}

// TestLoadDeepSeekStopsWhenCanceled cancels the load of the real trace (999
// files, seconds to read) as soon as it has begun.
func TestLoadDeepSeekStopsWhenCanceled(t *testing.T) {
	dir := filepath.Join(shared.TracePath(t), "deepseek-v2-lite-chat", "puffin_prefill_csv")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(10*time.Millisecond, cancel)
	_, err := LoadDeepSeek(ctx, dir)
	assert.ErrorIs(t, err, context.Canceled)
}

// lruHitRate replays t through one LRU cache of capacity experts per layer: a
// miss inserts the expert, evicting the least recently used one that the
// current token does not request; cold misses count.
func lruHitRate(t *Trace, capacity int) float64 {
	m := t.Model()
	var hits, requests int
	ids := make([]int32, 0, m.ExpertsUsed)
	// Per layer: lastUse[e] is 0 when e is not cached, else 1 + the token that
	// last used it; requested[e] is 1 + the last token that requested e.
	lastUse := make([][]int, m.Layers)
	requested := make([][]int, m.Layers)
	cached := make([]int, m.Layers)
	for l := range m.Layers {
		lastUse[l], requested[l] = make([]int, m.Experts), make([]int, m.Experts)
	}
	for tok := range t.Tokens() { // token-major, as the trace is stored
		for l := range m.Layers {
			ids = t.AppendExperts(ids[:0], tok, l)
			use, req := lastUse[l], requested[l]
			for _, e := range ids {
				req[e] = tok + 1
			}
			for _, e := range ids {
				requests++
				if use[e] != 0 {
					hits++
					use[e] = tok + 1
					continue
				}
				if cached[l] == capacity {
					victim := -1
					for c, u := range use {
						if u != 0 && req[c] != tok+1 && (victim < 0 || u < use[victim]) {
							victim = c
						}
					}
					use[victim] = 0
					cached[l]--
				}
				use[e] = tok + 1
				cached[l]++
			}
		}
	}
	return float64(hits) / float64(requests)
}

// TestRealDeepSeek checks the reader against the LRU hit rates published in the
// trace's README (prompts concatenated in numeric order).
func TestRealDeepSeek(t *testing.T) {
	dir := shared.TracePath(t)
	if testing.Short() || raceEnabled {
		t.Skip("replays 94k tokens: skipped with -short and -race")
	}
	tr, err := OpenTrace(t.Context(), filepath.Join(dir, "deepseek-v2-lite-chat", "puffin_prefill_csv"))
	require.NoError(t, err)
	assert.Equal(t, 94161, tr.Tokens())
	assert.Len(t, tr.Segments(), 999)
	// One of the README's capacities (8: 30.80%, 16: 47.16%, 32: 71.39%) keeps
	// the test short; all three match.
	assert.InDelta(t, 0.4716, lruHitRate(tr, 16), 0.00005, "LRU with 16 slots")
}

func TestRealMixtral(t *testing.T) {
	dir := shared.TracePath(t)
	tr, err := OpenTrace(t.Context(), filepath.Join(dir, "mixtral-8x7b", "speculative_moe_decode", "gsm8k_2_routing.jsonl"))
	require.NoError(t, err)
	// README: about 168 + 79 decode tokens; per-layer counts differ by up to 3.
	assert.Equal(t, 168+79, tr.Tokens())
	assert.Equal(t, []Segment{{Name: "gsm8k/0", Phase: "decode", Start: 0}, {Name: "gsm8k/1", Phase: "decode", Start: 168}}, tr.Segments())
	w := tr.AppendWeights(nil, 0, 0)
	require.Len(t, w, 2)
	assert.InDelta(t, 1, w[0]+w[1], 1e-5, "gating probabilities of top-2 sum to 1")
}

func TestRealGranite(t *testing.T) {
	dir := shared.TracePath(t)
	tr, err := OpenTrace(t.Context(), filepath.Join(dir, "granite-3.0-1b-a400m-instruct", "moe_expert_trace.json"))
	require.NoError(t, err)
	assert.Equal(t, 24, tr.Model().Layers)
	assert.Equal(t, 39+44+29+3*64, tr.Tokens())
	decode := tr.Subset(func(s Segment) bool { return s.Phase == "decode" })
	assert.Equal(t, 192, decode.Tokens())
	assert.Equal(t, "english_prose", tr.Segments()[0].Name)
}

// The external readers must not panic on any input, and whatever they accept
// must be a valid trace. The hostile seeds are inputs that once made them
// allocate far beyond their size.

func FuzzReadMixtral(f *testing.F) {
	fuzzSeeds(f, "mixtral_tiny.jsonl")
	f.Add(hostileMixtral())
	f.Fuzz(func(t *testing.T, data []byte) {
		if tr, err := ReadMixtral(bytes.NewReader(data), "fuzz"); err == nil {
			assertRoundTrips(t, tr)
		}
	})
}

func FuzzReadGranite(f *testing.F) {
	fuzzSeeds(f, "granite_tiny.json")
	f.Add([]byte(`{"num_layers":4096,"num_experts":255,"top_k":255,"prompts":{"a":{"prefill":[[[]]]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if tr, err := ReadGranite(bytes.NewReader(data), "fuzz"); err == nil {
			assertRoundTrips(t, tr)
		}
	})
}

func FuzzReadDeepSeekCSV(f *testing.F) {
	fuzzSeeds(f, filepath.Join("deepseek", "prompt_10_data.csv"))
	f.Add([]byte("Layer ID,Batch Number,Token,Activated Expert IDs\n" + strings.Repeat("1,0,,[]\n", 64)))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := NewTrace(DeepSeekV2Lite)
		require.NoError(t, err)
		if ReadDeepSeekCSV(tr, bytes.NewReader(data), "fuzz") == nil {
			assertRoundTrips(t, tr)
		}
	})
}
