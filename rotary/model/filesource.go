package model

import (
	"context"
	"fmt"

	"github.com/rotary-moe/rotary/experts"
)

// FileSource is the simplest ExpertSource: it serves every expert in place
// from the model file's mapping, as if all were resident. It is the
// reference a rotating source must match bit for bit, and what tests and
// benchmarks of the forward pass alone use.
type FileSource struct {
	m *experts.Model
}

// NewFileSource serves m's experts; m must stay open while they are used.
func NewFileSource(m *experts.Model) *FileSource { return &FileSource{m: m} }

// Acquire implements ExpertSource. It never blocks.
func (s *FileSource) Acquire(_ context.Context, layer int, ids []int) (ExpertLease, error) {
	l, ok := s.m.Experts(layer)
	if !ok {
		return nil, fmt.Errorf("%w: layer %d has no routed experts", ErrExpertSource, layer)
	}
	mapping := s.m.File.Mapping()
	ws := make([]ExpertWeights, len(ids))
	for i, id := range ids {
		if id < 0 || id >= l.NumExperts {
			return nil, fmt.Errorf("%w: expert %d of layer %d, which has %d", ErrExpertSource, id, layer, l.NumExperts)
		}
		// Expert id's part lies id part sizes after expert 0's
		// (experts.ExpertLayer), in bounds the file's index checked.
		for _, p := range l.Parts {
			off := p.Offset + int64(id)*p.Size
			w := Weight{Data: mapping[off : off+p.Size : off+p.Size], Type: p.Type, Rows: int(p.Rows), Cols: int(p.Cols), Name: p.Tensor.Name}
			if err := ws[i].SetPart(p.Role, w); err != nil {
				return nil, err
			}
		}
	}
	return fileLease(ws), nil
}

// fileLease holds nothing: the mapping outlives it.
type fileLease []ExpertWeights

func (l fileLease) Weights() []ExpertWeights { return l }
func (l fileLease) Release()                 {}
