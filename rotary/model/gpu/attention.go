package gpu

import (
	"fmt"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary/model"
)

// Attention shapes the kernels handle.
const (
	// MaxHeadDim is the largest attention head (two values per thread of a
	// 128-thread block keep a decode block's accumulators in registers).
	MaxHeadDim = 2 * headThreads
	// attnTile is the queries of one block: query heads sharing a KV head
	// (rt_decode_attn) or consecutive tokens (rt_prefill_attn).
	attnTile = 8
	// maxSplit bounds the positions of one split, so that a tile's scores
	// fit the default 48 KiB of shared memory.
	maxSplit = 1024
	// minSplit is the shortest split worth a block of its own.
	minSplit = 128
	// targetBlocks is about two blocks per SM of the largest GPUs: with
	// fewer query heads and tokens than that, the sequence is split.
	targetBlocks = 256
)

// Attention is causal softmax attention of the batch in Q (rows at positions
// Pos, Pos+1, ...) over cache rows [0, Pos+row], whose keys and values the
// cache already holds (NormRope stores them).
type Attention struct {
	Q      Matrix
	QHeads model.Heads
	// Gate, when it has a buffer, scales each head's output by sigmoid of
	// the values laid out as GateHeads (qwen35moe's gated attention).
	Gate      Matrix
	GateHeads model.Heads
	KVHeads   int
	Cache     KVCache
	Pos       int
	Scale     float32
	// PosAt, when it has a buffer, holds Pos (an int32) in device memory
	// for the kernels to read when they run, so that a captured graph
	// replays at any position; the splits then cover the whole cache, so
	// the schedule does not depend on Pos.
	PosAt cuda.Buffer

	// Workspace holds the partial results of a split sequence:
	// WorkspaceBytes of it, or nothing when that is 0.
	Workspace cuda.Buffer
	// SplitLen and Kernel fix the schedule: positions per split (0: chosen
	// from the shape) and the kernel (AttnAuto: rt_decode_attn for one or
	// two tokens, rt_prefill_attn for more).
	SplitLen int
	Kernel   AttnKernel
}

// AttnKernel chooses how Attend tiles the queries.
type AttnKernel int

const (
	// AttnAuto tiles heads for batches of one or two tokens, tokens beyond.
	AttnAuto AttnKernel = iota
	// AttnHeads is rt_decode_attn: a block per token and KV head, its tile
	// the query heads that read that KV head.
	AttnHeads
	// AttnTokens is rt_prefill_attn: a block per query head and tile of
	// consecutive tokens.
	AttnTokens
)

// schedule returns the kernel, its grid's y and z (the tiles), the positions
// per split and the number of splits for a's shape.
func (a Attention) schedule() (kernel AttnKernel, y, z, splitLen, splits int) {
	T, n := a.Q.Rows, a.Pos+a.Q.Rows
	if !a.PosAt.IsZero() {
		n = a.Cache.K.Rows
	}
	kernel = a.Kernel
	if kernel == AttnAuto {
		kernel = AttnHeads
		if T > 2 {
			kernel = AttnTokens
		}
	}
	if kernel == AttnHeads {
		y, z = max(a.KVHeads, 1)*ceilDiv(a.QHeads.Count/max(a.KVHeads, 1), attnTile), T
	} else {
		y, z = a.QHeads.Count, ceilDiv(T, attnTile)
	}
	splitLen = a.SplitLen
	if splitLen == 0 {
		want := max(1, ceilDiv(targetBlocks, max(y*z, 1)))
		splitLen = min(max(ceilDiv(n, want), minSplit), maxSplit)
		splitLen = ceilDiv(splitLen, 32) * 32
	}
	return kernel, y, z, splitLen, ceilDiv(n, splitLen)
}

// posArg passes a position held in device memory, or a null pointer.
func posArg(at cuda.Buffer) cuda.Arg {
	if at.IsZero() {
		return cuda.U64(0)
	}
	return cuda.Ptr(at)
}

// WorkspaceBytes is the size of the workspace a's schedule needs: 0 when the
// sequence is not split.
func (a Attention) WorkspaceBytes() int64 {
	_, _, _, _, splits := a.schedule()
	if splits == 1 {
		return 0
	}
	return 4 * int64(a.Q.Rows) * int64(a.QHeads.Count) * int64(splits) * int64(a.QHeads.Dim+2)
}

