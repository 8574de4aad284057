package prefetch

import (
	"fmt"
	"slices"
)

// History is the routing a predictor reads: for each routed layer, the
// experts the current token selected there (once it has routed) and those
// of the previous token, and the hidden state given with the last layer
// observed. Observe fills it as a decoder walks the layers; a layer at or
// before the last one observed starts a new token. It is not safe for
// concurrent use.
type History struct {
	layers []int // the routed layers, in order
	pos    []int // [model layer]: index in layers, -1 if not routed

	cur, prev     [][]int // [index]: the token's selection, the previous token's
	curOK, prevOK []bool
	last          int // index of the last layer observed, -1 before any
	hidden        []float32
}

// NewHistory returns an empty history of a model whose routed layers are
// layers (model layer numbers, ascending).
func NewHistory(layers []int) (*History, error) {
	for i, l := range layers {
		if l < 0 || i > 0 && l <= layers[i-1] {
			return nil, fmt.Errorf("%w: routed layers %v are not ascending and non-negative", ErrInvalid, layers)
		}
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("%w: no routed layers", ErrInvalid)
	}
	n := len(layers)
	h := &History{layers: slices.Clone(layers), pos: make([]int, layers[n-1]+1), cur: make([][]int, n), prev: make([][]int, n),
		curOK: make([]bool, n), prevOK: make([]bool, n), last: -1}
	for i := range h.pos {
		h.pos[i] = -1
	}
	for i, l := range layers {
		h.pos[l] = i
	}
	return h, nil
}

// Layers returns the routed layers.
func (h *History) Layers() []int { return h.layers }

// index returns layer's index among the routed layers, -1 if it is not one.
func (h *History) index(layer int) int {
	if layer < 0 || layer >= len(h.pos) {
		return -1
	}
	return h.pos[layer]
}

// Next returns the routed layer after layer, or -1.
func (h *History) Next(layer int) int { return h.step(layer, 1) }

// Before returns the d-th routed layer before layer (d >= 1), or -1.
func (h *History) Before(layer, d int) int { return h.step(layer, -d) }

func (h *History) step(layer, d int) int {
	i := h.index(layer)
	if i < 0 || i+d < 0 || i+d >= len(h.layers) {
		return -1
	}
	return h.layers[i+d]
}

// Observe records that the current token selected ids at layer, with hidden
// (the layer's input hidden state, nil if unknown; kept, not copied, until
// the next Observe). A layer at or before the last one observed starts a new
// token: the current selections become the previous token's.
func (h *History) Observe(layer int, ids []int, hidden []float32) error {
	i := h.index(layer)
	if i < 0 {
		return fmt.Errorf("%w: layer %d", ErrLayer, layer)
	}
	if i <= h.last {
		h.cur, h.prev = h.prev, h.cur
		h.curOK, h.prevOK = h.prevOK, h.curOK
		clear(h.curOK)
	}
	h.cur[i] = append(h.cur[i][:0], ids...)
	h.curOK[i] = true
	h.last = i
	h.hidden = hidden
	return nil
}

// Current returns the current token's experts at layer, nil if it has not
// routed there yet.
func (h *History) Current(layer int) []int {
	if i := h.index(layer); i >= 0 && h.curOK[i] {
		return h.cur[i]
	}
	return nil
}

// Previous returns the previous token's experts at layer, nil if unknown.
func (h *History) Previous(layer int) []int {
	if i := h.index(layer); i >= 0 && h.prevOK[i] {
		return h.prev[i]
	}
	return nil
}

// Hidden returns the hidden state given with the last Observe, or nil.
func (h *History) Hidden() []float32 { return h.hidden }
