package moe

import (
	"errors"
	"fmt"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
)

// Part is one projection of every expert in a plane: its offset within a
// slot and its weight type.
type Part struct {
	Off  int64
	Type experts.Type
}

// Plane is a layer's experts as rotary lays them out on the device: slot s
// starts at byte s·SlotBytes of Buf and holds the expert's gate and up
// projections (FF rows of Embd values each) and its down projection (Embd
// rows of FF values) at the parts' offsets. Buf holds Buf.Size()/SlotBytes
// slots. A dense FFN (the shared expert) is a plane of one slot.
type Plane struct {
	Buf            cuda.Buffer
	SlotBytes      int64
	Gate, Up, Down Part
	FF, Embd       int
}

// planeShape is a checked plane's derived sizes.
type planeShape struct {
	slots            int
	gateRow, downRow int64
}

// check validates the plane: supported types (gate and up of one type),
// whole blocks, and parts that fit their slot.
func (p Plane) check() (planeShape, error) {
	for _, t := range []experts.Type{p.Gate.Type, p.Up.Type, p.Down.Type} {
		if err := Supported(t); err != nil {
			return planeShape{}, err
		}
	}
	if p.Gate.Type != p.Up.Type {
		return planeShape{}, fmt.Errorf("%w: gate %v and up %v differ; the fused kernels take one type for both", ErrUnsupported, p.Gate.Type, p.Up.Type)
	}
	gr, err := checkCols(p.Gate.Type, p.Embd)
	if err != nil {
		return planeShape{}, err
	}
	dr, err := checkCols(p.Down.Type, p.FF)
	if err != nil {
		return planeShape{}, err
	}
	if p.SlotBytes < 1 {
		return planeShape{}, fmt.Errorf("%w: slot of %d bytes", ErrShape, p.SlotBytes)
	}
	for _, part := range []struct {
		name string
		Part
		size int64
	}{{"gate", p.Gate, int64(p.FF) * gr}, {"up", p.Up, int64(p.FF) * gr}, {"down", p.Down, int64(p.Embd) * dr}} {
		a := formats[part.Type].align
		if part.Off < 0 || part.Off%a != 0 || p.SlotBytes%a != 0 || part.Off+part.size > p.SlotBytes {
			return planeShape{}, fmt.Errorf("%w: %s part at %d, %d bytes, in a %d-byte slot (offset and slot size multiples of %d for %v)",
				ErrShape, part.name, part.Off, part.size, p.SlotBytes, a, part.Type)
		}
	}
	slots := p.Buf.Size() / p.SlotBytes
	if slots < 1 {
		return planeShape{}, fmt.Errorf("%w: %d-byte plane holds no %d-byte slot", ErrShape, p.Buf.Size(), p.SlotBytes)
	}
	if slots > 1<<31-1 {
		return planeShape{}, fmt.Errorf("%w: %d slots", ErrShape, slots)
	}
	return planeShape{slots: int(slots), gateRow: gr, downRow: dr}, nil
}

// Check validates the plane as MoE will: nil, or an error wrapping
// ErrUnsupported or ErrShape. Call it when a model is loaded.
func (p Plane) Check() error {
	_, err := p.check()
	return err
}

// moeScratch lays out MoE's scratch.
type moeScratch struct {
	scratchLayout
	xq, h, hq                     int64 // decode
	counts, order, tiles, y, maxT int64 // prefill (and h)
}

func newMoEScratch(tokens, k int, p Plane, slots int, c callConfig) moeScratch {
	var m moeScratch
	P := int64(tokens) * int64(k)
	if c.decode(tokens) {
		if !formats[p.Gate.Type].float {
			m.xq = m.take(int64(tokens) * int64(p.Embd/32) * q8x32Bytes)
		}
		m.h = m.take(P * int64(p.FF) * 4)
		m.hq = m.take(P * int64(p.FF/32) * q8x32Bytes)
		return m
	}
	m.maxT = int64(ceilDiv(int(P), gemmCols)) + min(P, int64(slots))
	m.counts = m.take(int64(slots) * 4)
	m.order = m.take(P * 4)
	m.tiles = m.take((1 + 3*m.maxT) * 4)
	m.h = m.take(P * int64(p.FF) * 4)
	m.y = m.take(P * int64(p.Embd) * 4)
	return m
}

