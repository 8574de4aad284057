package rotary

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
)

// ModelShape describes a MoE model by what residency depends on: its layers,
// experts and their sizes. Writer turns it into a GGUF writer, and OpenShape
// opens that without writing the weights, for planning and simulation, e.g.
// of a model a routing trace was recorded on.
type ModelShape struct {
	Name string
	// Arch is a generic MoE architecture name such as "deepseek2", "llama"
	// or "granitemoe" (qwen3moe and qwen35moe need more metadata: use
	// experts.SyntheticWriter's presets).
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

// ShapeOf returns the shape of a trace's model: its layers that route
// tokens, with experts of the given dimensions.
func ShapeOf(t *profile.Trace, embedding, expertFFN int, nonExpert int64) ModelShape {
	id := t.Model()
	s := ModelShape{Name: id.Name, Arch: id.Arch, Layers: id.Layers, Experts: id.Experts, TopK: id.ExpertsUsed,
		Embedding: embedding, ExpertFFN: expertFFN, NonExpertBytes: nonExpert}
	for l := range id.Layers {
		for tok := range t.Tokens() {
			if t.Len(tok, l) > 0 {
				s.MoELayers = append(s.MoELayers, l)
				break
			}
		}
	}
	return s
}

// quantFor picks the type llama.cpp's Q4_K_M mix would give rows of n
// elements: the k-quant where n is a multiple of its 256-element blocks, else
// its fallback Q8_0 (blocks of 32), else F16.
func quantFor(n int, k experts.Type) experts.Type {
	switch {
	case n%k.BlockSize() == 0:
		return k
	case n%experts.TypeQ8_0.BlockSize() == 0:
		return experts.TypeQ8_0
	}
	return experts.TypeF16
}

// Writer declares the shape's tensors (Q4_K gate and up, Q6_K down, as in
// Q4_K_M files, where the dimensions allow) with all-zero data.
func (s ModelShape) Writer() (*experts.Writer, error) {
	if s.Arch == "" || s.Layers <= 0 || s.Experts <= 0 || s.TopK <= 0 || s.TopK > s.Experts || s.Embedding <= 0 || s.ExpertFFN <= 0 || s.NonExpertBytes < 0 {
		return nil, fmt.Errorf("%w: model shape %+v", ErrInvalid, s)
	}
	w, err := experts.NewWriter()
	if err != nil {
		return nil, err
	}
	a := s.Arch + "."
	kvs := []struct {
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
	}
	for _, kv := range kvs {
		if err := w.SetKV(kv.key, kv.value); err != nil {
			return nil, err
		}
	}
	if s.NonExpertBytes > 0 {
		rows := (s.NonExpertBytes + int64(s.Embedding)*2 - 1) / (int64(s.Embedding) * 2)
		if err := addZeros(w, "token_embd.weight", experts.TypeF16, []uint64{uint64(s.Embedding), uint64(rows)}); err != nil {
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
	up, down := quantFor(s.Embedding, experts.TypeQ4_K), quantFor(s.ExpertFFN, experts.TypeQ6_K)
	for _, l := range layers {
		if l < 0 || l >= s.Layers {
			return nil, fmt.Errorf("%w: MoE layer %d of %d", ErrInvalid, l, s.Layers)
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
			if err := addZeros(w, fmt.Sprintf("blk.%d.%s.weight", l, t.name), t.typ, t.dims); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// addZeros declares a tensor of zero bytes.
func addZeros(w *experts.Writer, name string, typ experts.Type, dims []uint64) error {
	n := uint64(typ.BlockBytes())
	for i, d := range dims {
		if i == 0 {
			d /= uint64(typ.BlockSize())
		}
		n *= d
	}
	return w.AddTensor(name, typ, dims, func(w io.Writer) error {
		var buf [64 << 10]byte
		for left := n; left > 0; {
			k := min(left, uint64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			left -= k
		}
		return nil
	})
}

// errHeaderCaptured stops a Writer once the header has been captured.
var errHeaderCaptured = errors.New("rotary: header captured")

// capture keeps the first limit bytes written to it, then fails.
type capture struct {
	buf   bytes.Buffer
	limit int
}

func (c *capture) Write(p []byte) (int, error) {
	n := min(len(p), c.limit-c.buf.Len())
	c.buf.Write(p[:n])
	if n < len(p) {
		return n, errHeaderCaptured
	}
	return n, nil
}

// OpenShape opens the model w would write without writing its weights: a
// sparse file in dir (os.TempDir() if empty) holds w's header and reads as
// zeros after it; it is removed once mapped (Close unmaps it). Planning and
// simulation on the host backend under cuda.WithoutData need nothing else,
// so a 20 GB model opens in the time its header takes to generate.
func OpenShape(ctx context.Context, w *experts.Writer, dir string) (*experts.Model, error) {
	c := &capture{limit: int(w.HeaderSize())}
	if _, err := w.WriteTo(ctx, c); err != nil && !errors.Is(err, errHeaderCaptured) {
		return nil, fmt.Errorf("rotary: writing the model header: %w", err)
	}
	return openSparse(c.buf.Bytes(), w.Size(), dir)
}

// openSparse opens a model file of size bytes starting with head, the rest
// zeros.
func openSparse(head []byte, size int64, dir string) (m *experts.Model, err error) {
	f, err := os.CreateTemp(dir, "rotary-shape-*.gguf")
	if err != nil {
		return nil, fmt.Errorf("rotary: %w", err)
	}
	defer os.Remove(f.Name()) // the mapping outlives the name
	_, err = f.Write(head)
	if err == nil {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("rotary: writing a sparse model file: %w", err)
	}
	return experts.OpenModel(f.Name())
}
