package cpu

import "math"

// sumSquares accumulates x² in float64 from float32 products, as ggml's
// norms do.
func sumSquares(x []float32) float64 {
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	return sum
}

// RMSNorm writes x/rms(x)·w into dst (which may be x); len(w) == len(x).
// rms(x) = sqrt(mean(x²)+eps) with the mean rounded to float32 before eps
// is added, and the two products rounded separately, as ggml's rms_norm
// followed by mul.
func RMSNorm(dst, x, w []float32, eps float32) {
	dst = dst[:len(x)]
	w = w[:len(x)]
	mean := float32(sumSquares(x) / float64(len(x)))
	scale := 1 / sqrtf(mean+eps)
	for i, v := range x {
		dst[i] = v * scale * w[i]
	}
}

// L2Normalize scales x in place to unit Euclidean length, dividing by
// max(‖x‖, eps).
func L2Normalize(x []float32, eps float32) {
	scale := 1 / max(sqrtf(float32(sumSquares(x))), eps)
	for i := range x {
		x[i] *= scale
	}
}

func sqrtf(x float32) float32 { return float32(math.Sqrt(float64(x))) }