// MoEScratch is the scratch MoE needs for tokens tokens routed to k experts
// each of plane p (0 for a plane that does not check), called with the same
// options.
func MoEScratch(tokens, k int, p Plane, opts ...CallOption) int64 {
	sh, err := p.check()
	if err != nil || tokens < 1 || k < 1 {
		return 0
	}
	m := newMoEScratch(tokens, k, p, sh.slots, callOptions(opts))
	return m.size
}

// MoE queues the routed-expert FFN of a layer on s: for every token t of x
// (tokens rows of p.Embd floats) and its k experts, given as slot ids
// slots[t·k+j] (device int32) with routing weights weights[t·k+j] (device
// float32), dst[t] = Σ_j weights[t·k+j] · down_j(SiLU(gate_j·x[t]) ⊙
// (up_j·x[t])), summed in routing order (no float atomics: the result does
// not depend on scheduling). A token routed to a slot outside the plane gets
// NaN in every value, so the fault shows rather than a plausible number.
//
// Up to DecodeTokens tokens it takes three launches (quantize x, gate and
// up with SiLU, down with the weighted sum; two for float gate weights);
// beyond, four (group the pairs by slot, gate and up GEMM per slot, down
// GEMM per slot, weighted sum), reading each expert's weights once per 64
// pairs routed to it. scratch holds at least MoEScratch(tokens, k, p) bytes.
func (k *Kernels) MoE(s cuda.Stream, dst, x cuda.Buffer, tokens, topK int, slots, weights cuda.Buffer, p Plane, scratch cuda.Buffer, opts ...CallOption) error {
	c := callOptions(opts)
	sh, err := p.check()
	if err != nil {
		return fmt.Errorf("moe: MoE: %w", err)
	}
	if tokens < 1 || topK < 1 || topK > maxTopK || tokens*topK > maxGridY {
		return fmt.Errorf("moe: MoE: %w: %d tokens × %d experts", ErrShape, tokens, topK)
	}
	P := int64(tokens) * int64(topK)
	if err := errors.Join(checkBuf("x", x, int64(tokens)*int64(p.Embd)*4),
		checkBuf("dst", dst, int64(tokens)*int64(p.Embd)*4),
		checkBuf("slots", slots, P*4), checkBuf("weights", weights, P*4)); err != nil {
		return fmt.Errorf("moe: MoE: %w", err)
	}
	m := newMoEScratch(tokens, topK, p, sh.slots, c)
	if scratch.Size() < m.size {
		return fmt.Errorf("moe: MoE: %w: %d bytes, need %d", ErrScratch, scratch.Size(), m.size)
	}
	m.buf = scratch
	k.mu.RLock()
	defer k.mu.RUnlock()
	if c.decode(tokens) {
		err = k.moeDecode(s, dst, x, tokens, topK, slots, weights, p, sh, &m, c)
	} else {
		err = k.moePrefill(s, dst, x, tokens, topK, slots, weights, p, sh, &m, c)
	}
	if err != nil {
		return fmt.Errorf("moe: MoE: %w", err)
	}
	return nil
}

