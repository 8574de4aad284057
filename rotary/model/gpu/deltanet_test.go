package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/rotary/model"
)

func TestConvSiLU(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, c := range [][3]int{{1, 1, 4}, {1, 300, 4}, {2, 77, 2}, {5, 257, 8}, {33, 64, 4}, {3, 40, 7}, {512, 48, 4}} {
			T, C, K := c[0], c[1], c[2]
			t.Run(name("T%d/C%d/K%d", T, C, K), func(t *testing.T) {
				kernel, state := random(r, C*K, 1), random(r, (K-1)*C, 3)
				cs, gs := e.tensor(state, K-1, C), e.upload(state, K-1, C)
				kd := e.upload(kernel, C, K)
				// Two calls: the second continues from the state the first left.
				for call := range 2 {
					x := random(r, T*C, 3)
					want := e.cpu.NewTensor(T, C)
					require.NoError(t, e.cpu.ConvSiLU(want, e.tensor(x, T, C), cs, weight(kernel, C, K)))
					dst := e.zeros(T, C)
					require.NoError(t, e.ks.ConvSiLU(e.s, dst, e.upload(x, T, C), gs, kd))
					assertClose(t, e.read(want), e.download(dst), actRel, 1e-6, name("out %d", call))
					assertClose(t, e.read(cs), e.download(gs), 0, 0, name("state %d", call))
				}
			})
		}
	})
}

// DeltaNet against the CPU: dot products summed in a warp tree against the
// CPU's eight running sums, compounded over the batch through the state.
const deltaRel, deltaAbs = 1e-4, 1e-5

func TestDeltaNet(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, c := range []struct{ T, Hk, Hv, S int }{
			{1, 1, 1, 32}, {1, 2, 4, 128}, {3, 2, 2, 64}, {20, 1, 3, 96}, {1, 16, 32, 128}, {128, 1, 2, 32},
		} {
			t.Run(name("%+v", c), func(t *testing.T) {
				cols := (2*c.Hk + c.Hv) * c.S
				dtBias, A := random(r, c.Hv, 1), random(r, c.Hv, 1)
				for i := range A {
					A[i] = -A[i]*A[i] - 0.1 // decays below 1, as the model's -exp(A_log)
				}
				state := random(r, c.Hv*c.S*c.S, 0.5)
				cs, gs := e.tensor(state, c.Hv*c.S, c.S), e.upload(state, c.Hv*c.S, c.S)
				for call := range 2 {
					qkv, alpha, beta := random(r, c.T*cols, 2), random(r, c.T*c.Hv, 30), random(r, c.T*c.Hv, 4)
					alpha[0] = 25 // softplus above its threshold
					before := e.read(cs)
					want := e.cpu.NewTensor(c.T, c.Hv*c.S)
					require.NoError(t, e.cpu.DeltaNet(want, model.DeltaNet{
						QKV: e.tensor(qkv, c.T, cols), Alpha: e.tensor(alpha, c.T, c.Hv), Beta: e.tensor(beta, c.T, c.Hv),
						DTBias: weight(dtBias, 1, c.Hv), A: weight(A, 1, c.Hv), State: cs,
						KHeads: c.Hk, VHeads: c.Hv, HeadDim: c.S, Eps: 1e-6,
					}))
					dst := e.zeros(c.T, c.Hv*c.S)
					require.NoError(t, e.ks.DeltaNet(e.s, dst, DeltaNet{
						QKV: e.upload(qkv, c.T, cols), Alpha: e.upload(alpha, c.T, c.Hv), Beta: e.upload(beta, c.T, c.Hv),
						DTBias: e.upload(dtBias, 1, c.Hv).Buf, A: e.upload(A, 1, c.Hv).Buf, State: gs,
						KHeads: c.Hk, VHeads: c.Hv, HeadDim: c.S, Eps: 1e-6,
					}))
					assertClose(t, e.read(want), e.download(dst), deltaRel, deltaAbs, name("out %d", call))
					assertClose(t, e.read(cs), e.download(gs), deltaRel, deltaAbs, name("state %d", call))

					// The same step with the output norm fused, from the state
					// before it, against DeltaNet then GatedRMSNorm.
					z, w := random(r, c.T*c.Hv*c.S, 6), random(r, c.S, 2)
					ref := e.tensor(before, c.Hv*c.S, c.S)
					wantN := e.cpu.NewTensor(c.T, c.Hv*c.S)
					require.NoError(t, e.cpu.DeltaNet(wantN, model.DeltaNet{
						QKV: e.tensor(qkv, c.T, cols), Alpha: e.tensor(alpha, c.T, c.Hv), Beta: e.tensor(beta, c.T, c.Hv),
						DTBias: weight(dtBias, 1, c.Hv), A: weight(A, 1, c.Hv), State: ref,
						KHeads: c.Hk, VHeads: c.Hv, HeadDim: c.S, Eps: 1e-6,
					}))
					require.NoError(t, e.cpu.GatedRMSNorm(wantN, wantN, e.tensor(z, c.T, c.Hv*c.S), weight(w, 1, c.S), 1e-6))
					gn := e.upload(before, c.Hv*c.S, c.S)
					require.NoError(t, e.ks.DeltaNet(e.s, dst, DeltaNet{
						QKV: e.upload(qkv, c.T, cols), Alpha: e.upload(alpha, c.T, c.Hv), Beta: e.upload(beta, c.T, c.Hv),
						DTBias: e.upload(dtBias, 1, c.Hv).Buf, A: e.upload(A, 1, c.Hv).Buf, State: gn,
						KHeads: c.Hk, VHeads: c.Hv, HeadDim: c.S, Eps: 1e-6,
						Z: e.upload(z, c.T, c.Hv*c.S), NormWeight: e.upload(w, 1, c.S).Buf,
					}))
					assertClose(t, e.read(wantN), e.download(dst), deltaRel, deltaAbs, name("normed out %d", call))
					assertClose(t, e.read(ref), e.download(gn), deltaRel, deltaAbs, name("normed state %d", call))
				}
			})
		}
	})
}