// Attend writes the attention output of each query head, heads one after the
// other (QHeads.Count·QHeads.Dim values per row), into dst: one launch, or two
// when the sequence is split (partial softmax per split, then a combine).
func (ks *Kernels) Attend(s cuda.Stream, dst Matrix, a Attention) error {
	const op = "Attend"
	if err := a.Q.check(op, "Q"); err != nil {
		return err
	}
	if err := checkHeads(op, "query", a.QHeads, a.Q); err != nil {
		return err
	}
	T, H, dim := a.Q.Rows, a.QHeads.Count, a.QHeads.Dim
	if err := checkBatch(op, T); err != nil {
		return err
	}
	if H == 0 || a.KVHeads <= 0 || H%a.KVHeads != 0 {
		return fmt.Errorf("gpu: %s: %d query heads over %d KV heads: %w", op, H, a.KVHeads, ErrShape)
	}
	if dim > MaxHeadDim {
		return fmt.Errorf("gpu: %s: heads of %d values, at most %d: %w", op, dim, MaxHeadDim, ErrShape)
	}
	if err := dst.check(op, "dst"); err != nil {
		return err
	}
	if dst.Rows != T || dst.Cols != H*dim {
		return fmt.Errorf("gpu: %s: dst is %d×%d, want %d×%d: %w", op, dst.Rows, dst.Cols, T, H*dim, ErrShape)
	}
	if err := sameShape(op, []string{"cache K", "cache V"}, a.Cache.K, a.Cache.V); err != nil {
		return err
	}
	if a.Pos < 0 || a.Cache.K.Cols != a.KVHeads*dim || a.Pos+T > a.Cache.K.Rows {
		return fmt.Errorf("gpu: %s: %d rows from position %d over a %d×%d cache of %d KV heads: %w",
			op, T, a.Pos, a.Cache.K.Rows, a.Cache.K.Cols, a.KVHeads, ErrShape)
	}
	gate, hasGate := a.Q, !a.Gate.Buf.IsZero()
	gateHeads := a.QHeads
	if hasGate {
		if err := a.Gate.check(op, "gate"); err != nil {
			return err
		}
		if err := checkHeads(op, "gate", a.GateHeads, a.Gate); err != nil {
			return err
		}
		if a.Gate.Rows != T || a.GateHeads.Count != H || a.GateHeads.Dim != dim {
			return fmt.Errorf("gpu: %s: gate heads %+v in %d rows for %d heads of %d in %d rows: %w",
				op, a.GateHeads, a.Gate.Rows, H, dim, T, ErrShape)
		}
		gate, gateHeads = a.Gate, a.GateHeads
	}
	kernel, y, z, splitLen, splits := a.schedule()
	if (kernel != AttnHeads && kernel != AttnTokens) || splitLen <= 0 {
		return fmt.Errorf("gpu: %s: kernel %d, split %d: %w", op, kernel, splitLen, ErrShape)
	}
	shared := 4 * (attnTile*dim + attnTile*splitLen + 2*attnTile)
	if shared > 48<<10 {
		return fmt.Errorf("gpu: %s: splits of %d positions need %d bytes of shared memory: %w", op, splitLen, shared, ErrShape)
	}
	partO, partML := dst.Buf, dst.Buf
	if splits > 1 {
		need := a.WorkspaceBytes()
		if a.Workspace.IsZero() || a.Workspace.Size() < need {
			return fmt.Errorf("gpu: %s: %d splits need a workspace of %d bytes, have %d: %w",
				op, splits, need, a.Workspace.Size(), ErrShape)
		}
		oBytes := 4 * int64(T) * int64(H) * int64(splits) * int64(dim)
		var err error
		if partO, err = a.Workspace.Slice(0, oBytes); err != nil {
			return fmt.Errorf("gpu: %s: %w", op, err)
		}
		if partML, err = a.Workspace.Slice(oBytes, need-oBytes); err != nil {
			return fmt.Errorf("gpu: %s: %w", op, err)
		}
	}
	name := kAttnDecode
	if kernel == AttnTokens {
		name = kAttnPrefill
	}
	grid := cuda.Dim3{X: uint32(splits), Y: uint32(y), Z: uint32(z)}
	err := ks.launch(s, name, grid, headThreads, uint32(shared),
		cuda.Ptr(dst.Buf), cuda.Ptr(partO), cuda.Ptr(partML),
		cuda.Ptr(a.Q.Buf), i32(a.Q.Cols), i32(a.QHeads.Stride), i32(a.QHeads.Offset),
		cuda.Ptr(gate.Buf), i32(gate.Cols), i32(gateHeads.Stride), i32(gateHeads.Offset), flag(hasGate),
		cuda.Ptr(a.Cache.K.Buf), cuda.Ptr(a.Cache.V.Buf),
		i32(T), i32(H), i32(a.KVHeads), i32(dim), i32(a.Pos), i32(splitLen), cuda.F32(a.Scale), posArg(a.PosAt))
	if err != nil || splits == 1 {
		return err
	}
	return ks.launch(s, kAttnCombine, cuda.Dim3{X: uint32(H), Y: uint32(T)}, headThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(partO), cuda.Ptr(partML), i32(splits),
		cuda.Ptr(gate.Buf), i32(gate.Cols), i32(gateHeads.Stride), i32(gateHeads.Offset), flag(hasGate),
		i32(H), i32(dim))
}
