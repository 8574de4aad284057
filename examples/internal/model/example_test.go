package model_test

import (
	"context"
	"fmt"
	"log"
	"slices"

	"github.com/rotary-moe/rotary/examples/internal/cpu"
	"github.com/rotary-moe/rotary/examples/internal/model"
	"github.com/rotary-moe/rotary/experts"
)

// Greedy generation with the CPU backend, the experts served from the
// mapped file by the ExpertSource below.
func Example() {
	em, err := experts.OpenModel("../../../experts/testdata/qwen35moe-tiny-f32.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer em.Close()
	backend := cpu.New(0)
	defer backend.Close()
	m, err := model.New(em, backend, &fileSource{m: em})
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	s := m.NewState(64)
	prompt := []int32{757, 84, 494, 198, 54, 71, 267, 334} // "<|im_start|>user\nWhat is"
	logits, err := m.Forward(ctx, s, prompt, model.LastLogits)
	if err != nil {
		log.Fatal(err)
	}
	var generated []int32
	for range 6 {
		next := int32(argmax(logits))
		generated = append(generated, next)
		if logits, err = m.Forward(ctx, s, []int32{next}, model.LastLogits); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("generated:", generated, "position:", s.Pos())
	// Output:
	// generated: [216 483 483 483 483 483] position: 14
}

func argmax(x []float32) int {
	return slices.Index(x, slices.Max(x))
}

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
			w := model.Weight{Data: mapping[p.Offset : p.Offset+p.Size], Type: p.Type, Rows: int(p.Rows), Cols: int(p.Cols),
				Name: fmt.Sprintf("%s[%d]", p.Tensor.Name, id)}
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