func (k *Kernels) moeDecode(s cuda.Stream, dst, x cuda.Buffer, tokens, topK int, slots, weights cuda.Buffer, p Plane, sh planeShape, m *moeScratch, c callConfig) error {
	gf, df := formats[p.Gate.Type], formats[p.Down.Type]
	gateUp, err := k.kernel("rt_decode_moe_gate_up_"+gf.name, p.Gate.Type)
	if err != nil {
		return err
	}
	down, err := k.kernel("rt_decode_moe_down_"+df.name, p.Down.Type)
	if err != nil {
		return err
	}
	xa := cuda.Ptr(x)
	if !gf.float {
		if err := k.quantize(s, cuda.PtrAt(m.buf, m.xq), x, tokens*p.Embd/32); err != nil {
			return err
		}
		xa = cuda.PtrAt(m.buf, m.xq)
	}
	P := tokens * topK
	gnb := rowBlocks(p.Gate.Type, p.Embd)
	if err := s.Launch(gateUp, cuda.LaunchConfig{Grid: cuda.Dim3{X: uint32(p.FF / 32), Y: uint32(P)}, Block: cuda.Dim3{X: gateUpThreads}},
		cuda.Ptr(p.Buf), cuda.I64(p.SlotBytes), cuda.I64(p.Gate.Off), cuda.I64(p.Up.Off), cuda.I64(sh.gateRow),
		cuda.I32(int32(sh.slots)), cuda.Ptr(slots), xa, cuda.I32(int32(topK)), cuda.I32(int32(p.FF)),
		cuda.I32(int32(gnb)), cuda.I32(int32(lanes(gnb))), cuda.PtrAt(m.buf, m.h), cuda.PtrAt(m.buf, m.hq)); err != nil {
		return err
	}
	ha := cuda.PtrAt(m.buf, m.hq)
	if df.float {
		ha = cuda.PtrAt(m.buf, m.h)
	}
	dnb := rowBlocks(p.Down.Type, p.FF)
	L := lanes(dnb)
	rpw := 32 / L // rows per block: one warp's
	return s.Launch(down, cuda.LaunchConfig{
		Grid:      cuda.Dim3{X: uint32(ceilDiv(p.Embd, rpw)), Y: uint32(tokens)},
		Block:     cuda.Dim3{X: uint32(32 * min(topK, downWarps))},
		SharedMem: uint32(4 * topK * rpw),
	}, cuda.Ptr(p.Buf), cuda.I64(p.SlotBytes), cuda.I64(p.Down.Off), cuda.I64(sh.downRow), cuda.I32(int32(sh.slots)),
		cuda.Ptr(slots), cuda.Ptr(weights), ha, cuda.I32(int32(topK)), cuda.I32(int32(p.Embd)), cuda.I32(int32(dnb)),
		cuda.I32(int32(L)), cuda.Ptr(dst), boolArg(c.accumulate))
}

func (k *Kernels) moePrefill(s cuda.Stream, dst, x cuda.Buffer, tokens, topK int, slots, weights cuda.Buffer, p Plane, sh planeShape, m *moeScratch, c callConfig) error {
	gf, df := formats[p.Gate.Type], formats[p.Down.Type]
	group, err := k.kernel("rt_prefill_moe_group", 0)
	if err != nil {
		return err
	}
	gateUp, err := k.kernel("rt_prefill_moe_gate_up_"+gf.name, p.Gate.Type)
	if err != nil {
		return err
	}
	down, err := k.kernel("rt_prefill_moe_down_"+df.name, p.Down.Type)
	if err != nil {
		return err
	}
	sum, err := k.kernel("rt_prefill_moe_combine", 0)
	if err != nil {
		return err
	}
	if m.maxT > maxGridY {
		return fmt.Errorf("%w: %d tiles", ErrShape, m.maxT)
	}
	P := tokens * topK
	order, tiles := cuda.PtrAt(m.buf, m.order), cuda.PtrAt(m.buf, m.tiles)
	if err := s.Launch(group, cuda.LaunchConfig{Grid: cuda.Dim3{X: 1}, Block: cuda.Dim3{X: groupThreads}},
		cuda.Ptr(slots), cuda.I32(int32(P)), cuda.I32(int32(sh.slots)), cuda.PtrAt(m.buf, m.counts), order, tiles); err != nil {
		return err
	}
	if err := s.Launch(gateUp, cuda.LaunchConfig{Grid: cuda.Dim3{X: uint32(ceilDiv(p.FF, gemmRows)), Y: uint32(m.maxT)}, Block: cuda.Dim3{X: gemmThreads}},
		cuda.Ptr(p.Buf), cuda.I64(p.SlotBytes), cuda.I64(p.Gate.Off), cuda.I64(p.Up.Off), cuda.I64(sh.gateRow),
		tiles, order, cuda.Ptr(x), cuda.I32(int32(topK)), cuda.I32(int32(p.FF)), cuda.I32(int32(p.Embd)),
		cuda.PtrAt(m.buf, m.h)); err != nil {
		return err
	}
	if err := s.Launch(down, cuda.LaunchConfig{Grid: cuda.Dim3{X: uint32(ceilDiv(p.Embd, gemmRows)), Y: uint32(m.maxT)}, Block: cuda.Dim3{X: gemmThreads}},
		cuda.Ptr(p.Buf), cuda.I64(p.SlotBytes), cuda.I64(p.Down.Off), cuda.I64(sh.downRow), tiles, order,
		cuda.PtrAt(m.buf, m.h), cuda.I32(int32(p.Embd)), cuda.I32(int32(p.FF)), cuda.PtrAt(m.buf, m.y)); err != nil {
		return err
	}
	return s.Launch(sum, cuda.LaunchConfig{Grid: cuda.Dim3{X: uint32(ceilDiv(p.Embd, sumThreads)), Y: uint32(tokens)}, Block: cuda.Dim3{X: sumThreads}},
		cuda.PtrAt(m.buf, m.y), cuda.Ptr(slots), cuda.Ptr(weights), cuda.I32(int32(topK)), cuda.I32(int32(p.Embd)),
		cuda.I32(int32(sh.slots)), cuda.Ptr(dst), boolArg(c.accumulate))
}

