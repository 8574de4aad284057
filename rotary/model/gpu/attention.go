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
	// prefillTile is rt_attn_prefill's queries per block.
	prefillTile = 8
	// maxDecodeSplit and maxPrefillSplit bound the positions of one split,
	// so that its scores fit the default 48 KiB of shared memory.
	maxDecodeSplit  = 4096
	maxPrefillSplit = 1024
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

	// Workspace holds the partial results of a split sequence:
	// WorkspaceBytes of it, or nothing when that is 0.
	Workspace cuda.Buffer
	// SplitLen and Tile fix the schedule: positions per split (0: chosen
	// from the shape) and queries per block (0: chosen; 1: the decode
	// kernel; 8: the prefill tile).
	SplitLen, Tile int
}

// schedule returns the queries per block, the positions per split and the
// number of splits for a's shape.
func (a Attention) schedule() (tile, splitLen, splits int) {
	T, n := a.Q.Rows, a.Pos+a.Q.Rows
	tile = a.Tile
	if tile == 0 {
		tile = 1
		if T > 2 {
			tile = prefillTile
		}
	}
	maxSplit := maxDecodeSplit
	if tile > 1 {
		maxSplit = maxPrefillSplit
	}
	splitLen = a.SplitLen
	if splitLen == 0 {
		want := max(1, ceilDiv(targetBlocks, a.QHeads.Count*ceilDiv(T, tile)))
		splitLen = min(max(ceilDiv(n, want), minSplit), maxSplit)
		splitLen = ceilDiv(splitLen, 32) * 32
	}
	return tile, splitLen, ceilDiv(n, splitLen)
}

// WorkspaceBytes is the size of the workspace a's schedule needs: 0 when the
// sequence is not split.
func (a Attention) WorkspaceBytes() int64 {
	_, _, splits := a.schedule()
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
	tile, splitLen, splits := a.schedule()
	if (tile != 1 && tile != prefillTile) || splitLen <= 0 {
		return fmt.Errorf("gpu: %s: tile %d, split %d: %w", op, tile, splitLen, ErrShape)
	}
	shared := 4 * (tile*dim + tile*splitLen + 2*tile)
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
	if tile > 1 {
		name = kAttnPrefill
	}
	grid := cuda.Dim3{X: uint32(splits), Y: uint32(H), Z: uint32(ceilDiv(T, tile))}
	err := ks.launch(s, name, grid, headThreads, uint32(shared),
		cuda.Ptr(dst.Buf), cuda.Ptr(partO), cuda.Ptr(partML),
		cuda.Ptr(a.Q.Buf), i32(a.Q.Cols), i32(a.QHeads.Stride), i32(a.QHeads.Offset),
		cuda.Ptr(gate.Buf), i32(gate.Cols), i32(gateHeads.Stride), i32(gateHeads.Offset), flag(hasGate),
		cuda.Ptr(a.Cache.K.Buf), cuda.Ptr(a.Cache.V.Buf),
		i32(T), i32(H), i32(a.KVHeads), i32(dim), i32(a.Pos), i32(splitLen), cuda.F32(a.Scale))
	if err != nil || splits == 1 {
		return err
	}
	return ks.launch(s, kAttnCombine, cuda.Dim3{X: uint32(H), Y: uint32(T)}, headThreads, 0,
		cuda.Ptr(dst.Buf), cuda.Ptr(partO), cuda.Ptr(partML), i32(splits),
		cuda.Ptr(gate.Buf), i32(gate.Cols), i32(gateHeads.Stride), i32(gateHeads.Offset), flag(hasGate),
		i32(H), i32(dim))
}
