package moe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
)

// DecodeTokens is the most tokens a call takes the decode path for: GEMV
// kernels on 8-bit activations, reading each weight row once per token
// (from L2 after the first). Larger batches take the prefill path: GEMMs
// that read each weight block once per 64 tokens (or per 64 pairs routed to
// one expert).
const DecodeTokens = 8

// Launch shapes, as the device code assumes them (kernels.cuh).
const (
	gemvThreads   = 128 // four warps
	gateUpThreads = 256 // eight warps over the 32 rows of one activation block
	downWarps     = 8   // experts a decode down block reads at once
	maxTopK       = 256 // experts per token: their partial sums fit shared memory
	gemmThreads   = 256
	gemmRows      = 64 // RT_TM
	gemmCols      = 64 // RT_TN
	groupThreads  = 256
	sumThreads    = 256
	maxGridY      = 65535
	q8x32Bytes    = 40 // sizeof(rt_q8x32)
	scratchAlign  = 256
)

// Kernels are the package's programs loaded on one device. Their methods
// queue work on a stream and may be called from several goroutines.
type Kernels struct {
	mu      sync.RWMutex
	closed  bool
	mods    []cuda.Module
	kernels map[string]cuda.Kernel
}

// Option configures Load.
type Option func(*loadConfig)

type loadConfig struct {
	types []experts.Type
}

// WithTypes loads the kernels of the given weight types only (the
// type-independent ones always), which saves compiling, or emulating, the
// rest. Calls with another type then fail with ErrUnsupported.
func WithTypes(ts ...experts.Type) Option {
	return func(c *loadConfig) { c.types = append(c.types, ts...) }
}

// Load compiles (or finds in the device's kernel cache) and loads the
// programs on dev. A type passed to WithTypes that the package does not
// support is an error wrapping ErrUnsupported.
func Load(ctx context.Context, dev cuda.Device, opts ...Option) (*Kernels, error) {
	var cfg loadConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.types == nil {
		cfg.types = types()
	}
	progs := []*cuda.Program{sharedProgram()}
	seen := make(map[experts.Type]bool)
	for _, t := range cfg.types {
		if err := Supported(t); err != nil {
			return nil, fmt.Errorf("moe: Load: %w", err)
		}
		if !seen[t] {
			seen[t] = true
			progs = append(progs, typeProgram(t))
		}
	}
	k := &Kernels{kernels: make(map[string]cuda.Kernel)}
	for _, p := range progs {
		m, err := dev.Load(ctx, p)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("moe: Load %s: %w", p.Name, err), k.Close())
		}
		k.mods = append(k.mods, m)
		for _, name := range kernelNames(p) {
			fn, err := m.Kernel(name)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("moe: Load %s: %w", p.Name, err), k.Close())
			}
			k.kernels[name] = fn
		}
	}
	return k, nil
}

// kernelNames lists the entry points of a program of this package.
func kernelNames(p *cuda.Program) []string {
	if p.Name == commonProgram {
		return []string{"rt_decode_quantize", "rt_prefill_moe_group", "rt_prefill_moe_combine"}
	}
	for t, f := range formats {
		if p.Name == programName(t) {
			var names []string
			for _, k := range []string{"decode_gemv", "prefill_gemm", "decode_moe_gate_up", "decode_moe_down",
				"prefill_moe_gate_up", "prefill_moe_down", "decode_embed"} {
				names = append(names, "rt_"+k+"_"+f.name)
			}
			return names
		}
	}
	return nil
}

// Close unloads the programs. Work already queued must have completed.
func (k *Kernels) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	k.closed = true
	var errs []error
	for _, m := range k.mods {
		errs = append(errs, m.Close())
	}
	k.mods, k.kernels = nil, nil
	return errors.Join(errs...)
}

// Supported says whether the kernels multiply weights of type t: nil, or an
// error wrapping ErrUnsupported that names the type. Check every tensor
// when a model is loaded, so that a missing type never surfaces in the
// middle of generation.
func Supported(t experts.Type) error {
	if _, ok := formats[t]; !ok {
		return fmt.Errorf("%w: %v", ErrUnsupported, t)
	}
	return nil
}

