package cpu

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Backend implements model.Backend on the CPU with a fixed worker pool.
// It is safe for concurrent use (models may share one) but gains nothing
// from it: operations share the pool, and MatMul and MoE the buffers they
// keep from one call to the next, so they wait for each other.
type Backend struct {
	pool    *Pool
	experts model.ExpertSource // nil: MoE fails

	mu      sync.Mutex // serialises MatMul and MoE, which share scratch
	scratch scratch
}

var _ model.Backend = (*Backend)(nil)

// Option configures a Backend.
type Option func(*Backend)

// WithExperts serves the routed experts of MoE from src (for example
// model.NewFileSource, or rotary through engine.Source). A backend without
// one computes everything but MoE.
func WithExperts(src model.ExpertSource) Option { return func(b *Backend) { b.experts = src } }

// New returns a CPU backend computing on threads goroutines (<= 0: one per
// available CPU).
func New(threads int, opts ...Option) *Backend {
	b := &Backend{pool: NewPool(threads)}
	for _, o := range opts {
		if o != nil {
			o(b)
		}
	}
	return b
}

// Threads is the number of goroutines the backend computes on.
func (b *Backend) Threads() int { return b.pool.Workers() }

// Close stops the worker goroutines.
func (b *Backend) Close() error {
	b.pool.Close()
	return nil
}

// tensor is the CPU backend's model.Tensor: rows of cols float32 values in
// one slice.
type tensor struct {
	rows, cols int
	data       []float32
}

func (t *tensor) Rows() int { return t.rows }
func (t *tensor) Cols() int { return t.cols }

func (t *tensor) row(i int) []float32 { return t.data[i*t.cols : (i+1)*t.cols] }

// cpuTensor returns the backend's view of t, which must come from this
// backend.
func cpuTensor(t model.Tensor) *tensor {
	ct, ok := t.(*tensor)
	if !ok {
		panic(fmt.Sprintf("cpu: tensor %T does not belong to the CPU backend", t))
	}
	return ct
}

// BeginStep implements model.Backend. Tensors come from the Go heap, which
// reclaims a step's tensors once nothing refers to them.
func (b *Backend) BeginStep() {}

// NewTensor implements model.Backend.
func (b *Backend) NewTensor(rows, cols int) model.Tensor {
	return &tensor{rows: rows, cols: cols, data: make([]float32, rows*cols)}
}

// NewState implements model.Backend.
func (b *Backend) NewState(rows, cols int) model.Tensor { return b.NewTensor(rows, cols) }

// Zero implements model.Backend.
func (b *Backend) Zero(t model.Tensor) error {
	clear(cpuTensor(t).data)
	return nil
}

// Slice implements model.Backend.
func (b *Backend) Slice(t model.Tensor, lo, hi int) model.Tensor {
	ct := cpuTensor(t)
	return &tensor{rows: hi - lo, cols: ct.cols, data: ct.data[lo*ct.cols : hi*ct.cols]}
}

// Read implements model.Backend.
func (b *Backend) Read(dst []float32, t model.Tensor) error {
	copy(dst, cpuTensor(t).data)
	return nil
}

// floats views an F32 weight as float32 values without copying.
func floats(w model.Weight) ([]float32, error) {
	n := w.Rows * w.Cols
	if w.Type != experts.TypeF32 || len(w.Data) != 4*n {
		return nil, fmt.Errorf("cpu: %s: want %d F32 values, have %d bytes of %v", w.Name, n, len(w.Data), w.Type)
	}
	if n == 0 {
		return nil, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(w.Data))
	if uintptr(p)%unsafe.Alignof(float32(0)) != 0 {
		return nil, fmt.Errorf("cpu: %s: F32 data is not 4-byte aligned", w.Name)
	}
	return unsafe.Slice((*float32)(p), n), nil
}

// Embed implements model.Backend.
func (b *Backend) Embed(dst model.Tensor, table model.Weight, tokens []int32) error {
	d := cpuTensor(dst)
	rb, err := table.Type.RowBytes(uint64(table.Cols))
	if err != nil {
		return err
	}
	for i, tok := range tokens {
		src := table.Data[int(tok)*int(rb) : (int(tok)+1)*int(rb)]
		if err := quant.Dequantize(table.Type, src, d.row(i)); err != nil {
			return fmt.Errorf("cpu: %s: row %d: %w", table.Name, tok, err)
		}
	}
	return nil
}