// PlaneOf describes a layer's plane of rotary's device tier for MoE: its
// gate, up and down parts by role, or a merged gate_up part whose first
// half of rows is the gate. A plane without those parts, or whose parts
// disagree on FF and Embd, is an error wrapping ErrShape; the types are
// checked by MoE (and Plane.Check).
func PlaneOf(p rotary.Plane) (Plane, error) {
	out := Plane{Buf: p.Buf, SlotBytes: p.SlotBytes}
	var have [4]bool
	var gateRows, gateCols, downRows, downCols uint64
	for _, part := range p.Parts {
		if int(part.Role) >= len(have) || have[part.Role] {
			return Plane{}, fmt.Errorf("moe: PlaneOf layer %d: %w: unexpected %v part", p.Layer, ErrShape, part.Role)
		}
		have[part.Role] = true
		switch part.Role {
		case experts.PartGate, experts.PartUp:
			if part.Role == experts.PartGate {
				out.Gate = Part{Off: part.Offset, Type: part.Type}
			} else {
				out.Up = Part{Off: part.Offset, Type: part.Type}
			}
			if gateRows != 0 && (gateRows != part.Rows || gateCols != part.Cols) {
				return Plane{}, fmt.Errorf("moe: PlaneOf layer %d: %w: gate and up shapes differ", p.Layer, ErrShape)
			}
			gateRows, gateCols = part.Rows, part.Cols
		case experts.PartGateUp:
			if part.Rows%2 != 0 {
				return Plane{}, fmt.Errorf("moe: PlaneOf layer %d: %w: gate_up of %d rows", p.Layer, ErrShape, part.Rows)
			}
			gateRows, gateCols = part.Rows/2, part.Cols
			half := part.Size / 2
			out.Gate = Part{Off: part.Offset, Type: part.Type}
			out.Up = Part{Off: part.Offset + half, Type: part.Type}
		case experts.PartDown:
			out.Down = Part{Off: part.Offset, Type: part.Type}
			downRows, downCols = part.Rows, part.Cols
		}
	}
	gated := have[experts.PartGateUp] || (have[experts.PartGate] && have[experts.PartUp])
	if !gated || !have[experts.PartDown] || have[experts.PartGateUp] && (have[experts.PartGate] || have[experts.PartUp]) {
		return Plane{}, fmt.Errorf("moe: PlaneOf layer %d: %w: want gate, up and down parts (or gate_up and down)", p.Layer, ErrShape)
	}
	if downRows != gateCols || downCols != gateRows || gateRows > 1<<31-1 || gateCols > 1<<31-1 {
		return Plane{}, fmt.Errorf("moe: PlaneOf layer %d: %w: gate %d×%d and down %d×%d do not chain", p.Layer, ErrShape, gateRows, gateCols, downRows, downCols)
	}
	out.FF, out.Embd = int(gateRows), int(gateCols)
	return out, nil
}
