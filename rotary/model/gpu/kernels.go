package gpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotary-moe/rotary/cuda"
)

// ErrShape means a launch's arguments do not fit together: a matrix larger
// than its buffer, mismatched rows or columns, a head layout outside its
// rows, or a size a kernel does not support (each error says which).
var ErrShape = errors.New("gpu: bad shape")

// Matrix is Rows×Cols float32 values, row after row, at the start of Buf.
type Matrix struct {
	Buf        cuda.Buffer
	Rows, Cols int
}

// Len is the number of values.
func (m Matrix) Len() int { return m.Rows * m.Cols }

// check verifies that m is non-empty and fits its buffer; op and what name
// the launch and the argument in the error.
func (m Matrix) check(op, what string) error {
	if m.Rows <= 0 || m.Cols <= 0 {
		return fmt.Errorf("gpu: %s: %s is %d×%d: %w", op, what, m.Rows, m.Cols, ErrShape)
	}
	return checkFloats(op, what, m.Buf, m.Len())
}

// checkFloats verifies that b holds at least n float32 values.
func checkFloats(op, what string, b cuda.Buffer, n int) error {
	if b.IsZero() {
		return fmt.Errorf("gpu: %s: %s has no buffer: %w", op, what, ErrShape)
	}
	if b.Size() < 4*int64(n) {
		return fmt.Errorf("gpu: %s: %s needs %d values, its buffer holds %d bytes: %w", op, what, n, b.Size(), ErrShape)
	}
	return nil
}

// sameShape verifies that every matrix has the shape of the first.
func sameShape(op string, names []string, ms ...Matrix) error {
	for i, m := range ms {
		if err := m.check(op, names[i]); err != nil {
			return err
		}
		if m.Rows != ms[0].Rows || m.Cols != ms[0].Cols {
			return fmt.Errorf("gpu: %s: %s is %d×%d, %s %d×%d: %w", op, names[i], m.Rows, m.Cols, names[0], ms[0].Rows, ms[0].Cols, ErrShape)
		}
	}
	return nil
}

// Kernels are the model's kernels loaded on one device. Their methods queue
// one or two launches on a stream and return without waiting; arguments are
// checked first, and a bad one is an error matching ErrShape with
// nothing queued. A Kernels may be used from several goroutines: it holds no
// state besides the loaded modules.
type Kernels struct {
	modules []cuda.Module
	k       map[string]cuda.Kernel
}

// Load compiles (or finds in the device's kernel cache) and loads every
// program of Programs on dev.
func Load(ctx context.Context, dev cuda.Device) (*Kernels, error) {
	ks := &Kernels{k: make(map[string]cuda.Kernel)}
	for _, p := range Programs() {
		m, err := dev.Load(ctx, p)
		if err != nil {
			ks.Close()
			return nil, fmt.Errorf("gpu: loading %s: %w", p.Name, err)
		}
		ks.modules = append(ks.modules, m)
	}
	for i, p := range programs {
		for _, name := range p.kernels {
			k, err := ks.modules[i].Kernel(name)
			if err != nil {
				ks.Close()
				return nil, fmt.Errorf("gpu: %s: %w", p.name, err)
			}
			ks.k[name] = k
		}
	}
	return ks, nil
}

// Close unloads the modules. Work already queued is the device's to finish.
func (ks *Kernels) Close() error {
	var errs []error
	for _, m := range ks.modules {
		errs = append(errs, m.Close())
	}
	ks.modules = nil
	return errors.Join(errs...)
}

// launch queues kernel name on s.
func (ks *Kernels) launch(s cuda.Stream, name string, grid cuda.Dim3, block, shared uint32, args ...cuda.Arg) error {
	cfg := cuda.LaunchConfig{Grid: grid, Block: cuda.Dim3{X: block, Y: 1, Z: 1}, SharedMem: shared}
	if grid.Y == 0 {
		cfg.Grid.Y = 1
	}
	if grid.Z == 0 {
		cfg.Grid.Z = 1
	}
	if err := s.Launch(ks.k[name], cfg, args...); err != nil {
		return fmt.Errorf("gpu: %s: %w", name, err)
	}
	return nil
}

// i32 converts a checked size or index to a kernel's int argument.
func i32(v int) cuda.Arg { return cuda.I32(int32(v)) }

// flag is a kernel's int argument for a condition.
func flag(b bool) cuda.Arg {
	if b {
		return cuda.I32(1)
	}
	return cuda.I32(0)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// maxGridY is the most blocks a launch's grid has along y and z, where
// several kernels put the batch's rows.
const maxGridY = 65535

// checkBatch verifies that a batch of rows fits a grid's y dimension.
func checkBatch(op string, rows int) error {
	if rows > maxGridY {
		return fmt.Errorf("gpu: %s: a batch of %d rows, at most %d: %w", op, rows, maxGridY, ErrShape)
	}
	return nil
}
