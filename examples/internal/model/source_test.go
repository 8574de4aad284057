package model_test

import (
	"context"
	"fmt"

	"github.com/rotary-moe/rotary/examples/internal/model"
	"github.com/rotary-moe/rotary/experts"
)

// fileSource serves experts straight from the mapped model file: the
// simplest ExpertSource, standing in for rotary's tiers in tests.
type fileSource struct {
	m        *experts.Model
	acquired int // leases handed out and not yet released
	calls    int
}

func (s *fileSource) Acquire(_ context.Context, layer int, ids []int) (model.ExpertLease, error) {
	s.calls++
	l, ok := s.m.Experts(layer)
	if !ok {
		return nil, fmt.Errorf("layer %d has no experts", layer)
	}
	mapping := s.m.File.Mapping()
	ws := make([]model.ExpertWeights, len(ids))
	for i, id := range ids {
		e, err := l.Expert(id)
		if err != nil {
			return nil, err
		}
		for _, p := range e.Parts {
			w := model.Weight{Data: mapping[p.Offset : p.Offset+p.Size], Type: p.Type, Rows: int(p.Rows), Cols: int(p.Cols)}
			switch p.Role {
			case experts.PartGate:
				ws[i].Gate = w
			case experts.PartUp:
				ws[i].Up = w
			case experts.PartDown:
				ws[i].Down = w
			case experts.PartGateUp: // gate rows, then up rows
				half := len(w.Data) / 2
				w.Rows /= 2
				ws[i].Gate, ws[i].Up = w, w
				ws[i].Gate.Data, ws[i].Up.Data = w.Data[:half], w.Data[half:]
			}
		}
	}
	s.acquired++
	return &fileLease{s: s, weights: ws}, nil
}

type fileLease struct {
	s       *fileSource
	weights []model.ExpertWeights
}

func (l *fileLease) Weights() []model.ExpertWeights { return l.weights }
func (l *fileLease) Release()                       { l.s.acquired-- }
