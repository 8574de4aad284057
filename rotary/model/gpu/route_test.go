package gpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

// route runs Route on the device and returns the ids and weights.
func (e *env) route(logits []float32, rows, E, k int, normalize, sigmoid bool) ([]int32, []float32) {
	e.t.Helper()
	r := Routing{IDs: e.zeros(rows, k).Buf, Weights: e.zeros(rows, k).Buf, K: k, Normalize: normalize, Sigmoid: sigmoid}
	require.NoError(e.t, e.ks.Route(e.s, r, e.upload(logits, rows, E)))
	return cudatest.Download[int32](e.t, e.c, r.IDs, rows*k), cudatest.Download[float32](e.t, e.c, r.Weights, rows*k)
}

func TestRoute(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(19, 20))
		for _, c := range []struct {
			rows, E, k int
			logits     string
		}{
			{1, 256, 8, "random"}, {7, 256, 10, "ties"}, {3, 128, 8, "ties"}, {64, 256, 8, "random"},
			{2, 60, 4, "extreme"}, {5, 8, 8, "ties"}, {1, 33, 1, "extreme"}, {4, 256, 8, "equal"}, {256, 256, 8, "ties"},
		} {
			for _, normalize := range []bool{false, true} {
				t.Run(name("%+v/norm=%v", c, normalize), func(t *testing.T) {
					logits := random(r, c.rows*c.E, 4)
					for i := range logits {
						switch c.logits {
						case "ties": // few distinct values: many equal probabilities
							logits[i] = float32(int(logits[i]*2)) / 2
						case "extreme":
							logits[i] *= 25
						case "equal":
							logits[i] = 1
						}
					}
					wantIDs, wantW := make([]int32, c.rows*c.k), make([]float32, c.rows*c.k)
					for row := range c.rows {
						l := slices.Clone(logits[row*c.E : (row+1)*c.E])
						cpu.Route(l, wantIDs[row*c.k:(row+1)*c.k], wantW[row*c.k:(row+1)*c.k], normalize)
					}
					ids, w := e.route(logits, c.rows, c.E, c.k, normalize, false)
					require.Equal(t, wantIDs, ids)
					assertClose(t, wantW, w, 0, 0, "weights")
				})
			}
		}
	})
}

func TestRouteSigmoid(t *testing.T) {
	forDevices(t, func(t *testing.T, e *env) {
		r := rand.New(rand.NewPCG(21, 22))
		const rows, E, k = 3, 256, 8
		logits := random(r, rows*E, 6)
		for i := range logits[:E] {
			logits[i] = float32(int(logits[i])) // ties
		}
		ids, w := e.route(logits, rows, E, k, false, true)
		for row := range rows {
			p := make([]float32, E)
			order := make([]int32, E)
			for i := range p {
				p[i], order[i] = cpu.Sigmoid(logits[row*E+i]), int32(i)
			}
			// Stable: equal probabilities keep the lower id first.
			slices.SortStableFunc(order, func(a, b int32) int {
				switch {
				case p[a] > p[b]:
					return -1
				case p[a] < p[b]:
					return 1
				}
				return 0
			})
			require.Equal(t, order[:k], ids[row*k:(row+1)*k], "row %d", row)
			for i, id := range order[:k] {
				require.Equal(t, p[id], w[row*k+i], "row %d rank %d", row, i)
			}
		}
	})
}
