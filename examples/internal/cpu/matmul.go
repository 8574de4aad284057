package cpu

import (
	"fmt"

	"github.com/rotary-moe/rotary/examples/internal/model"
	"github.com/rotary-moe/rotary/experts"
)

// The matrix products run on the weights' stored format, the way ggml's
// CPU backend does: the activations are converted once to the weight
// type's dot-product partner (8-bit blocks for quantized weights, F16 for
// F16, ...), then every weight row is dotted with every activation row by
// experts.VecDot. A weight row is read once per batch, not once per token.

// chunkBytes is about how many weight bytes one pool task reads: enough to
// amortise claiming the task, small enough to balance the workers.
const chunkBytes = 32 << 10

// activations are rows of float32 values converted to a vec-dot type.
type activations struct {
	typ      experts.Type
	rowBytes int
	data     []byte
}

func (a *activations) row(i int) []byte { return a.data[i*a.rowBytes : (i+1)*a.rowBytes] }

// convert converts the rows of x (each cols long) for dot products with
// weights of type wt, splitting the work over the pool when there are many.
func (b *Backend) convert(wt experts.Type, x []float32, rows, cols int) (*activations, error) {
	vt := wt.VecDotType()
	rb, err := vt.RowBytes(uint64(cols))
	if err != nil {
		return nil, fmt.Errorf("cpu: activations for %v weights: %w", wt, err)
	}
	a := &activations{typ: vt, rowBytes: int(rb), data: make([]byte, rows*int(rb))}
	// Sizes are right by construction, so only an unsupported type fails,
	// and then on every row: convert the first one to find out.
	if rows == 0 {
		return a, nil
	}
	if err := experts.QuantizeActivations(vt, x[:cols], a.row(0)); err != nil {
		return nil, fmt.Errorf("cpu: activations for %v weights: %w", wt, err)
	}
	b.pool.Run(rows-1, max(1, 4096/cols), func(lo, hi int) {
		for i := lo + 1; i < hi+1; i++ {
			_ = experts.QuantizeActivations(vt, x[i*cols:(i+1)*cols], a.row(i))
		}
	})
	return a, nil
}

// checkWeight validates a weight for products with cols-long activations.
func checkWeight(w model.Weight, cols int) (rowBytes int, err error) {
	if !w.Type.CanVecDot() {
		return 0, fmt.Errorf("cpu: %s: no dot product for %v weights: %w", w.Name, w.Type, experts.ErrUnsupportedType)
	}
	rb, err := w.Type.RowBytes(uint64(w.Cols))
	if err != nil {
		return 0, fmt.Errorf("cpu: %s: %w", w.Name, err)
	}
	if w.Cols != cols || uint64(len(w.Data)) != rb*uint64(w.Rows) {
		return 0, fmt.Errorf("cpu: %s: %d×%d %v weights in %d bytes do not fit %d-value activations", w.Name, w.Rows, w.Cols, w.Type, len(w.Data), cols)
	}
	return int(rb), nil
}

// rowBytes is the size of one row of a weight whose size the model checked.
func rowBytes(w model.Weight) int { return len(w.Data) / w.Rows }

// MatMul implements model.Backend.
func (b *Backend) MatMul(dst, x model.Tensor, w model.Weight) error {
	d, xt := cpuTensor(dst), cpuTensor(x)
	wrb, err := checkWeight(w, xt.cols)
	if err != nil {
		return err
	}
	if d.cols != w.Rows || d.rows != xt.rows {
		return fmt.Errorf("cpu: %d×%d product of %d×%d weights into %d×%d", xt.rows, xt.cols, w.Rows, w.Cols, d.rows, d.cols)
	}
	acts, err := b.convert(w.Type, xt.data, xt.rows, xt.cols)
	if err != nil {
		return err
	}
	T, n := xt.rows, w.Cols
	b.pool.Run(w.Rows, max(1, chunkBytes/wrb), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			wr := w.Data[r*wrb : (r+1)*wrb]
			for t := range T {
				d.data[t*d.cols+r] = experts.VecDot(w.Type, n, wr, acts.row(t))
			}
		}
	})
	return nil
}