// Matrix is a weight matrix in device memory: Rows rows of Cols values of
// Type, stored as in a GGUF file (rows of whole blocks, back to back) from
// byte Off of Buf.
type Matrix struct {
	Buf        cuda.Buffer
	Off        int64
	Type       experts.Type
	Rows, Cols int
}

// rowBytes checks the matrix's type and shape and returns its row size.
func (m Matrix) rowBytes() (int64, error) {
	if err := Supported(m.Type); err != nil {
		return 0, err
	}
	rb, err := checkCols(m.Type, m.Cols)
	if err != nil {
		return 0, err
	}
	if a := formats[m.Type].align; m.Rows < 1 || m.Off < 0 || m.Off%a != 0 {
		return 0, fmt.Errorf("%w: %d×%d %v matrix at offset %d (rows ≥ 1, offset a multiple of %d)", ErrShape, m.Rows, m.Cols, m.Type, m.Off, a)
	}
	if need := m.Off + int64(m.Rows)*rb; need > m.Buf.Size() {
		return 0, fmt.Errorf("%w: %d×%d %v matrix at offset %d needs %d bytes, buffer has %d", ErrShape, m.Rows, m.Cols, m.Type, m.Off, need, m.Buf.Size())
	}
	return rb, nil
}

// checkCols checks that cols values of t are whole weight blocks and whole
// activation blocks of 32, and returns their size in bytes.
func checkCols(t experts.Type, cols int) (int64, error) {
	if cols < 1 || cols%32 != 0 || cols%t.BlockSize() != 0 {
		return 0, fmt.Errorf("%w: %d columns of %v (a positive multiple of 32 and of %d)", ErrShape, cols, t, max(32, t.BlockSize()))
	}
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrShape, err)
	}
	return int64(rb), nil
}

// callConfig is what CallOptions set.
type callConfig struct {
	accumulate   bool
	float        bool
	prequantized bool
}

// CallOption modifies one MatMul or MoE call.
type CallOption func(*callConfig)

// Accumulate adds the call's result to dst instead of overwriting it: a
// residual connection, or the shared expert added to the routed ones.
func Accumulate() CallOption { return func(c *callConfig) { c.accumulate = true } }

// FloatActivations computes with float activations whatever the batch: the
// prefill kernels, which dequantize the weights and multiply in float32,
// also for the one to DecodeTokens tokens that otherwise take the decode
// kernels' 8-bit activations. Slower for decode; its results are those of
// a float reference (llama.cpp's run of the dequantised model), which is
// what exactness tests compare with.
func FloatActivations() CallOption { return func(c *callConfig) { c.float = true } }

// Prequantized tells a decode MatMul that scratch already holds x's
// activations quantized: the previous MatMul on the same stream had the same
// x (unchanged since), tokens and columns, and the same scratch. It skips
// the quantize launch, so matrices that share an input (the queries, keys
// and values of a layer, say) quantize it once. Quantized activations are
// the same whatever the weight type. Float weights and prefill ignore it.
func Prequantized() CallOption { return func(c *callConfig) { c.prequantized = true } }

// Quantizes reports whether MatMul of tokens rows by w quantizes x into
// scratch, which a next MatMul of the same x may reuse (Prequantized).
func Quantizes(tokens int, w Matrix, opts ...CallOption) bool {
	return callOptions(opts).decode(tokens) && !formats[w.Type].float
}

// decode reports whether a call of tokens rows takes the decode kernels.
func (c callConfig) decode(tokens int) bool { return tokens <= DecodeTokens && !c.float }

func callOptions(opts []CallOption) (c callConfig) {
	for _, o := range opts {
		o(&c)
	}
	return c
}

func boolArg(b bool) cuda.Arg {
	if b {
		return cuda.I32(1)
	}
	return cuda.I32(0)
}

