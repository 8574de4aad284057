package cpu

import "math"

// KV is one layer's key/value cache: row p holds the keys (values) of all
// KV heads at position p, head h at [h·HeadDim, (h+1)·HeadDim).
type KV struct {
	Keys, Values []float32
	KVHeads      int
	HeadDim      int
}

// rowLen is the length of one cache row.
func (c *KV) rowLen() int { return c.KVHeads * c.HeadDim }

// Store writes the keys and values of one position.
func (c *KV) Store(pos int, k, v []float32) {
	n := c.rowLen()
	copy(c.Keys[pos*n:(pos+1)*n], k[:n])
	copy(c.Values[pos*n:(pos+1)*n], v[:n])
}

// Attend computes one query head's attention over cache positions [0, n):
// softmax(scale·q·kⱼ) weighting vⱼ, for KV head kvHead. scores needs n
// values of scratch. The arithmetic follows ggml's non-flash path: scale
// after the dot product, softmax with a float64 sum, then the weighted sum
// of values accumulated position by position.
func (c *KV) Attend(out, q []float32, kvHead, n int, scale float32, scores []float32) {
	stride, off, d := c.rowLen(), kvHead*c.HeadDim, c.HeadDim
	scores = scores[:n]
	q = q[:d]
	m := float32(math.Inf(-1))
	for j := range scores {
		s := Dot(c.Keys[j*stride+off:j*stride+off+d], q) * scale
		scores[j] = s
		m = max(m, s)
	}
	var sum float64
	for j, s := range scores {
		e := expf(s - m)
		scores[j] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	out = out[:d]
	clear(out)
	for j, e := range scores {
		AddScaled(out, c.Values[j*stride+off:j*stride+off+d], e*inv)
	}
}
