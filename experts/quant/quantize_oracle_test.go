package quant

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

// The quantized tiny models were made by llama-quantize from
// qwen3moe-tiny-f32.gguf without an importance matrix, i.e. with ggml's
// reference quantizers. Quantizing the F32 source again must reproduce every
// quantized tensor byte for byte.
func TestQuantizeReproducesLlamaQuantize(t *testing.T) {
	source := loadQuantOracle(t, "qwen3moe-tiny-f32")
	seen := map[experts.Type]int{}
	for _, file := range []string{"qwen3moe-tiny-q8_0", "qwen3moe-tiny-mxfp4_moe"} {
		o := loadQuantOracle(t, file)
		for _, tt := range o.Tensors {
			typ, ok := experts.TypeByName(tt.Type)
			require.True(t, ok)
			if typ == experts.TypeF32 {
				continue
			}
			st := source.tensor(t, tt.Name)
			require.Equal(t, "F32", st.Type)
			raw := source.read(t, st)
			values := make([]float32, st.NElements)
			for i := range values {
				values[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			want := o.read(t, tt)
			got := make([]byte, len(want))
			require.NoError(t, Quantize(typ, values, got))
			if i := firstDiff(got, want); i >= 0 {
				bs := typ.BlockBytes()
				t.Fatalf("%s %s (%v): byte %d (block %d) differs:\n got %x\nwant %x", file, tt.Name, typ, i, i/bs,
					got[i/bs*bs:(i/bs+1)*bs], want[i/bs*bs:(i/bs+1)*bs])
			}
			seen[typ]++
		}
	}
	require.NotZero(t, seen[experts.TypeQ8_0])
	require.NotZero(t, seen[experts.TypeMXFP4])
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