// MoE implements model.Backend. Each routed expert's matrices are read
// once for all the (token, slot) pairs routed to it; the outputs are
// weighted and summed per token in routing order, as llama.cpp adds its
// per-slot views.
func (b *Backend) MoE(dst, x model.Tensor, r model.Routing, ids []int, ew []model.ExpertWeights) error {
	d, xt := cpuTensor(dst), cpuTensor(x)
	T, D, K := xt.rows, xt.cols, r.K
	if len(ids) == 0 {
		return fmt.Errorf("cpu: MoE without experts")
	}

	// Pairs routed to each expert, as indices t·K+k into the routing.
	slot := make(map[int]int, len(ids))
	for i, e := range ids {
		slot[e] = i
	}
	pairs := make([][]int, len(ids))
	for p, e := range r.IDs {
		i, ok := slot[int(e)]
		if !ok {
			return fmt.Errorf("cpu: token %d routed to expert %d, which was not supplied", p/K, e)
		}
		pairs[i] = append(pairs[i], p)
	}

	// The model checked the experts' shapes and sizes (model.Backend.MoE):
	// only what is particular to this backend is left to check.
	ffn := ew[0].Gate.Rows
	gateRB, upRB, downRB := make([]int, len(ew)), make([]int, len(ew)), make([]int, len(ew))
	acts := map[experts.Type]*activations{}
	for i, e := range ew {
		for _, p := range []struct {
			role string
			w    model.Weight
		}{{"gate", e.Gate}, {"up", e.Up}, {"down", e.Down}} {
			if !p.w.Type.CanVecDot() {
				return fmt.Errorf("cpu: expert %d %s: no dot product for %v weights: %w", ids[i], p.role, p.w.Type, experts.ErrUnsupportedType)
			}
		}
		gateRB[i], upRB[i], downRB[i] = rowBytes(e.Gate), rowBytes(e.Up), rowBytes(e.Down)
		for _, wt := range []experts.Type{e.Gate.Type, e.Up.Type} {
			if acts[wt] == nil {
				var err error
				if acts[wt], err = b.convert(wt, xt.data, T, D); err != nil {
					return err
				}
			}
		}
	}

	// Gate and up projections: one task range over every expert's rows.
	gate, up := make([]float32, T*K*ffn), make([]float32, T*K*ffn)
	b.pool.Run(len(ew)*ffn, max(1, chunkBytes/(gateRB[0]+upRB[0])), func(lo, hi int) {
		for g := lo; g < hi; g++ {
			i, row := g/ffn, g%ffn
			e := ew[i]
			gw := e.Gate.Data[row*gateRB[i] : (row+1)*gateRB[i]]
			uw := e.Up.Data[row*upRB[i] : (row+1)*upRB[i]]
			ga, ua := acts[e.Gate.Type], acts[e.Up.Type]
			for _, p := range pairs[i] {
				t := p / K
				gate[p*ffn+row] = experts.VecDot(e.Gate.Type, D, gw, ga.row(t))
				up[p*ffn+row] = experts.VecDot(e.Up.Type, D, uw, ua.row(t))
			}
		}
	})
	SwiGLU(gate, gate, up)

	// Down projections of each pair's hidden vector.
	hidden := map[experts.Type]*activations{}
	for _, e := range ew {
		if hidden[e.Down.Type] == nil {
			h, err := b.convert(e.Down.Type, gate, T*K, ffn)
			if err != nil {
				return err
			}
			hidden[e.Down.Type] = h
		}
	}
	out := make([]float32, T*K*D)
	b.pool.Run(len(ew)*D, max(1, chunkBytes/downRB[0]), func(lo, hi int) {
		for g := lo; g < hi; g++ {
			i, row := g/D, g%D
			e := ew[i]
			dw := e.Down.Data[row*downRB[i] : (row+1)*downRB[i]]
			ha := hidden[e.Down.Type]
			for _, p := range pairs[i] {
				out[p*D+row] = experts.VecDot(e.Down.Type, ffn, dw, ha.row(p))
			}
		}
	})

	for t := range T {
		dr := d.row(t)
		for k := range K {
			w := r.Weights[t*K+k]
			o := out[(t*K+k)*D : (t*K+k+1)*D]
			if k == 0 {
				for j, v := range o {
					dr[j] = v * w
				}
				continue
			}
			for j, v := range o {
				dr[j] += v * w
			}
		}
	}
	return nil
}
