package cpu

// Dot returns Σ a[i]·b[i] over len(a) values, accumulated in float32 in
// eight interleaved partial sums (ggml's F32 dot keeps several SIMD
// accumulators too; the exact grouping only moves the last bits).
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		x, y := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
		s4 += x[4] * y[4]
		s5 += x[5] * y[5]
		s6 += x[6] * y[6]
		s7 += x[7] * y[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))
}

// AddScaled does y[i] += a·x[i] over len(x) values.
func AddScaled(y, x []float32, a float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += v * a
	}
}

// Add writes a[i]+b[i] into dst.
func Add(dst, a, b []float32) {
	b = b[:len(a)]
	dst = dst[:len(a)]
	for i, v := range a {
		dst[i] = v + b[i]
	}
}