// RMSNorm implements model.Backend.
func (b *Backend) RMSNorm(dst, x model.Tensor, w model.Weight, eps float32) error {
	d, xt := cpuTensor(dst), cpuTensor(x)
	wf, err := floats(w)
	if err != nil {
		return err
	}
	for t := range xt.rows {
		RMSNorm(d.row(t), xt.row(t), wf, eps)
	}
	return nil
}

// Add implements model.Backend.
func (b *Backend) Add(dst, x, y model.Tensor) error {
	Add(cpuTensor(dst).data, cpuTensor(x).data, cpuTensor(y).data)
	return nil
}

// SwiGLU implements model.Backend.
func (b *Backend) SwiGLU(dst, gate, up model.Tensor) error {
	SwiGLU(cpuTensor(dst).data, cpuTensor(gate).data, cpuTensor(up).data)
	return nil
}

// AddGated implements model.Backend.
func (b *Backend) AddGated(dst, x, y, gate model.Tensor) error {
	d, xt, yt, g := cpuTensor(dst), cpuTensor(x), cpuTensor(y), cpuTensor(gate)
	for t := range d.rows {
		s := Sigmoid(g.data[t*g.cols])
		dr, xr, yr := d.row(t), xt.row(t), yt.row(t)
		for i := range dr {
			dr[i] = xr[i] + yr[i]*s
		}
	}
	return nil
}

// AddNorm implements model.Backend: the sums of AddGated and Add, then
// RMSNorm, row by row.
func (b *Backend) AddNorm(sum, dst model.Tensor, r model.Residual, w model.Weight, eps float32) error {
	wf, err := floats(w)
	if err != nil {
		return err
	}
	s, d, a, bt := cpuTensor(sum), cpuTensor(dst), cpuTensor(r.A), cpuTensor(r.B)
	var g, c *tensor
	if r.Gate != nil {
		g = cpuTensor(r.Gate)
	}
	if r.C != nil {
		c = cpuTensor(r.C)
	}
	for t := range s.rows {
		sr, ar, br := s.row(t), a.row(t), bt.row(t)
		if g != nil {
			gs := Sigmoid(g.data[t*g.cols])
			for i := range sr {
				sr[i] = ar[i] + br[i]*gs
			}
		} else {
			Add(sr, ar, br)
		}
		if c != nil {
			Add(sr, sr, c.row(t))
		}
		RMSNorm(d.row(t), sr, wf, eps)
	}
	return nil
}

// NormRope RMS-normalises each head of x in place, scales it by w (one
// value per head dimension), then rotates it for its row's position pos,
// pos+1, ...: what Attend does first with a.QNorm and a.KNorm.
func (b *Backend) NormRope(x model.Tensor, heads model.Heads, w model.Weight, eps float32, rope model.Rope, pos int) error {
	xt := cpuTensor(x)
	wf, err := floats(w)
	if err != nil {
		return err
	}
	r := Rope(rope)
	cos, sin := make([]float32, r.Dims/2), make([]float32, r.Dims/2)
	for t := range xt.rows {
		r.Angles(pos+t, cos, sin)
		row := xt.row(t)
		for h := range heads.Count {
			head := row[heads.Offset+h*heads.Stride:][:heads.Dim]
			RMSNorm(head, head, wf, eps)
			r.Rotate(head, cos, sin)
		}
	}
	return nil
}

// Attend implements model.Backend.
func (b *Backend) Attend(dst model.Tensor, a model.Attention) error {
	if len(a.QNorm.Data) > 0 {
		kHeads := model.Heads{Count: a.KVHeads, Dim: a.QHeads.Dim, Stride: a.QHeads.Dim}
		if err := errors.Join(b.NormRope(a.Q, a.QHeads, a.QNorm, a.Eps, a.Rope, a.Pos),
			b.NormRope(a.K, kHeads, a.KNorm, a.Eps, a.Rope, a.Pos)); err != nil {
			return err
		}
	}
	d, q := cpuTensor(dst), cpuTensor(a.Q)
	k, v := cpuTensor(a.K), cpuTensor(a.V)
	ck, cv := cpuTensor(a.Cache.K), cpuTensor(a.Cache.V)
	T, H, Dh := q.rows, a.QHeads.Count, a.QHeads.Dim
	if a.Pos+T > ck.rows {
		return fmt.Errorf("cpu: %d positions from %d overflow a %d-position cache", T, a.Pos, ck.rows)
	}
	kv := KV{Keys: ck.data, Values: cv.data, KVHeads: a.KVHeads, HeadDim: Dh}
	for t := range T {
		kv.Store(a.Pos+t, k.row(t), v.row(t))
	}
	var gate *tensor
	if a.Gate != nil {
		gate = cpuTensor(a.Gate)
	}
	group := H / a.KVHeads
	b.pool.Run(T*H, 1, func(lo, hi int) {
		scores := make([]float32, a.Pos+T)
		for i := lo; i < hi; i++ {
			t, h := i/H, i%H
			out := d.row(t)[h*Dh : (h+1)*Dh]
			kv.Attend(out, q.row(t)[a.QHeads.Offset+h*a.QHeads.Stride:][:Dh], h/group, a.Pos+t+1, a.Scale, scores)
			if gate != nil {
				g := gate.row(t)[a.GateHeads.Offset+h*a.GateHeads.Stride:][:Dh]
				for j := range out {
					out[j] *= Sigmoid(g[j])
				}
			}
		}
	})
	return nil
}

