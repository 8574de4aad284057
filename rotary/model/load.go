package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
)

// layerWeights are the resident (non-expert) weights of one layer. Which
// fields are set depends on the layer's kind.
type layerWeights struct {
	attnNorm Weight
	// ffnNorm normalises the FFN input: ffn_norm (qwen3moe) or
	// post_attention_norm (qwen35moe).
	ffnNorm Weight

	// Full attention.
	q, k, v, o   Weight
	qNorm, kNorm Weight

	// Gated DeltaNet.
	qkv, z, alpha, beta, ssmOut Weight
	conv, dtBias, a, ssmNorm    Weight

	// MoE.
	router  Weight
	shared  bool
	shGate  Weight
	shUp    Weight
	shDown  Weight
	shInput Weight // one row: the shared expert's sigmoid gate
}

// loader reads weights from the file, keeping the first error.
type loader struct {
	f   *experts.File
	err error
}

func (l *loader) fail(format string, args ...any) {
	if l.err == nil {
		l.err = fmt.Errorf("%w: %s: "+format, append([]any{ErrBadWeights, l.f.Path()}, args...)...)
	}
}

// find returns tensor name if it exists, checking its shape: ggml ne =
// [cols, rows] (a vector may be stored as [cols] when rows is 1).
func (l *loader) find(name string, rows, cols int) (Weight, bool) {
	t, ok := l.f.Tensor(name)
	if !ok {
		return Weight{}, false
	}
	d := t.Dims
	shapeOK := len(d) >= 1 && d[0] == uint64(cols) &&
		((len(d) == 1 && rows == 1) || (len(d) == 2 && d[1] == uint64(rows)))
	if !shapeOK {
		l.fail("%s has shape %v, want [%d %d]", name, d, cols, rows)
		return Weight{}, false
	}
	data, err := l.f.TensorData(t)
	if err != nil {
		l.fail("%s: %v", name, err)
		return Weight{}, false
	}
	rb, err := t.Type.RowBytes(uint64(cols))
	if err != nil || uint64(len(data)) != rb*uint64(rows) {
		l.fail("%s: %d bytes of %v do not hold %d rows of %d", name, len(data), t.Type, rows, cols)
		return Weight{}, false
	}
	return Weight{Data: data, Type: t.Type, Rows: rows, Cols: cols, Name: name}, true
}

// matrix returns a required tensor.
func (l *loader) matrix(name string, rows, cols int) Weight {
	w, ok := l.find(name, rows, cols)
	if !ok && l.err == nil {
		l.fail("missing tensor %s", name)
	}
	return w
}

// vector returns a required small tensor (norm weights, biases, conv
// taps) in F32, converting it once if the file stores it otherwise: the
// kernels read these as plain floats.
func (l *loader) vector(name string, rows, cols int) Weight {
	w := l.matrix(name, rows, cols)
	if l.err != nil || w.Type == experts.TypeF32 {
		return w
	}
	vals := make([]float32, rows*cols)
	if err := quant.Dequantize(w.Type, w.Data, vals); err != nil {
		l.fail("%s: %v", name, err)
		return w
	}
	data := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return Weight{Data: data, Type: experts.TypeF32, Rows: rows, Cols: cols, Name: name}
}

// rowsOf splits w into consecutive row blocks of the given heights (a
// merged projection such as attn_qkv); rows are contiguous, so the parts
// are views.
func rowsOf(w Weight, heights ...int) []Weight {
	rb := len(w.Data) / w.Rows
	parts := make([]Weight, len(heights))
	r := 0
	for i, h := range heights {
		parts[i] = Weight{Data: w.Data[r*rb : (r+h)*rb], Type: w.Type, Rows: h, Cols: w.Cols, Name: fmt.Sprintf("%s[rows %d:%d]", w.Name, r, r+h)}
		r += h
	}
	return parts
}

// loadLayer reads layer il's resident weights.
func (m *Net) loadLayer(l *loader, il int) layerWeights {
	c := &m.cfg
	p := func(s string) string { return fmt.Sprintf("blk.%d.%s", il, s) }
	var w layerWeights
	D := c.embed
	w.attnNorm = l.vector(p("attn_norm.weight"), 1, D)
	if c.arch == experts.ArchQwen35MoE {
		w.ffnNorm = l.vector(p("post_attention_norm.weight"), 1, D)
	} else {
		w.ffnNorm = l.vector(p("ffn_norm.weight"), 1, D)
	}

	if c.isAttention(il) {
		H, KV, Dh := c.heads, c.kvHeads, c.headDim
		qRows := H * Dh
		if c.gatedAttention {
			qRows *= 2 // query and output gate, interleaved per head
		}
		if qkv, ok := l.find(p("attn_qkv.weight"), qRows+2*KV*Dh, D); ok {
			parts := rowsOf(qkv, qRows, KV*Dh, KV*Dh)
			w.q, w.k, w.v = parts[0], parts[1], parts[2]
		} else {
			w.q = l.matrix(p("attn_q.weight"), qRows, D)
			w.k = l.matrix(p("attn_k.weight"), KV*Dh, D)
			w.v = l.matrix(p("attn_v.weight"), KV*Dh, D)
		}
		w.o = l.matrix(p("attn_output.weight"), D, H*Dh)
		w.qNorm = l.vector(p("attn_q_norm.weight"), 1, Dh)
		w.kNorm = l.vector(p("attn_k_norm.weight"), 1, Dh)
	} else {
		S, Hk, Hv := c.ssmHeadDim, c.ssmKHeads, c.ssmVHeads
		channels := 2*Hk*S + Hv*S
		w.qkv = l.matrix(p("attn_qkv.weight"), channels, D)
		w.z = l.matrix(p("attn_gate.weight"), Hv*S, D)
		w.beta = l.matrix(p("ssm_beta.weight"), Hv, D)
		w.alpha = l.matrix(p("ssm_alpha.weight"), Hv, D)
		w.conv = l.vector(p("ssm_conv1d.weight"), channels, c.convKernel)
		w.dtBias = l.vector(p("ssm_dt.bias"), 1, Hv)
		w.a = l.vector(p("ssm_a"), 1, Hv)
		w.ssmNorm = l.vector(p("ssm_norm.weight"), 1, S)
		w.ssmOut = l.matrix(p("ssm_out.weight"), D, Hv*S)
	}

	w.router = l.matrix(p("ffn_gate_inp.weight"), c.experts, D)
	if gate, ok := l.find(p("ffn_gate_shexp.weight"), c.sharedFFN, D); ok && c.sharedFFN > 0 {
		w.shared = true
		w.shGate = gate
		w.shUp = l.matrix(p("ffn_up_shexp.weight"), c.sharedFFN, D)
		w.shDown = l.matrix(p("ffn_down_shexp.weight"), D, c.sharedFFN)
		w.shInput = l.matrix(p("ffn_gate_inp_shexp.weight"), 1, D)
	}
	return w
}
