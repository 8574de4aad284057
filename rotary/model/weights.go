package model

import (
	"context"
	"fmt"

	"github.com/rotary-moe/rotary/experts"
)

// Weight is a view of a stored weight matrix: Rows rows of Cols values of
// type Type, row after row (ggml ne = [Cols, Rows]). Data is not copied: it
// may be the mapped model file, a pinned buffer or a device allocation's
// host mirror, and must stay valid while the weight is in use.
type Weight struct {
	Data       []byte
	Type       experts.Type
	Rows, Cols int
	// Name identifies the weight in errors (the GGUF tensor name, for
	// example); it may be empty. A routed expert's matrices need none:
	// errors about them name the layer, the expert and the part, which the
	// model and the backend know, and formatting a name for every part of
	// every expert in every step would cost more than the errors are worth.
	Name string
}

// ExpertWeights are one routed expert's matrices. Gate and Up map the
// hidden state (Cols = embedding size) to the expert's FFN size, Down maps
// back. A file with a merged gate_up tensor yields two views of it.
type ExpertWeights struct {
	Gate, Up, Down Weight
}

// SetPart places w, a view of the expert's part of the given role, in e. A
// merged gate_up part holds the gate's rows, then the up's: e.Gate and e.Up
// view its halves.
func (e *ExpertWeights) SetPart(role experts.PartRole, w Weight) error {
	switch role {
	case experts.PartGate:
		e.Gate = w
	case experts.PartUp:
		e.Up = w
	case experts.PartDown:
		e.Down = w
	case experts.PartGateUp:
		half := len(w.Data) / 2
		w.Rows /= 2
		e.Gate, e.Up = w, w
		e.Gate.Data, e.Up.Data = w.Data[:half:half], w.Data[half:]
	default:
		return fmt.Errorf("%w: expert part %v", ErrExpertSource, role)
	}
	return nil
}

// ExpertSource supplies routed experts' weights. The model asks once per
// MoE layer and forward step, for the union of the experts the tokens of
// the step were routed to.
type ExpertSource interface {
	// Acquire makes experts ids (distinct, ascending) of layer available
	// and returns their weights, in the order of ids. It may block (e.g. on
	// a copy) until ctx is done.
	Acquire(ctx context.Context, layer int, ids []int) (ExpertLease, error)
}

// ExpertLease holds acquired experts until Release.
type ExpertLease interface {
	// Weights are the experts' weights in the order they were asked for;
	// valid until Release.
	Weights() []ExpertWeights
	// Release tells the source the model no longer reads the weights.
	Release()
}
