package gpu

import (
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/cuda"
)

// Gated DeltaNet shapes the kernels handle.
const (
	// MaxConvKernel is the widest causal convolution (the window is kept
	// in registers).
	MaxConvKernel = 8
	// MaxDeltaHeadDim is the largest DeltaNet head; heads are multiples of 32.
	MaxDeltaHeadDim = 128
	// deltaColumns are the state columns one block of rt_decode_deltanet keeps.
	deltaColumns = 16
)

// ConvSiLU runs the causal depthwise convolution over x (T rows of C
// channels), continuing from state (K-1 rows of C, updated to the batch's
// last K-1 inputs), with kernel C rows of K taps (ggml ne = [K, C]), and
// writes SiLU of the result into dst.
func (ks *Kernels) ConvSiLU(s cuda.Stream, dst, x, state, kernel Matrix) error {
	const op = "ConvSiLU"
	if err := sameShape(op, []string{"x", "dst"}, x, dst); err != nil {
		return err
	}
	if err := kernel.check(op, "kernel"); err != nil {
		return err
	}
	C, K := x.Cols, kernel.Cols
	if kernel.Rows != C || K < 2 || K > MaxConvKernel {
		return fmt.Errorf("gpu: %s: a %d×%d kernel for %d channels (2 to %d taps): %w", op, kernel.Rows, K, C, MaxConvKernel, ErrShape)
	}
	if err := state.check(op, "state"); err != nil {
		return err
	}
	if state.Rows != K-1 || state.Cols != C {
		return fmt.Errorf("gpu: %s: state is %d×%d, want %d×%d: %w", op, state.Rows, state.Cols, K-1, C, ErrShape)
	}
	return ks.launch(s, kConvSiLU, cuda.Dim3{X: uint32(ceilDiv(C, rowThreads))}, rowThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(x.Buf), cuda.Ptr(state.Buf), cuda.Ptr(kernel.Buf), i32(x.Rows), i32(C), i32(K))
}

// DeltaNet is one Gated DeltaNet layer's recurrence over a batch; see
// model.DeltaNet for the layout, which this mirrors on the device.
type DeltaNet struct {
	// QKV: per row KHeads query heads, KHeads key heads, VHeads value heads
	// of HeadDim values (after the convolution). Alpha and Beta: VHeads per
	// row.
	QKV, Alpha, Beta Matrix
	// DTBias and A hold VHeads values each.
	DTBias, A cuda.Buffer
	// State holds VHeads matrices of HeadDim×HeadDim (VHeads·HeadDim rows
	// of HeadDim), updated in place.
	State                   Matrix
	KHeads, VHeads, HeadDim int
	Eps                     float32

	// Z, when it has a buffer, fuses Gated DeltaNet's output norm into the
	// launch: each head's output is written as out / rms(out) · NormWeight
	// · SiLU(z), z laid out as the output (what GatedRMSNorm does with
	// groups of HeadDim). A block then holds a whole head, so there are
	// VHeads blocks rather than VHeads·HeadDim/16.
	Z          Matrix
	NormWeight cuda.Buffer
}

// DeltaNet runs the gated delta rule over the batch token by token, writing
// VHeads outputs of HeadDim per row into dst and updating d.State: one
// launch (the output norm fused in when d.Z is set), the state read and
// written once whatever the batch.
func (ks *Kernels) DeltaNet(s cuda.Stream, dst Matrix, d DeltaNet) error {
	const op = "DeltaNet"
	S, Hk, Hv := d.HeadDim, d.KHeads, d.VHeads
	if S <= 0 || S%32 != 0 || S > MaxDeltaHeadDim || Hk <= 0 || Hv <= 0 || Hv%Hk != 0 {
		return fmt.Errorf("gpu: %s: %d key and %d value heads of %d (multiples of 32 up to %d): %w",
			op, Hk, Hv, S, MaxDeltaHeadDim, ErrShape)
	}
	if err := d.QKV.check(op, "QKV"); err != nil {
		return err
	}
	T := d.QKV.Rows
	for _, m := range []struct {
		name       string
		m          Matrix
		rows, cols int
	}{
		{"QKV", d.QKV, T, (2*Hk + Hv) * S}, {"alpha", d.Alpha, T, Hv}, {"beta", d.Beta, T, Hv},
		{"state", d.State, Hv * S, S}, {"dst", dst, T, Hv * S},
	} {
		if err := m.m.check(op, m.name); err != nil {
			return err
		}
		if m.m.Rows != m.rows || m.m.Cols != m.cols {
			return fmt.Errorf("gpu: %s: %s is %d×%d, want %d×%d: %w", op, m.name, m.m.Rows, m.m.Cols, m.rows, m.cols, ErrShape)
		}
	}
	if err := checkFloats(op, "dt bias", d.DTBias, Hv); err != nil {
		return err
	}
	if err := checkFloats(op, "A", d.A, Hv); err != nil {
		return err
	}
	scale := 1 / float32(math.Sqrt(float64(float32(S))))
	if !d.Z.Buf.IsZero() {
		if err := d.Z.check(op, "Z"); err != nil {
			return err
		}
		if d.Z.Rows != T || d.Z.Cols != Hv*S {
			return fmt.Errorf("gpu: %s: Z is %d×%d, want %d×%d: %w", op, d.Z.Rows, d.Z.Cols, T, Hv*S, ErrShape)
		}
		if err := checkFloats(op, "norm weight", d.NormWeight, S); err != nil {
			return err
		}
		return ks.launch(s, kDeltaNetNorm, cuda.Dim3{X: uint32(Hv)}, 2*headThreads, 0,
			cuda.Ptr(dst.Buf), cuda.Ptr(d.QKV.Buf), cuda.Ptr(d.Alpha.Buf), cuda.Ptr(d.Beta.Buf),
			cuda.Ptr(d.DTBias), cuda.Ptr(d.A), cuda.Ptr(d.State.Buf), cuda.Ptr(d.Z.Buf), cuda.Ptr(d.NormWeight),
			i32(T), i32(Hk), i32(Hv), i32(S), cuda.F32(d.Eps), cuda.F32(scale))
	}
	return ks.launch(s, kDeltaNet, cuda.Dim3{X: uint32(Hv), Y: uint32(ceilDiv(S, deltaColumns))}, headThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(d.QKV.Buf), cuda.Ptr(d.Alpha.Buf), cuda.Ptr(d.Beta.Buf),
		cuda.Ptr(d.DTBias), cuda.Ptr(d.A), cuda.Ptr(d.State.Buf),
		i32(T), i32(Hk), i32(Hv), i32(S), cuda.F32(d.Eps), cuda.F32(scale))
}
