package gpu

import (
	"fmt"

	"github.com/rotary-moe/rotary/cuda"
)

// Routing says where Route writes a batch's expert choice and how it is made.
type Routing struct {
	// IDs (int32) and Weights (float32) receive K values per token, most
	// probable first.
	IDs, Weights cuda.Buffer
	K            int
	// Normalize divides each token's weights by their sum.
	Normalize bool
	// Sigmoid scores experts by sigmoid of their logit instead of softmax.
	Sigmoid bool
}

// Route turns router logits (one row of experts per token) into each token's
// top r.K experts, in one launch and with the CPU backend's exact ranking
// (ties to the lower id), so the expert choices are identical.
func (ks *Kernels) Route(s cuda.Stream, r Routing, logits Matrix) error {
	const op = "Route"
	if err := logits.check(op, "logits"); err != nil {
		return err
	}
	E := logits.Cols
	if r.K <= 0 || r.K > E {
		return fmt.Errorf("gpu: %s: top %d of %d experts: %w", op, r.K, E, ErrShape)
	}
	if 4*E > 48<<10 {
		return fmt.Errorf("gpu: %s: %d experts do not fit shared memory: %w", op, E, ErrShape)
	}
	n := logits.Rows * r.K
	if err := checkFloats(op, "IDs", r.IDs, n); err != nil {
		return err
	}
	if err := checkFloats(op, "weights", r.Weights, n); err != nil {
		return err
	}
	return ks.launch(s, kRoute, cuda.Dim3{X: uint32(logits.Rows)}, routeThreads, uint32(4*E),
		cuda.Ptr(r.IDs), cuda.Ptr(r.Weights), cuda.Ptr(logits.Buf), i32(E), i32(r.K), flag(r.Normalize), flag(r.Sigmoid))
}

// routeThreads is rt_decode_route's block.
const routeThreads = 256
