package synth

import (
	"fmt"
	"os"

	"github.com/rotary-moe/rotary/experts"
)

// Shape describes a MoE model by what the placement of its experts
// depends on: its layers, its routed experts and their sizes. ShapeWriter
// declares such a model with all-zero weights, and OpenShape opens it
// without writing them, for planning and simulation, e.g. of the model a
// routing trace was recorded on.
type Shape struct {
	Name string
	// Arch is a generic MoE architecture name such as "deepseek2", "llama"
	// or "granitemoe" (qwen3moe and qwen35moe need more metadata: use
	// NewWriter's presets).
	Arch   string
	Layers int
	// MoELayers are the layers with routed experts; nil means all.
	MoELayers []int
	Experts   int
	TopK      int
	// Embedding and ExpertFFN are the expert matrices' dimensions: gate and
	// up map Embedding to ExpertFFN, down back.
	Embedding, ExpertFFN int
	// NonExpertBytes is the size of everything else (embeddings, attention,
	// ...), held as one tensor.
	NonExpertBytes int64
}

// ShapeWriter returns a Writer of a model of shape s whose tensors hold
// zeros: per MoE layer a router (F32) and the stacked gate, up (Q4_K) and
// down (Q6_K) experts, as in Q4_K_M files where the dimensions allow (else
// Q8_0, else F16), and one F16 tensor of at least NonExpertBytes. Of the
// options, WithAlignment and WithProgress apply.
func ShapeWriter(s Shape, opts ...experts.WriteOption) (*experts.Writer, error) {
	if s.Arch == "" || s.Layers <= 0 || s.Experts <= 0 || s.TopK <= 0 || s.TopK > s.Experts || s.Embedding <= 0 || s.ExpertFFN <= 0 || s.NonExpertBytes < 0 {
		return nil, fmt.Errorf("%w: model shape %+v", experts.ErrWriterInput, s)
	}
	w, err := experts.NewWriter(opts...)
	if err != nil {
		return nil, err
	}
	a := s.Arch + "."
	for _, kv := range []struct {
		key   string
		value any
	}{
		{"general.architecture", s.Arch},
		{"general.name", s.Name},
		{a + "block_count", uint32(s.Layers)},
		{a + "context_length", uint32(4096)},
		{a + "embedding_length", uint32(s.Embedding)},
		{a + "attention.head_count", uint32(1)},
		{a + "attention.layer_norm_rms_epsilon", float32(1e-6)},
		{a + "expert_count", uint32(s.Experts)},
		{a + "expert_used_count", uint32(s.TopK)},
		{a + "expert_feed_forward_length", uint32(s.ExpertFFN)},
	} {
		if err := w.SetKV(kv.key, kv.value); err != nil {
			return nil, err
		}
	}
	if s.NonExpertBytes > 0 {
		rows := (s.NonExpertBytes + int64(s.Embedding)*2 - 1) / (int64(s.Embedding) * 2)
		if err := w.AddZeros("token_embd.weight", experts.TypeF16, []uint64{uint64(s.Embedding), uint64(rows)}); err != nil {
			return nil, err
		}
	}
	layers := s.MoELayers
	if layers == nil {
		for l := range s.Layers {
			layers = append(layers, l)
		}
	}
	embd, ffn, e := uint64(s.Embedding), uint64(s.ExpertFFN), uint64(s.Experts)
	up, down := shapeQuant(s.Embedding, experts.TypeQ4_K), shapeQuant(s.ExpertFFN, experts.TypeQ6_K)
	for _, l := range layers {
		if l < 0 || l >= s.Layers {
			return nil, fmt.Errorf("%w: MoE layer %d of %d", experts.ErrWriterInput, l, s.Layers)
		}
		for _, t := range []struct {
			name string
			typ  experts.Type
			dims []uint64
		}{
			{"ffn_gate_inp", experts.TypeF32, []uint64{embd, e}},
			{"ffn_gate_exps", up, []uint64{embd, ffn, e}},
			{"ffn_up_exps", up, []uint64{embd, ffn, e}},
			{"ffn_down_exps", down, []uint64{ffn, embd, e}},
		} {
			if err := w.AddZeros(fmt.Sprintf("blk.%d.%s.weight", l, t.name), t.typ, t.dims); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// shapeQuant picks the type llama.cpp's Q4_K_M mix would give rows of n
// elements: the k-quant where n is a multiple of its 256-element blocks, else
// its fallback Q8_0 (blocks of 32), else F16.
func shapeQuant(n int, k experts.Type) experts.Type {
	switch {
	case n%k.BlockSize() == 0:
		return k
	case n%experts.TypeQ8_0.BlockSize() == 0:
		return experts.TypeQ8_0
	}
	return experts.TypeF16
}

// OpenShape opens the model w would write without writing its tensor data:
// a sparse file in dir (os.TempDir() if empty) holds w's header and reads as
// zeros after it; it is removed once mapped (Close unmaps it). That is the
// model ShapeWriter declares, or any Writer's model with its weights zeroed,
// so a 20 GB model opens in the time its header takes to write: enough for
// planning, and for simulation on a backend that moves no data.
func OpenShape(w *experts.Writer, dir string) (*experts.Model, error) {
	f, err := os.CreateTemp(dir, "experts-shape-*.gguf")
	if err != nil {
		return nil, fmt.Errorf("synth: creating a sparse model file: %w", err)
	}
	defer os.Remove(f.Name()) // the mapping outlives the name
	err = w.WriteHeader(f)
	if err == nil {
		err = f.Truncate(w.Size())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("synth: writing a sparse model file: %w", err)
	}
	return experts.OpenModel(f.Name())
}