// lanes is how many lanes of a warp share a row of nb blocks in the decode
// kernels: the power of two at or above nb, at most 32.
func lanes(nb int) int {
	if nb >= 32 {
		return 32
	}
	return 1 << bits.Len(uint(nb-1))
}

// gemvRowsPerBlock is how many rows a decode block of four warps covers.
func gemvRowsPerBlock(L int) int { return gemvThreads / 32 * (32 / L) }

// rowBlocks is the number of weight blocks (for float types, of 32-value
// runs) in a row of cols values: what the decode kernels walk per row.
func rowBlocks(t experts.Type, cols int) int {
	if formats[t].float {
		return cols / 32
	}
	return cols / t.BlockSize()
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func alignUp(n int64) int64 { return (n + scratchAlign - 1) / scratchAlign * scratchAlign }

// scratchLayout hands out aligned regions of a scratch buffer.
type scratchLayout struct {
	buf  cuda.Buffer
	size int64
}

func (s *scratchLayout) take(n int64) int64 {
	off := s.size
	s.size += alignUp(n)
	return off
}

// kernel returns a loaded kernel; a type left out of Load is ErrUnsupported.
func (k *Kernels) kernel(name string, t experts.Type) (cuda.Kernel, error) {
	if k.closed {
		return nil, ErrClosed
	}
	fn, ok := k.kernels[name]
	if !ok {
		return nil, fmt.Errorf("%w: %v kernels not loaded (WithTypes)", ErrUnsupported, t)
	}
	return fn, nil
}

// checkBuf checks that b holds at least n bytes.
func checkBuf(what string, b cuda.Buffer, n int64) error {
	if b.Size() < n {
		return fmt.Errorf("%w: %s needs %d bytes, buffer has %d", ErrShape, what, n, b.Size())
	}
	return nil
}

// MatMulScratch is the scratch MatMul needs for tokens rows of activations
// and the matrix w (0 when it needs none), called with the same options.
func MatMulScratch(tokens int, w Matrix, opts ...CallOption) int64 {
	if !callOptions(opts).decode(tokens) || formats[w.Type].float || w.Cols < 0 {
		return 0
	}
	return alignUp(int64(tokens) * int64(w.Cols/32) * q8x32Bytes)
}

// MatMul queues dst = x·wᵀ on s: dst holds tokens rows of w.Rows floats,
// x tokens rows of w.Cols floats, all in device memory. Up to DecodeTokens
// tokens it takes two launches (quantize x, GEMV; one for float weights),
// beyond one (GEMM). scratch holds at least MatMulScratch(tokens, w) bytes.
func (k *Kernels) MatMul(s cuda.Stream, dst, x cuda.Buffer, tokens int, w Matrix, scratch cuda.Buffer, opts ...CallOption) error {
	c := callOptions(opts)
	rb, err := w.rowBytes()
	if err != nil {
		return fmt.Errorf("moe: MatMul: %w", err)
	}
	if tokens < 1 {
		return fmt.Errorf("moe: MatMul: %w: %d tokens", ErrShape, tokens)
	}
	if err := errors.Join(checkBuf("x", x, int64(tokens)*int64(w.Cols)*4),
		checkBuf("dst", dst, int64(tokens)*int64(w.Rows)*4)); err != nil {
		return fmt.Errorf("moe: MatMul: %w", err)
	}
	if need := MatMulScratch(tokens, w, opts...); scratch.Size() < need {
		return fmt.Errorf("moe: MatMul: %w: %d bytes, need %d", ErrScratch, scratch.Size(), need)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	f := formats[w.Type]
	if !c.decode(tokens) {
		fn, err := k.kernel("rt_prefill_gemm_"+f.name, w.Type)
		if err != nil {
			return fmt.Errorf("moe: MatMul: %w", err)
		}
		if ceilDiv(tokens, gemmCols) > maxGridY {
			return fmt.Errorf("moe: MatMul: %w: %d tokens", ErrShape, tokens)
		}
		return s.Launch(fn, cuda.LaunchConfig{
			Grid:  cuda.Dim3{X: uint32(ceilDiv(w.Rows, gemmRows)), Y: uint32(ceilDiv(tokens, gemmCols))},
			Block: cuda.Dim3{X: gemmThreads},
		}, cuda.PtrAt(w.Buf, w.Off), cuda.I64(rb), cuda.Ptr(x), cuda.Ptr(dst), cuda.I32(int32(w.Rows)),
			cuda.I32(int32(w.Cols)), cuda.I32(int32(tokens)), boolArg(c.accumulate))
	}
	fn, err := k.kernel("rt_decode_gemv_"+f.name, w.Type)
	if err != nil {
		return fmt.Errorf("moe: MatMul: %w", err)
	}
	act := x
	if !f.float {
		if !c.prequantized {
			if err := k.quantize(s, cuda.Ptr(scratch), x, tokens*w.Cols/32); err != nil {
				return fmt.Errorf("moe: MatMul: %w", err)
			}
		}
		act = scratch
	}
	nb := rowBlocks(w.Type, w.Cols)
	L := lanes(nb)
	return s.Launch(fn, cuda.LaunchConfig{
		Grid:  cuda.Dim3{X: uint32(ceilDiv(w.Rows, gemvRowsPerBlock(L))), Y: uint32(tokens)},
		Block: cuda.Dim3{X: gemvThreads},
	}, cuda.PtrAt(w.Buf, w.Off), cuda.I64(rb), cuda.Ptr(act), cuda.Ptr(dst), cuda.I32(int32(w.Rows)),
		cuda.I32(int32(nb)), cuda.I32(int32(L)), boolArg(c.accumulate))
}

// quantize queues n activation blocks of x into dst.
func (k *Kernels) quantize(s cuda.Stream, dst cuda.Arg, x cuda.Buffer, n int) error {
	fn, err := k.kernel("rt_decode_quantize", 0)
	if err != nil {
		return err
	}
	warps := gemvThreads / 32
	return s.Launch(fn, cuda.LaunchConfig{Grid: cuda.Dim3{X: uint32(ceilDiv(n, warps))}, Block: cuda.Dim3{X: gemvThreads}},
		cuda.Ptr(x), dst, cuda.I32(int32(n)))
}

// embedThreads is the runs of 32 values one embedding block writes.
const embedThreads = 128

// Embed queues the gather of an embedding table on s: row i of dst (n rows
// of table.Cols floats) becomes row tokens[i] of table dequantized, for the
// n int32 token ids in the device buffer tokens. The ids stay on the device;
// one that is not a row of the table (negative, or table.Rows or more) fills
// its row of dst with NaN instead of reading past the table, as a bad slot
// does in MoE. One launch.
func (k *Kernels) Embed(s cuda.Stream, dst cuda.Buffer, table Matrix, tokens cuda.Buffer, n int) error {
	rb, err := table.rowBytes()
	if err != nil {
		return fmt.Errorf("moe: Embed: %w", err)
	}
	if n < 1 || n > math.MaxInt32 {
		return fmt.Errorf("moe: Embed: %w: %d tokens", ErrShape, n)
	}
	if err := errors.Join(checkBuf("tokens", tokens, int64(n)*4),
		checkBuf("dst", dst, int64(n)*int64(table.Cols)*4)); err != nil {
		return fmt.Errorf("moe: Embed: %w", err)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	fn, err := k.kernel("rt_decode_embed_"+formats[table.Type].name, table.Type)
	if err != nil {
		return fmt.Errorf("moe: Embed: %w", err)
	}
	return s.Launch(fn, cuda.LaunchConfig{
		Grid:  cuda.Dim3{X: uint32(n), Y: uint32(ceilDiv(table.Cols/32, embedThreads))},
		Block: cuda.Dim3{X: embedThreads},
	}, cuda.PtrAt(table.Buf, table.Off), cuda.I64(rb), cuda.I32(int32(table.Rows)), cuda.I32(int32(table.Cols)),
		cuda.Ptr(tokens), cuda.Ptr(dst))
}
