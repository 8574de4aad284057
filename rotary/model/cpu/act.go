package cpu

import "math"

// expf is exp in float32 rounded from float64, as close to C's expf as
// float32 can tell.
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// Sigmoid returns 1/(1+e^-x).
func Sigmoid(x float32) float32 { return 1 / (1 + expf(-x)) }

// SiLU returns x·sigmoid(x), computed as ggml does: x/(1+e^-x).
func SiLU(x float32) float32 { return x / (1 + expf(-x)) }

// Softplus returns log(1+e^x), and x itself above 20 where the two agree in
// float32 (ggml's threshold).
func Softplus(x float32) float32 {
	if x > 20 {
		return x
	}
	return float32(math.Log(float64(1 + expf(x))))
}

// SwiGLU writes SiLU(gate[i])·up[i] into dst.
func SwiGLU(dst, gate, up []float32) {
	up = up[:len(gate)]
	dst = dst[:len(gate)]
	for i, g := range gate {
		dst[i] = SiLU(g) * up[i]
	}
}

// Softmax writes the softmax of x into dst (which may be x): shift by the
// maximum, exponentiate, sum in float64, scale by the reciprocal of the sum.
func Softmax(dst, x []float32) {
	dst = dst[:len(x)]
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	var sum float64
	for i, v := range x {
		e := expf(v - m)
		dst[i] = e
		sum += float64(e)
	}
	scale := float32(1 / sum)
	for i := range dst {
		dst[i] *= scale
	}
}
