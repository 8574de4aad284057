package prefetch

import (
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

// A Gate applies a layer's router to a hidden state. On the CPU it is a
// GEMV (MatrixGate); a GPU backend implements it with its router kernel on
// a side stream, so that the prediction overlaps the current layer's
// experts.
type Gate interface {
	// Logits writes layer's router logits for hidden state x, one per
	// expert, to logits.
	Logits(layer int, x []float32, logits []float32) error
}

// GateAhead predicts layer l+1's experts by applying its router to layer l's
// hidden state: the residual stream changes little from one layer to the
// next, so the next router's choice on it is close to its choice on its own
// input. The scores are the softmax of the logits.
type GateAhead struct{ gate Gate }

// NewGateAhead returns a GateAhead over g.
func NewGateAhead(g Gate) (*GateAhead, error) {
	if g == nil {
		return nil, fmt.Errorf("%w: nil Gate", ErrInvalid)
	}
	return &GateAhead{gate: g}, nil
}

// Predict implements Predictor. It needs the hidden state (ErrNoHidden).
func (g *GateAhead) Predict(h *History, layer, next int, scores []float32) error {
	x := h.Hidden()
	if x == nil {
		return fmt.Errorf("%w: GateAhead predicting layer %d", ErrNoHidden, next)
	}
	if err := g.gate.Logits(next, x, scores); err != nil {
		return err
	}
	softmax(scores)
	return nil
}

func softmax(x []float32) {
	top := float32(math.Inf(-1))
	for _, v := range x {
		top = max(top, v)
	}
	var sum float32
	for i, v := range x {
		x[i] = float32(math.Exp(float64(v - top)))
		sum += x[i]
	}
	for i := range x {
		x[i] /= sum
	}
}

// MatrixGate is a Gate over routers held as float32 matrices on the host:
// a GEMV per call, experts × dim multiply-adds.
type MatrixGate struct {
	dim, experts int
	w            [][]float32 // [layer]: experts rows of dim, nil if none
}

// NewMatrixGate returns a gate over routers, by model layer: each nil (a
// layer without experts) or experts rows of dim floats, row-major (GGUF's
// ffn_gate_inp, dequantized).
func NewMatrixGate(dim, experts int, routers [][]float32) (*MatrixGate, error) {
	if dim <= 0 || experts <= 0 {
		return nil, fmt.Errorf("%w: router of %d experts × %d", ErrInvalid, experts, dim)
	}
	for l, w := range routers {
		if w != nil && len(w) != dim*experts {
			return nil, fmt.Errorf("%w: layer %d's router has %d weights, want %d × %d", ErrInvalid, l, len(w), experts, dim)
		}
	}
	return &MatrixGate{dim: dim, experts: experts, w: routers}, nil
}

// Logits implements Gate.
func (g *MatrixGate) Logits(layer int, x []float32, logits []float32) error {
	if layer < 0 || layer >= len(g.w) || g.w[layer] == nil {
		return fmt.Errorf("%w: layer %d has no router", ErrLayer, layer)
	}
	if len(x) != g.dim || len(logits) != g.experts {
		return fmt.Errorf("%w: hidden state of %d and %d logits for a router of %d experts × %d", ErrInvalid, len(x), len(logits), g.experts, g.dim)
	}
	w := g.w[layer]
	for e := range logits {
		logits[e] = cpu.Dot(w[e*g.dim:(e+1)*g.dim], x)
	}
	return nil
}
