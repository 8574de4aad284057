package quant

import (
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

// The oracle files are GGUFs written by llama.cpp with, next to each, a
// tensors.json listing every tensor's type, offset and size and, for
// quantized tensors, ggml's own dequantization of it (first 32 values, sum
// and sum of squares). These tests read the tensor bytes with plain file
// reads so they depend on nothing but the quant code.

var quantOracleFiles = []string{
	"qwen3moe-tiny-q8_0",
	"qwen3moe-tiny-mxfp4_moe",
	"qwen3moe-small-q4_k_m",
	"qwen35moe-small-q4_k_m",
}

type quantOracleTensor struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	Ne           []uint64 `json:"ne"`
	NElements    int      `json:"n_elements"`
	NBytes       int64    `json:"n_bytes"`
	DataOffset   int64    `json:"data_offset"`
	DequantCheck *struct {
		FirstValues  []float64 `json:"first_values"`
		Sum          float64   `json:"sum"`
		SumOfSquares float64   `json:"sum_of_squares"`
	} `json:"dequant_check"`
}

type quantOracle struct {
	path    string
	Tensors []quantOracleTensor `json:"tensors"`
}

func loadQuantOracle(t testing.TB, name string) *quantOracle {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", name+".tensors.json"))
	require.NoError(t, err)
	o := &quantOracle{path: filepath.Join("..", "testdata", name+".gguf")}
	require.NoError(t, json.Unmarshal(raw, o))
	require.NotEmpty(t, o.Tensors)
	return o
}

// read returns the stored bytes of tensor tt.
func (o *quantOracle) read(t testing.TB, tt quantOracleTensor) []byte {
	t.Helper()
	f, err := os.Open(o.path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, tt.NBytes)
	_, err = io.ReadFull(io.NewSectionReader(f, tt.DataOffset, tt.NBytes), buf)
	require.NoError(t, err)
	return buf
}

func (o *quantOracle) tensor(t testing.TB, name string) quantOracleTensor {
	t.Helper()
	for _, tt := range o.Tensors {
		if tt.Name == name {
			return tt
		}
	}
	t.Fatalf("%s: no tensor %q", o.path, name)
	return quantOracleTensor{}
}

func TestDequantizeMatchesOracle(t *testing.T) {
	seen := map[experts.Type]int{}
	for _, file := range quantOracleFiles {
		o := loadQuantOracle(t, file)
		for _, tt := range o.Tensors {
			typ, ok := experts.TypeByName(tt.Type)
			require.True(t, ok, "%s: unknown type %s", tt.Name, tt.Type)
			if typ == experts.TypeF32 {
				continue
			}
			require.NotNil(t, tt.DequantCheck, "%s: %s has no dequant_check", file, tt.Name)
			src := o.read(t, tt)
			dst := make([]float32, tt.NElements)
			require.NoError(t, Dequantize(typ, src, dst), "%s %s", file, tt.Name)

			check := tt.DequantCheck
			for i, want := range check.FirstValues {
				require.Equal(t, math.Float32bits(float32(want)), math.Float32bits(dst[i]),
					"%s %s (%v) element %d: got %g, ggml %g", file, tt.Name, typ, i, dst[i], float32(want))
			}
			// The sums' order of addition is unknown, so allow the error
			// bound of recursive float64 summation, (n-1)·2⁻⁵³ relative to
			// the sum of magnitudes.
			var sum, sumAbs, sumSq float64
			for _, v := range dst {
				sum += float64(v)
				sumAbs += math.Abs(float64(v))
				sumSq += float64(v) * float64(v)
			}
			roundoff := float64(len(dst)) * 0x1p-53
			require.InDelta(t, check.Sum, sum, roundoff*sumAbs, "%s %s sum", file, tt.Name)
			require.InDelta(t, check.SumOfSquares, sumSq, roundoff*sumSq, "%s %s sum of squares", file, tt.Name)
			seen[typ]++
		}
	}
	for _, typ := range []experts.Type{experts.TypeQ8_0, experts.TypeMXFP4, experts.TypeQ4_K, experts.TypeQ5_K, experts.TypeQ6_K} {
		require.NotZero(t, seen[typ], "oracle files exercised no %v tensor", typ)
	}
}

// TestVecDotOnOracleWeights runs the dot products over real llama.cpp-made
// rows (Q8_0, MXFP4, Q4_K, Q5_K, Q6_K) and compares them with the float dot
// product of the same rows dequantized and the dequantized activations, and
// with the scalar reference.
func TestVecDotOnOracleWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	for _, file := range quantOracleFiles {
		o := loadQuantOracle(t, file)
		for _, tt := range o.Tensors {
			typ, _ := experts.TypeByName(tt.Type)
			if typ == experts.TypeF32 {
				continue
			}
			n := int(tt.Ne[0])
			row := rowBytes(t, typ, n)
			data := o.read(t, tt)
			at := VecDotType(typ)
			x := randomActivations(n, rng)
			act := make([]byte, rowBytes(t, at, n))
			require.NoError(t, QuantizeActivations(at, x, act))
			xq := make([]float32, n)
			require.NoError(t, Dequantize(at, act, xq))
			wf := make([]float32, n)
			for r := 0; r < min(8, len(data)/row); r++ {
				w := data[r*row : (r+1)*row]
				require.NoError(t, Dequantize(typ, w, wf))
				var want, magnitude float64
				for i := range wf {
					want += float64(wf[i]) * float64(xq[i])
					magnitude += math.Abs(float64(wf[i]) * float64(xq[i]))
				}
				got := VecDot(typ, n, w, act)
				require.InDelta(t, want, float64(got), 2e-6*magnitude, "%s %s row %d", file, tt.Name, r)
				require.Equal(t, refVecDot(t, typ, n, w, act), got, "%s %s row %d: scalar reference", file, tt.Name, r)
			}
		}
	}
}
