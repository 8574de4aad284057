package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
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
