package profile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// benchTrace returns a trace of tokens tokens of m, routed by benchRoutes,
// with random weights that sum to 1 per layer (as a router's softmax gives,
// so they print with full float32 precision in JSONL).
func benchTrace(tb testing.TB, m ModelID, tokens int, weights bool) *Trace {
	var opts []TraceOption
	if weights {
		opts = append(opts, WithWeights())
	}
	tr, err := NewTrace(m, opts...)
	require.NoError(tb, err)
	ids, _ := benchRoutes(m, tokens*m.Layers)
	rng := rand.New(rand.NewPCG(3, 4))
	w := make([]float32, m.ExpertsUsed)
	for tok := range tokens {
		tr.AddToken()
		for l := range m.Layers {
			var sum float32
			for i := range w {
				w[i] = rng.Float32()
				sum += w[i]
			}
			for i := range w {
				w[i] /= sum
			}
			require.NoError(tb, tr.Set(tok, l, ids[tok*m.Layers+l], w))
		}
	}
	return tr
}

// TestBinaryTraceSize backs the size the Binary encoding's doc states.
func TestBinaryTraceSize(t *testing.T) {
	var jsonl, bin bytes.Buffer
	tr := sampleTrace(t)
	require.NoError(t, tr.Encode(&jsonl, JSONL))
	require.NoError(t, tr.Encode(&bin, Binary))
	assert.InDelta(t, 2.2, float64(jsonl.Len())/float64(bin.Len()), 0.05, "sample trace: %d bytes of JSONL, %d of binary", jsonl.Len(), bin.Len())

	for _, bc := range readBenchCases {
		jsonl.Reset()
		bin.Reset()
		tr := benchTrace(t, bc.model, 100, bc.weights)
		require.NoError(t, tr.Encode(&jsonl, JSONL))
		require.NoError(t, tr.Encode(&bin, Binary))
		assert.InDelta(t, bc.ratio, float64(jsonl.Len())/float64(bin.Len()), 0.05, "%s: %d bytes of JSONL, %d of binary", bc.name, jsonl.Len(), bin.Len())
	}
}

// readBenchCases are trace shapes of the project's external traces, and the
// size of their JSONL relative to Binary.
var readBenchCases = []struct {
	name    string
	model   ModelID
	weights bool
	ratio   float64
}{
	{"deepseek", DeepSeekV2Lite, false, 1.4},
	{"mixtral+weights", Mixtral8x7B, true, 2.3},
}

// BenchmarkReadTrace reads a 1000-token trace from memory in both encodings.
// It reports the encoded size per token and the reading time per token.
func BenchmarkReadTrace(b *testing.B) {
	const tokens = 1000
	for _, bc := range readBenchCases {
		tr := benchTrace(b, bc.model, tokens, bc.weights)
		for _, enc := range []Encoding{JSONL, Binary} {
			var buf bytes.Buffer
			require.NoError(b, tr.Encode(&buf, enc))
			b.Run(fmt.Sprintf("%s/%s", bc.name, enc), func(b *testing.B) {
				b.SetBytes(int64(buf.Len()))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ReadTrace(bytes.NewReader(buf.Bytes())); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(buf.Len())/tokens, "B/token")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tokens), "ns/token")
			})
		}
	}
}
