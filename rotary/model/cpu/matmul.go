package cpu

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/model"
)

// The matrix products run on the weights' stored format, the way ggml's
// CPU backend does: the activations are converted once to the weight
// type's dot-product partner (8-bit blocks for quantized weights, F16 for
// F16, ...), then every weight row is dotted with every activation row by
// quant.VecDot. A weight row is read once per batch, not once per token.

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

// convert converts the rows of x (each cols long) into a as vt, reusing a's
// buffer, and splits the work over the pool when there are many rows.
func (b *Backend) convert(a *activations, vt experts.Type, x []float32, rows, cols int) error {
	rb, err := vt.RowBytes(uint64(cols))
	if err != nil {
		return fmt.Errorf("activations as %v: %w", vt, err)
	}
	a.typ, a.rowBytes, a.data = vt, int(rb), grow(&a.data, rows*int(rb))
	// Sizes are right by construction, so only an unsupported type fails,
	// and then on every row: convert the first one to find out.
	if rows == 0 {
		return nil
	}
	if err := quant.QuantizeActivations(vt, x[:cols], a.row(0)); err != nil {
		return fmt.Errorf("activations as %v: %w", vt, err)
	}
	if rows > 1 {
		b.pool.Run(rows-1, max(1, 4096/cols), func(lo, hi int) {
			for i := lo + 1; i < hi+1; i++ {
				_ = quant.QuantizeActivations(vt, x[i*cols:(i+1)*cols], a.row(i))
			}
		})
	}
	return nil
}

// conversions are one operation's input converted for the weight types the
// operation meets, each vec-dot type once (Q4_K and Q6_K weights share Q8_K
// activations). Their buffers stay for the next operation.
type conversions struct {
	met  []convertedFor
	bufs []*activations // bufs[:used] hold the input, one per vec-dot type
	used int
}

type convertedFor struct {
	weights experts.Type
	acts    *activations
}

// reset starts a new input.
func (c *conversions) reset() { c.met, c.used = c.met[:0], 0 }

// activations returns x (rows of cols values), the input since the last
// reset, converted for weights of type wt.
func (b *Backend) activations(c *conversions, wt experts.Type, x []float32, rows, cols int) (*activations, error) {
	for _, m := range c.met {
		if m.weights == wt {
			return m.acts, nil
		}
	}
	if !quant.CanVecDot(wt) {
		return nil, fmt.Errorf("no dot product for %v weights: %w", wt, experts.ErrUnsupportedType)
	}
	vt := quant.VecDotType(wt)
	var a *activations
	for _, buf := range c.bufs[:c.used] {
		if buf.typ == vt {
			a = buf
			break
		}
	}
	if a == nil {
		if c.used == len(c.bufs) {
			c.bufs = append(c.bufs, new(activations))
		}
		a = c.bufs[c.used]
		if err := b.convert(a, vt, x, rows, cols); err != nil {
			return nil, err
		}
		c.used++
	}
	c.met = append(c.met, convertedFor{weights: wt, acts: a})
	return a, nil
}

// scratch holds the buffers of MatMul and MoE from one call to the next, so
// that a decode step does not allocate them for every matrix and layer.
// Each grows to the largest need met.
type scratch struct {
	input, hidden conversions // x; the experts' hidden vectors
	gate, up, out []float32   // per (token, slot) pair
	slot          []int32     // [expert id]: index in ids + 1, 0 if not supplied
	start, next   []int       // per expert: its first pair; a cursor
	pairs         []int       // indices t·K+k into the routing, grouped by expert
	experts       []routedExpert
}

// grow returns *buf resized to n values, reallocating it only when it is
// too small; the values are not kept.
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	*buf = (*buf)[:n]
	return *buf
}

// checkWeight validates a weight for products with cols-long activations.
func checkWeight(w model.Weight, cols int) (rowBytes int, err error) {
	if !quant.CanVecDot(w.Type) {
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
	b.mu.Lock()
	defer b.mu.Unlock()
	in := &b.scratch.input
	in.reset()
	acts, err := b.activations(in, w.Type, xt.data, xt.rows, xt.cols)
	if err != nil {
		return fmt.Errorf("cpu: %s: %w", w.Name, err)
	}
	T, n := xt.rows, w.Cols
	b.pool.Run(w.Rows, max(1, chunkBytes/wrb), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			wr := w.Data[r*wrb : (r+1)*wrb]
			for t := range T {
				d.data[t*d.cols+r] = quant.VecDot(w.Type, n, wr, acts.row(t))
			}
		}
	})
	return nil
}

// matrix is a weight matrix of a MoE call with the activations it
// multiplies.
type matrix struct {
	data     []byte
	typ      experts.Type
	rowBytes int
	acts     *activations
}

// newMatrix views w, whose size was checked (model.CheckExperts).
func newMatrix(w model.Weight) matrix {
	return matrix{data: w.Data, typ: w.Type, rowBytes: len(w.Data) / w.Rows}
}

func (m *matrix) row(r int) []byte { return m.data[r*m.rowBytes : (r+1)*m.rowBytes] }

// routedExpert is one expert of a MoE call, resolved once before the loops
// over its rows.
type routedExpert struct {
	gate, up, down matrix
}

