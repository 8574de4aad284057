package cpu

import "math"

// Rope is NEOX-style rotary position embedding over the first Dims values of
// a head: value i and value i+Dims/2 form a pair rotated by pos·Base^(-2i/Dims).
// Values from Dims on are left alone (partial rotary).
type Rope struct {
	Dims int
	Base float32
}

// Angles fills cos and sin (Dims/2 values each) for position pos. Like ggml,
// the frequency of pair i is reached by multiplying i times in float32 by
// Base^(-2/Dims), not by a fresh power: the rounding is part of the result.
func (r Rope) Angles(pos int, cos, sin []float32) {
	half := r.Dims / 2
	cos, sin = cos[:half], sin[:half]
	step := float32(math.Pow(float64(r.Base), float64(float32(-2)/float32(r.Dims))))
	theta := float32(pos)
	for i := range half {
		cos[i] = float32(math.Cos(float64(theta)))
		sin[i] = float32(math.Sin(float64(theta)))
		theta *= step
	}
}

// Rotate applies the rotation given by Angles to one head x in place.
func (r Rope) Rotate(x, cos, sin []float32) {
	half := r.Dims / 2
	lo, hi := x[:half], x[half:r.Dims]
	cos, sin = cos[:half], sin[:half]
	for i := range half {
		x0, x1 := lo[i], hi[i]
		lo[i] = x0*cos[i] - x1*sin[i]
		hi[i] = x0*sin[i] + x1*cos[i]
	}
}
