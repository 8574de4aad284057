package model

import (
	"context"
	"fmt"
	"slices"

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

// ExpertSource supplies routed experts' weights to a backend that computes
// on host memory (cpu.WithExperts). It is asked once per MoE layer and
// forward step, for the union of the experts the tokens of the step were
// routed to.
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

// RoutedExperts lists the distinct experts of a routing's ids, ascending:
// what a backend acquires from its ExpertSource for a step.
func RoutedExperts(ids []int32) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		out = append(out, int(id))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckExperts verifies that an expert source returned, for experts ids of
// layer, what the MoE of a model with the given embedding size relies on:
// one weight set per id, Gate and Up F×embed and Down embed×F with the same
// F > 0 for every expert, each Weight's Data holding exactly its rows. A
// backend checks once per layer and step, so the kernels need not.
func CheckExperts(layer, embed int, ids []int, ew []ExpertWeights) error {
	if len(ew) != len(ids) {
		return fmt.Errorf("%w: %d weights for %d experts of layer %d", ErrExpertSource, len(ew), len(ids), layer)
	}
	for i, e := range ew {
		ffn := e.Gate.Rows
		ok := ffn == ew[0].Gate.Rows && e.Gate.Cols == embed && e.Up.Cols == embed && e.Up.Rows == ffn &&
			e.Down.Rows == embed && e.Down.Cols == ffn && ffn > 0 &&
			sizeOK(e.Gate) && sizeOK(e.Up) && sizeOK(e.Down)
		if !ok {
			return fmt.Errorf("%w: expert %d of layer %d has gate %dx%d, up %dx%d, down %dx%d for embedding %d",
				ErrExpertSource, ids[i], layer, e.Gate.Rows, e.Gate.Cols, e.Up.Rows, e.Up.Cols, e.Down.Rows, e.Down.Cols, embed)
		}
	}
	return nil
}

// sizeOK reports whether w's data holds exactly its rows.
func sizeOK(w Weight) bool {
	rb, err := w.Type.RowBytes(uint64(w.Cols))
	return err == nil && uint64(len(w.Data)) == rb*uint64(w.Rows)
}
