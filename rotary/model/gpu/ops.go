package gpu

import (
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Block sizes of the launches (the kernels' __launch_bounds__).
const (
	rowThreads  = 256 // rt_decode_rmsnorm, rt_decode_add_norm, elementwise, embedding, conv
	headThreads = 128 // rt_decode_norm_rope, rt_decode_gated_rmsnorm, attention, DeltaNet
)

// elementwiseGrid covers n values with blocks of rowThreads, capped where a
// grid-stride loop does the rest.
func elementwiseGrid(n int) uint32 { return uint32(min(ceilDiv(n, rowThreads), 1<<16)) }

// RMSNorm writes each row of x divided by its RMS and scaled by w (Cols
// values) into dst, which may be x.
func (ks *Kernels) RMSNorm(s cuda.Stream, dst, x Matrix, w cuda.Buffer, eps float32) error {
	if err := sameShape("RMSNorm", []string{"x", "dst"}, x, dst); err != nil {
		return err
	}
	if err := checkFloats("RMSNorm", "weight", w, x.Cols); err != nil {
		return err
	}
	return ks.launch(s, kRMSNorm, cuda.Dim3{X: uint32(x.Rows)}, rowThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(x.Buf), cuda.Ptr(w), i32(x.Cols), cuda.F32(eps))
}

// Residual is the sum that closes a block of a layer: A + B (B scaled by
// sigmoid of Gate's column 0 of its row when Gate has a buffer) + C (when C
// has a buffer), each add rounded as the CPU backend rounds it.
type Residual struct {
	A, B Matrix
	Gate Matrix // optional: one gate per row (qwen35moe's shared expert)
	C    Matrix // optional: a second residual term
}

// AddNorm writes r's sum into sum (which may be one of r's terms) and its
// RMSNorm scaled by w into dst, in one launch: a layer's residual add fused
// with the norm of the next block.
func (ks *Kernels) AddNorm(s cuda.Stream, sum, dst Matrix, r Residual, w cuda.Buffer, eps float32) error {
	names, ms := []string{"A", "B", "sum", "dst"}, []Matrix{r.A, r.B, sum, dst}
	hasC := !r.C.Buf.IsZero()
	if hasC {
		names, ms = append(names, "C"), append(ms, r.C)
	}
	if err := sameShape("AddNorm", names, ms...); err != nil {
		return err
	}
	if err := checkFloats("AddNorm", "weight", w, r.A.Cols); err != nil {
		return err
	}
	gate, gateStride, hasGate := r.A.Buf, 0, !r.Gate.Buf.IsZero()
	if hasGate {
		if err := r.Gate.check("AddNorm", "gate"); err != nil {
			return err
		}
		if r.Gate.Rows != r.A.Rows {
			return fmt.Errorf("gpu: AddNorm: %d gate rows for %d rows: %w", r.Gate.Rows, r.A.Rows, ErrShape)
		}
		gate, gateStride = r.Gate.Buf, r.Gate.Cols
	}
	c := r.A.Buf
	if hasC {
		c = r.C.Buf
	}
	return ks.launch(s, kAddNorm, cuda.Dim3{X: uint32(r.A.Rows)}, rowThreads, 0,
		cuda.Ptr(sum.Buf), cuda.Ptr(dst.Buf), cuda.Ptr(r.A.Buf), cuda.Ptr(r.B.Buf),
		cuda.Ptr(gate), i32(gateStride), flag(hasGate), cuda.Ptr(c), flag(hasC),
		cuda.Ptr(w), i32(r.A.Cols), cuda.F32(eps))
}

// Add writes a+b into dst (which may be a or b).
func (ks *Kernels) Add(s cuda.Stream, dst, a, b Matrix) error {
	if err := sameShape("Add", []string{"a", "b", "dst"}, a, b, dst); err != nil {
		return err
	}
	return ks.launch(s, kAdd, cuda.Dim3{X: elementwiseGrid(a.Len())}, rowThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(a.Buf), cuda.Ptr(b.Buf), cuda.I64(int64(a.Len())))
}

// SwiGLU writes SiLU(gate)·up into dst (which may be gate or up).
func (ks *Kernels) SwiGLU(s cuda.Stream, dst, gate, up Matrix) error {
	if err := sameShape("SwiGLU", []string{"gate", "up", "dst"}, gate, up, dst); err != nil {
		return err
	}
	return ks.launch(s, kSwiGLU, cuda.Dim3{X: elementwiseGrid(gate.Len())}, rowThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(gate.Buf), cuda.Ptr(up.Buf), cuda.I64(int64(gate.Len())))
}

// AddGated writes a + b·sigmoid(gate) into dst (which may be a or b), gate
// holding one value per row in its column 0.
func (ks *Kernels) AddGated(s cuda.Stream, dst, a, b, gate Matrix) error {
	if err := sameShape("AddGated", []string{"a", "b", "dst"}, a, b, dst); err != nil {
		return err
	}
	if err := gate.check("AddGated", "gate"); err != nil {
		return err
	}
	if gate.Rows != a.Rows {
		return fmt.Errorf("gpu: AddGated: %d gate rows for %d rows: %w", gate.Rows, a.Rows, ErrShape)
	}
	if err := checkBatch("AddGated", a.Rows); err != nil {
		return err
	}
	return ks.launch(s, kAddGated, cuda.Dim3{X: elementwiseGrid(a.Cols), Y: uint32(a.Rows)}, rowThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(a.Buf), cuda.Ptr(b.Buf), cuda.Ptr(gate.Buf), i32(gate.Cols), i32(a.Cols))
}

// checkHeads verifies that heads lie inside rows of m.
func checkHeads(op, what string, h model.Heads, m Matrix) error {
	if h.Count < 0 || h.Dim <= 0 || h.Offset < 0 || h.Stride < 0 ||
		(h.Count > 0 && h.Offset+(h.Count-1)*h.Stride+h.Dim > m.Cols) {
		return fmt.Errorf("gpu: %s: %s heads %+v do not fit rows of %d values: %w", op, what, h, m.Cols, ErrShape)
	}
	return nil
}

// KVCache is one attention layer's cache in device memory: row p of K and V
// holds the keys and values (all KV heads, HeadDim values each) of position p.
type KVCache struct {
	K, V Matrix
}

// QKNorm is the per-head RMS norm and NEOX rope of an attention layer's
// queries and keys at positions Pos, Pos+1, ... (one per row), with the keys'
// and values' store into the cache fused in.
type QKNorm struct {
	Q       Matrix
	QHeads  model.Heads
	QWeight cuda.Buffer // QHeads.Dim values
	// K holds KHeads heads per row (KHeads.Count may be 0: queries only).
	K       Matrix
	KHeads  model.Heads
	KWeight cuda.Buffer
	// When Cache has buffers, the normalised and rotated keys (KHeads plain:
	// Stride == Dim, Offset 0) and the rows of V (KHeads.Count·Dim values)
	// are also written to cache rows Pos, Pos+1, ...
	V     Matrix
	Cache KVCache
	Eps   float32
	Rope  model.Rope
	Pos   int
	// PosAt, when it has a buffer, holds Pos (an int32) in device memory
	// for the kernel to read when it runs (see Attention.PosAt).
	PosAt cuda.Buffer
}

// NormRope RMS-normalises each head of q.Q (and q.K) in place, scales it by
// its weight and rotates its first Rope.Dims values for its row's position, in
// one launch; see QKNorm for the cache store.
func (ks *Kernels) NormRope(s cuda.Stream, q QKNorm) error {
	const op = "NormRope"
	if err := q.Q.check(op, "Q"); err != nil {
		return err
	}
	if err := checkHeads(op, "query", q.QHeads, q.Q); err != nil {
		return err
	}
	dim, T := q.QHeads.Dim, q.Q.Rows
	if err := checkBatch(op, T); err != nil {
		return err
	}
	if q.Rope.Dims <= 0 || q.Rope.Dims%2 != 0 || q.Rope.Dims > dim {
		return fmt.Errorf("gpu: %s: rope over %d of %d values: %w", op, q.Rope.Dims, dim, ErrShape)
	}
	if q.Pos < 0 {
		return fmt.Errorf("gpu: %s: position %d: %w", op, q.Pos, ErrShape)
	}
	if err := checkFloats(op, "query weight", q.QWeight, dim); err != nil {
		return err
	}
	k, kw, kHeads := q.Q.Buf, q.QWeight, q.KHeads
	if kHeads.Count > 0 {
		if err := q.K.check(op, "K"); err != nil {
			return err
		}
		if err := checkHeads(op, "key", kHeads, q.K); err != nil {
			return err
		}
		if kHeads.Dim != dim || q.K.Rows != T {
			return fmt.Errorf("gpu: %s: %d keys of %d for %d queries of %d: %w", op, q.K.Rows, kHeads.Dim, T, dim, ErrShape)
		}
		if err := checkFloats(op, "key weight", q.KWeight, dim); err != nil {
			return err
		}
		k, kw = q.K.Buf, q.KWeight
	} else {
		kHeads = model.Heads{Dim: dim}
	}
	store := !q.Cache.K.Buf.IsZero()
	cacheK, cacheV, v := q.Q.Buf, q.Q.Buf, q.Q.Buf
	if store {
		rowLen := kHeads.Count * dim
		if kHeads.Count == 0 || kHeads.Stride != dim || kHeads.Offset != 0 {
			return fmt.Errorf("gpu: %s: the cache store needs plain key heads, have %+v: %w", op, kHeads, ErrShape)
		}
		if err := sameShape(op, []string{"cache K", "cache V"}, q.Cache.K, q.Cache.V); err != nil {
			return err
		}
		if q.Cache.K.Cols != rowLen || q.Pos+T > q.Cache.K.Rows {
			return fmt.Errorf("gpu: %s: %d rows of %d from position %d into a %d×%d cache: %w",
				op, T, rowLen, q.Pos, q.Cache.K.Rows, q.Cache.K.Cols, ErrShape)
		}
		if err := q.V.check(op, "V"); err != nil {
			return err
		}
		if q.V.Rows != T || q.V.Cols != rowLen {
			return fmt.Errorf("gpu: %s: V is %d×%d, want %d×%d: %w", op, q.V.Rows, q.V.Cols, T, rowLen, ErrShape)
		}
		cacheK, cacheV, v = q.Cache.K.Buf, q.Cache.V.Buf, q.V.Buf
	}
	blocks := q.QHeads.Count + kHeads.Count
	if store {
		blocks += kHeads.Count
	}
	step := float32(math.Pow(float64(q.Rope.Base), float64(float32(-2)/float32(q.Rope.Dims))))
	return ks.launch(s, kNormRope, cuda.Dim3{X: uint32(blocks), Y: uint32(T)}, headThreads, 0,
		cuda.Ptr(q.Q.Buf), i32(q.Q.Cols), i32(q.QHeads.Count), i32(q.QHeads.Stride), i32(q.QHeads.Offset), cuda.Ptr(q.QWeight),
		cuda.Ptr(k), i32(q.K.Cols), i32(kHeads.Count), i32(kHeads.Stride), i32(kHeads.Offset), cuda.Ptr(kw),
		cuda.Ptr(v), cuda.Ptr(cacheK), cuda.Ptr(cacheV), flag(store),
		i32(dim), i32(q.Rope.Dims), cuda.F32(step), i32(q.Pos), cuda.F32(q.Eps), posArg(q.PosAt))
}

// GatedRMSNorm normalises each group of len(w) = n values of x, scales it by
// w and multiplies it by SiLU(z): Gated DeltaNet's output gate. dst may be x.
func (ks *Kernels) GatedRMSNorm(s cuda.Stream, dst, x, z Matrix, w cuda.Buffer, n int, eps float32) error {
	if err := sameShape("GatedRMSNorm", []string{"x", "z", "dst"}, x, z, dst); err != nil {
		return err
	}
	if n <= 0 || x.Cols%n != 0 {
		return fmt.Errorf("gpu: GatedRMSNorm: groups of %d in rows of %d: %w", n, x.Cols, ErrShape)
	}
	if err := checkFloats("GatedRMSNorm", "weight", w, n); err != nil {
		return err
	}
	return ks.launch(s, kGatedRMSNorm, cuda.Dim3{X: uint32(x.Len() / n)}, headThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(x.Buf), cuda.Ptr(z.Buf), cuda.Ptr(w), i32(n), cuda.F32(eps))
}