// ConvSiLU implements model.Backend.
func (b *Backend) ConvSiLU(dst, x, state model.Tensor, kernel model.Weight) error {
	d, xt, st := cpuTensor(dst), cpuTensor(x), cpuTensor(state)
	kf, err := floats(kernel)
	if err != nil {
		return err
	}
	C, K := xt.cols, kernel.Cols
	b.pool.Run(C, 256, func(lo, hi int) {
		ConvSiLU(d.data, xt.data, st.data, kf, xt.rows, C, K, lo, hi)
	})
	return nil
}

// DeltaNet implements model.Backend.
func (b *Backend) DeltaNet(dst model.Tensor, dn model.DeltaNet) error {
	d, qkv := cpuTensor(dst), cpuTensor(dn.QKV)
	alpha, beta, st := cpuTensor(dn.Alpha), cpuTensor(dn.Beta), cpuTensor(dn.State)
	dtBias, err := floats(dn.DTBias)
	if err != nil {
		return err
	}
	A, err := floats(dn.A)
	if err != nil {
		return err
	}
	T, S, Hk, Hv := qkv.rows, dn.HeadDim, dn.KHeads, dn.VHeads

	// Normalised queries and keys, then per token and value head the decay
	// e^g with g = softplus(α + dt_bias)·A, and β = sigmoid(β).
	qk := make([]float32, T*2*Hk*S)
	decay, strength := make([]float32, T*Hv), make([]float32, T*Hv)
	for t := range T {
		row := qk[t*2*Hk*S : (t+1)*2*Hk*S]
		copy(row, qkv.row(t)[:2*Hk*S])
		for h := range 2 * Hk {
			L2Normalize(row[h*S:(h+1)*S], dn.Eps)
		}
		for h := range Hv {
			g := Softplus(alpha.row(t)[h]+dtBias[h]) * A[h]
			decay[t*Hv+h] = expf(g)
			strength[t*Hv+h] = Sigmoid(beta.row(t)[h])
		}
	}
	scale := 1 / sqrtf(float32(S))
	b.pool.Run(Hv, 1, func(lo, hi int) {
		for h := lo; h < hi; h++ {
			state := st.data[h*S*S : (h+1)*S*S]
			kh := h % Hk
			for t := range T {
				row := qk[t*2*Hk*S:]
				q, k := row[kh*S:(kh+1)*S], row[(Hk+kh)*S:(Hk+kh+1)*S]
				v := qkv.row(t)[2*Hk*S+h*S:][:S]
				DeltaRule(d.row(t)[h*S:(h+1)*S], state, q, k, v, decay[t*Hv+h], strength[t*Hv+h], scale)
			}
		}
	})
	return nil
}

// GatedRMSNorm implements model.Backend.
func (b *Backend) GatedRMSNorm(dst, x, z model.Tensor, w model.Weight, eps float32) error {
	d, xt, zt := cpuTensor(dst), cpuTensor(x), cpuTensor(z)
	wf, err := floats(w)
	if err != nil {
		return err
	}
	n := len(wf)
	for i := 0; i < len(xt.data); i += n {
		out := d.data[i : i+n]
		RMSNorm(out, xt.data[i:i+n], wf, eps)
		for j, g := range zt.data[i : i+n] {
			out[j] *= SiLU(g)
		}
	}
	return nil
}

// Route implements model.Backend.
func (b *Backend) Route(logits model.Tensor, k int, normalize bool) (model.Routing, error) {
	lt := cpuTensor(logits)
	r := model.Routing{K: k, IDs: make([]int32, lt.rows*k), Weights: make([]float32, lt.rows*k)}
	for t := range lt.rows {
		Route(lt.row(t), r.IDs[t*k:(t+1)*k], r.Weights[t*k:(t+1)*k], normalize)
	}
	return r, nil
}