// MoE implements model.Backend: it acquires the routed experts from the
// backend's ExpertSource (WithExperts), checks them and computes with
// Experts.
func (b *Backend) MoE(ctx context.Context, dst, x model.Tensor, layer int, r model.Routing) error {
	if b.experts == nil {
		return fmt.Errorf("cpu: MoE of layer %d: the backend has no expert source (WithExperts)", layer)
	}
	ids := model.RoutedExperts(r.IDs)
	lease, err := b.experts.Acquire(ctx, layer, ids)
	if err != nil {
		return fmt.Errorf("acquiring %d experts: %w", len(ids), err)
	}
	defer lease.Release()
	ew := lease.Weights()
	if err := model.CheckExperts(layer, x.Cols(), ids, ew); err != nil {
		return err
	}
	return b.Experts(dst, x, r, ids, ew)
}

// Experts writes the MoE of x over the given experts into dst: ew[i] are
// the weights of expert ids[i], ids lists each expert of r once, and the
// weights' shapes and sizes were checked (model.CheckExperts). Each routed
// expert's matrices are read once for all the (token, slot) pairs routed to
// it; the outputs are weighted and summed per token in routing order, as
// llama.cpp adds its per-slot views.
func (b *Backend) Experts(dst, x model.Tensor, r model.Routing, ids []int, ew []model.ExpertWeights) error {
	d, xt := cpuTensor(dst), cpuTensor(x)
	T, D, K := xt.rows, xt.cols, r.K
	if len(ids) == 0 {
		return errors.New("cpu: MoE without experts")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.scratch
	pairs, start, err := s.groupPairs(r, ids)
	if err != nil {
		return err
	}

	// The experts' shapes and sizes were checked (model.CheckExperts): only
	// what is particular to this backend is left to check.
	ffn := ew[0].Gate.Rows
	exps := grow(&s.experts, len(ew))
	defer clear(exps) // the views outlive neither the call nor the lease
	s.input.reset()
	for i, e := range ew {
		ex := &exps[i]
		ex.gate, ex.up, ex.down = newMatrix(e.Gate), newMatrix(e.Up), newMatrix(e.Down)
		if ex.gate.acts, err = b.activations(&s.input, e.Gate.Type, xt.data, T, D); err != nil {
			return fmt.Errorf("cpu: expert %d gate: %w", ids[i], err)
		}
		if ex.up.acts, err = b.activations(&s.input, e.Up.Type, xt.data, T, D); err != nil {
			return fmt.Errorf("cpu: expert %d up: %w", ids[i], err)
		}
	}

	// Gate and up projections: one task range over every expert's rows.
	// Every (pair, row) is written, so the reused buffers need no clearing.
	gate, up := grow(&s.gate, T*K*ffn), grow(&s.up, T*K*ffn)
	b.pool.Run(len(exps)*ffn, max(1, chunkBytes/(exps[0].gate.rowBytes+exps[0].up.rowBytes)), func(lo, hi int) {
		for g := lo; g < hi; g++ {
			i, row := g/ffn, g%ffn
			e := &exps[i]
			gw, uw := e.gate.row(row), e.up.row(row)
			for _, p := range pairs[start[i]:start[i+1]] {
				t := p / K
				gate[p*ffn+row] = quant.VecDot(e.gate.typ, D, gw, e.gate.acts.row(t))
				up[p*ffn+row] = quant.VecDot(e.up.typ, D, uw, e.up.acts.row(t))
			}
		}
	})
	SwiGLU(gate, gate, up)

	// Down projections of each pair's hidden vector.
	s.hidden.reset()
	for i, e := range ew {
		if exps[i].down.acts, err = b.activations(&s.hidden, e.Down.Type, gate, T*K, ffn); err != nil {
			return fmt.Errorf("cpu: expert %d down: %w", ids[i], err)
		}
	}
	out := grow(&s.out, T*K*D)
	b.pool.Run(len(exps)*D, max(1, chunkBytes/exps[0].down.rowBytes), func(lo, hi int) {
		for g := lo; g < hi; g++ {
			i, row := g/D, g%D
			e := &exps[i]
			dw := e.down.row(row)
			for _, p := range pairs[start[i]:start[i+1]] {
				out[p*D+row] = quant.VecDot(e.down.typ, ffn, dw, e.down.acts.row(p))
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

// groupPairs groups the routing's (token, slot) pairs by expert: those
// routed to ids[i] are pairs[start[i]:start[i+1]], as indices t·K+k into
// the routing, in routing order.
func (s *scratch) groupPairs(r model.Routing, ids []int) (pairs, start []int, err error) {
	maxID := slices.Max(ids)
	if minID := slices.Min(ids); minID < 0 {
		return nil, nil, fmt.Errorf("cpu: expert id %d", minID)
	}
	slot := grow(&s.slot, maxID+1)
	clear(slot)
	for i, e := range ids {
		slot[e] = int32(i + 1)
	}
	start = grow(&s.start, len(ids)+1)
	clear(start)
	for p, e := range r.IDs {
		if e < 0 || int(e) > maxID || slot[e] == 0 {
			return nil, nil, fmt.Errorf("cpu: token %d routed to expert %d, which was not supplied", p/r.K, e)
		}
		start[slot[e]]++ // expert i's count, at start[i+1]
	}
	for i := range ids {
		start[i+1] += start[i]
	}
	pairs, next := grow(&s.pairs, len(r.IDs)), grow(&s.next, len(ids))
	copy(next, start)
	for p, e := range r.IDs {
		i := slot[e] - 1
		pairs[next[i]] = p
		next[i]++
	}
	return pairs, start, nil
}
