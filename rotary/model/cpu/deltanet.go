package cpu

// ConvSiLU runs the depthwise causal convolution of Gated DeltaNet over
// channels [c0, c1) and applies SiLU. x holds T rows of C channels, state
// the K-1 inputs before them (oldest row first), kernel C rows of K taps
// (ggml ne = [K, C]). Output t of channel c is Σₖ kernel[c][k]·in[t-K+1+k]
// summed from k = 0, as ggml's ssm_conv. Afterwards state holds the last
// K-1 inputs, ready for the next call.
func ConvSiLU(dst, x, state, kernel []float32, T, C, K, c0, c1 int) {
	// One channel's inputs, oldest first: the K-1 from state, then the T
	// of x; output t reads in[t : t+K]. A decode step (T = 1, K = 4) needs
	// 16 bytes, which the compiler keeps on the stack.
	in := make([]float32, K-1+T)
	for c := c0; c < c1; c++ {
		w := kernel[c*K : (c+1)*K]
		for r := range K - 1 {
			in[r] = state[r*C+c]
		}
		for t := range T {
			in[K-1+t] = x[t*C+c]
		}
		for t := range T {
			var sum float32
			for k, wk := range w {
				sum += in[t+k] * wk
			}
			dst[t*C+c] = SiLU(sum)
		}
		for r := range K - 1 {
			state[r*C+c] = in[T+r]
		}
	}
}

// DeltaRule advances one value head of Gated DeltaNet by one token and
// writes its output. state is the S×S matrix M stored by columns
// (state[j·S+i] = M[i][j]); q and k are L2-normalised, decay = e^g.
//
//	M ← decay·M;  δⱼ = β·(vⱼ − Σᵢ M[i][j]·kᵢ);  M[i][j] += kᵢ·δⱼ;  outⱼ = scale·Σᵢ M[i][j]·qᵢ
//
// Each column of M only meets its own δⱼ, so the four steps run column by
// column in one pass over the state, with the same arithmetic as ggml's
// step-by-step loops. This is the recurrent form ggml's CPU backend runs for
// prompts and single tokens alike.
func DeltaRule(out, state, q, k, v []float32, decay, beta, scale float32) {
	S := len(v)
	q, k, out = q[:S], k[:S], out[:S]
	for j := range S {
		col := state[j*S : (j+1)*S]
		for i := range col {
			col[i] *= decay
		}
		delta := (v[j] - Dot(col, k)) * beta
		AddScaled(col, k, delta)
		out[j] = Dot(col, q) * scale
	}
}
