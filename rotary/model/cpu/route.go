package cpu

// Route turns one token's router logits into its expert choice: softmax over
// all experts (written back into logits), the len(ids) most probable experts
// in descending order of probability (the lower id first on a tie), and
// their probabilities as weights, divided by their sum when normalize is set
// (the sum is accumulated in float64 and kept from falling below 2⁻¹⁴, as
// ggml's clamp does).
func Route(logits []float32, ids []int32, weights []float32, normalize bool) {
	Softmax(logits, logits)
	k := min(len(ids), len(logits))
	ids, weights = ids[:k], weights[:k]
	n := 0 // experts held so far, in descending order
	for e, p := range logits {
		if n == k && p <= weights[k-1] {
			continue
		}
		i := min(n, k-1)
		for i > 0 && weights[i-1] < p {
			ids[i], weights[i] = ids[i-1], weights[i-1]
			i--
		}
		ids[i], weights[i] = int32(e), p
		n = min(n+1, k)
	}
	if !normalize {
		return
	}
	var sum float64
	for _, w := range weights {
		sum += float64(w)
	}
	s := max(float32(sum), 6.103515625e-5)
	for i := range weights {
		weights[i] /= s
	}
}
