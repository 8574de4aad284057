package gpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Attention against the CPU backend: a split sequence rescales each split's
// sums by e^(m_s - M) and divides once at the end, where the CPU weights each
// value by e/sum, so outputs (values in [-1, 1]) differ by a few float ulps
// per term summed.
const attnRel, attnAbs = 1e-4, 2e-6

func TestAttend(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, c := range []struct {
			T, H, KV, dim, pos int
			gated              bool
			kernel             AttnKernel
			split              int // 0: the kernels' choice
			extreme            bool
			// beyond > 0: the position is read from device memory
			// (PosAt), the host's Pos is 0, and the cache holds beyond
			// more rows of garbage that the splits cover.
			beyond int
		}{
			{1, 4, 2, 64, 0, false, AttnAuto, 0, false, 0},      // the first token
			{1, 16, 2, 256, 300, true, AttnAuto, 0, false, 0},   // qwen35moe decode, one split
			{1, 16, 2, 256, 1500, true, AttnAuto, 96, false, 0}, // splits that do not divide the context
			{1, 8, 8, 128, 777, false, AttnHeads, 32, false, 0},
			{1, 4, 1, 80, 5000, false, AttnAuto, 0, false, 0},   // the kernels split a long context
			{3, 4, 2, 64, 10, false, AttnAuto, 0, false, 0},     // a short batch: the prefill tile, one partial
			{9, 2, 1, 128, 0, true, AttnTokens, 0, false, 0},    // prefill from position 0
			{17, 4, 2, 64, 40, false, AttnTokens, 32, false, 0}, // prefill tiles over several splits
			{17, 4, 2, 64, 40, false, AttnHeads, 64, false, 0},  // the same with the decode kernel
			{11, 2, 2, 32, 1023, true, AttnTokens, 1000, false, 0},
			{128, 2, 1, 32, 3, false, AttnAuto, 0, false, 0},      // a long batch
			{2, 20, 1, 64, 50, true, AttnHeads, 32, false, 0},     // 20 query heads per KV head: three head tiles, the last partial
			{1, 6, 2, 48, 200, false, AttnAuto, 0, true, 0},       // three per KV head, extreme scores
			{1, 16, 2, 256, 300, true, AttnAuto, 0, false, 3000},  // a graph's decode step: splits past the position
			{1, 4, 1, 64, 0, false, AttnAuto, 0, false, 700},      // ... at the first token
			{1, 8, 2, 128, 1500, false, AttnAuto, 96, false, 200}, // ... with the split given
			{3, 4, 2, 64, 40, true, AttnTokens, 32, false, 100},   // the prefill kernel reads the position too
		} {
			t.Run(name("%+v", c), func(t *testing.T) {
				stride := c.dim
				if c.gated {
					stride = 2 * c.dim
				}
				qCols, kvCols, rows := c.H*stride, c.KV*c.dim, c.pos+c.T
				q := random(r, c.T*qCols, 1)
				if c.extreme {
					q = random(r, c.T*qCols, 40) // scores in the hundreds: softmax all but one-hot
				}
				prefix := random(r, c.pos*kvCols, 1)
				prefixV := random(r, c.pos*kvCols, 1)
				k, v := random(r, c.T*kvCols, 1), random(r, c.T*kvCols, 1)
				if c.pos > 0 {
					prefix[0] = 30 // one dominant score
				}
				scale := float32(1 / math.Sqrt(float64(c.dim)))
				qh := model.Heads{Count: c.H, Dim: c.dim, Stride: stride}
				gh := model.Heads{Count: c.H, Dim: c.dim, Stride: stride, Offset: c.dim}

				// The CPU backend stores the batch's keys and values itself.
				qt := e.tensor(q, c.T, qCols)
				a := model.Attention{
					Q: qt, QHeads: qh, K: e.tensor(k, c.T, kvCols), V: e.tensor(v, c.T, kvCols), KVHeads: c.KV,
					Cache: model.KVCache{
						K: e.tensor(append(append([]float32{}, prefix...), make([]float32, c.T*kvCols)...), rows, kvCols),
						V: e.tensor(append(append([]float32{}, prefixV...), make([]float32, c.T*kvCols)...), rows, kvCols),
					},
					Pos: c.pos, Scale: scale,
				}
				if c.gated {
					a.Gate, a.GateHeads = qt, gh
				}
				want := e.cpu.NewTensor(c.T, c.H*c.dim)
				require.NoError(t, e.cpu.Attend(want, a))

				qd := e.upload(q, c.T, qCols)
				garbage := random(r, c.beyond*kvCols, 100)
				g := Attention{
					Q: qd, QHeads: qh, KVHeads: c.KV,
					Cache: KVCache{
						K: e.upload(append(append(append([]float32{}, prefix...), k...), garbage...), rows+c.beyond, kvCols),
						V: e.upload(append(append(append([]float32{}, prefixV...), v...), garbage...), rows+c.beyond, kvCols),
					},
					Pos: c.pos, Scale: scale, Kernel: c.kernel, SplitLen: c.split,
				}
				if c.beyond > 0 {
					g.Pos, g.PosAt = 0, cudatest.Upload(t, e.c, []int32{int32(c.pos)})
				}
				if c.gated {
					g.Gate, g.GateHeads = qd, gh
				}
				if n := g.WorkspaceBytes(); n > 0 {
					g.Workspace = e.zeros(int(n/4), 1).Buf
				}
				dst := e.zeros(c.T, c.H*c.dim)
				require.NoError(t, e.ks.Attend(e.s, dst, g))
				assertClose(t, e.read(want), e.download(dst), attnRel, attnAbs, "out")
			})
		}
	})
}

func TestAttendSchedule(t *testing.T) {
	for _, c := range []struct {
		T, H, KV, pos          int
		kernel                 AttnKernel
		y, z, splitLen, splits int
	}{
		{1, 16, 2, 0, AttnHeads, 2, 1, 128, 1},          // the first token: a block per KV head
		{1, 16, 2, 4095, AttnHeads, 2, 1, 128, 32},      // decode: splits fill the GPU
		{1, 16, 2, 262143, AttnHeads, 2, 1, 1024, 256},  // a long context: splits as long as shared memory allows
		{1, 32, 2, 99, AttnHeads, 4, 1, 128, 1},         // 16 query heads per KV head: two tiles
		{512, 16, 2, 0, AttnTokens, 16, 64, 512, 1},     // a prompt: tiles fill the GPU
		{512, 16, 2, 8000, AttnTokens, 16, 64, 1024, 9}, // a prompt after a long context
	} {
		a := Attention{Q: Matrix{Rows: c.T, Cols: c.H * 256}, QHeads: model.Heads{Count: c.H, Dim: 256, Stride: 256}, KVHeads: c.KV, Pos: c.pos}
		kernel, y, z, splitLen, splits := a.schedule()
		require.Equal(t, []int{int(c.kernel), c.y, c.z, c.splitLen, c.splits}, []int{int(kernel), y, z, splitLen, splits}, "%+v", c)
		ws := 0
		if c.splits > 1 {
			ws = 4 * c.T * c.H * c.splits * (256 + 2)
		}
		require.EqualValues(t, ws, a.WorkspaceBytes(), "%+v", c)
	}
}
