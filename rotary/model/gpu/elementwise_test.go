package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
)

// Elementwise kernels: the CPU and the GPU round the same operations; only
// expf may differ (CUDA's is within 2 ulps, the CPU's is a rounded float64
// exp), which moves SiLU and sigmoid by a few ulps.
const actRel, actAbs = 1e-6, 1e-7

func TestElementwise(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, shape := range [][2]int{{1, 1}, {1, 2048}, {3, 257}, {7, 1000}} {
			rows, cols := shape[0], shape[1]
			t.Run(name("%dx%d", rows, cols), func(t *testing.T) {
				a, b, g := random(r, rows*cols, 30), random(r, rows*cols, 30), random(r, rows, 30)
				a[0] = 100 // SiLU and sigmoid at the edges of expf
				b[0] = -100

				want := e.cpu.NewTensor(rows, cols)
				e.cpu.Add(want, e.tensor(a, rows, cols), e.tensor(b, rows, cols))
				ad, bd := e.upload(a, rows, cols), e.upload(b, rows, cols)
				dst := e.zeros(rows, cols)
				require.NoError(t, e.ks.Add(e.s, dst, ad, bd))
				assertClose(t, e.read(want), e.download(dst), 0, 0, "add")

				e.cpu.SwiGLU(want, e.tensor(a, rows, cols), e.tensor(b, rows, cols))
				require.NoError(t, e.ks.SwiGLU(e.s, dst, ad, bd))
				assertClose(t, e.read(want), e.download(dst), actRel, actAbs, "swiglu")

				e.cpu.AddGated(want, e.tensor(a, rows, cols), e.tensor(b, rows, cols), e.tensor(g, rows, 1))
				require.NoError(t, e.ks.AddGated(e.s, ad, ad, bd, e.upload(g, rows, 1)))
				assertClose(t, e.read(want), e.download(ad), actRel, actAbs, "add gated in place")
			})
		}
	})
}

func TestEmbed(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(11, 12))
		const rows, cols = 37, 129
		vals := random(r, rows*cols, 100)
		vals[0], vals[1] = 1e-6, -7e4 // subnormal and large in half
		tokens := []int32{5, 0, 36, 5, 17}
		for _, typ := range []experts.Type{experts.TypeF32, experts.TypeF16, experts.TypeBF16} {
			t.Run(typ.String(), func(t *testing.T) {
				rb, err := typ.RowBytes(cols)
				require.NoError(t, err)
				data := make([]byte, rows*int(rb))
				require.NoError(t, quant.Quantize(typ, vals, data))
				table := weight(vals, rows, cols)
				table.Type, table.Data = typ, data
				want := e.cpu.NewTensor(len(tokens), cols)
				require.NoError(t, e.cpu.Embed(want, table, tokens))

				tok := make([]byte, 4*len(tokens))
				copy(cuda.View[int32](tok), tokens)
				dst := e.zeros(len(tokens), cols)
				require.NoError(t, e.ks.Embed(e.s, dst, Table{Buf: e.uploadBytes(data), Type: typ, Rows: rows, Cols: cols}, e.uploadBytes(tok)))
				assertClose(t, e.read(want), e.download(dst), 0, 0, "rows")
			})
		}
	})
}
