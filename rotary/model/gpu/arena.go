package gpu

import (
	"errors"
	"fmt"

	"github.com/rotary-moe/rotary/cuda"
)

// arenaAlign aligns every tensor of the arena (the kernels' vector loads
// and the GPU's memory transactions want at least 16 bytes; 256 is what
// cuMemAlloc itself guarantees).
const arenaAlign = 256

// minArena is the first chunk's size.
const minArena = 1 << 20

// arena hands out a step's tensors from device memory that is reused step
// after step, so a step allocates nothing once the arena has grown to the
// largest step: one allocation of the device, the tensors at the same
// addresses each time a step of the same shape comes back (what a captured
// graph needs).
type arena struct {
	dev cuda.Device
	// chunks are the arena's memory; a step that outgrows the last one gets
	// another, and the next reset replaces them with one of their total.
	chunks []cuda.Buffer
	// gen counts the changes of the chunks: tensors taken at one
	// generation lie at the same addresses step after step.
	gen   uint64
	used  int64 // bytes taken from the last chunk
	taken int64 // bytes taken this step, over all chunks
	peak  int64 // the most bytes a step has taken
}

// take returns n bytes (rounded up to arenaAlign) valid until the next
// reset. n == 0 is the zero Buffer: a launch that needs no workspace.
func (a *arena) take(n int64) (cuda.Buffer, error) {
	if n < 0 {
		return cuda.Buffer{}, fmt.Errorf("gpu: arena: %d bytes", n)
	}
	if n == 0 {
		return cuda.Buffer{}, nil
	}
	n = (n + arenaAlign - 1) / arenaAlign * arenaAlign
	if len(a.chunks) == 0 || a.used+n > a.chunks[len(a.chunks)-1].Size() {
		// Only what is missing: an arena sized by StepBytes that a step
		// outgrows takes no more memory than the step needs. The next
		// reset makes the chunks one.
		if err := a.grow(max(n, minArena)); err != nil {
			return cuda.Buffer{}, err
		}
	}
	buf, err := a.chunks[len(a.chunks)-1].Slice(a.used, n)
	if err != nil {
		return cuda.Buffer{}, err
	}
	a.used += n
	a.taken += n
	a.peak = max(a.peak, a.taken)
	return buf, nil
}

// grow adds a chunk of size bytes, taken from from now on.
func (a *arena) grow(size int64) error {
	c, err := a.dev.Alloc(size)
	if err != nil {
		return fmt.Errorf("gpu: arena of %d bytes: %w", size, err)
	}
	a.chunks = append(a.chunks, c)
	a.gen++
	a.used = 0
	return nil
}

// size is the arena's device memory.
func (a *arena) size() int64 {
	var n int64
	for _, c := range a.chunks {
		n += c.Size()
	}
	return n
}

// reset makes the arena's memory free for the next step; the stream must
// be idle (BeginStep waited for it). An arena that grew in several chunks
// becomes one of their total.
func (a *arena) reset() error {
	if len(a.chunks) > 1 {
		total := a.taken
		if err := a.free(); err != nil {
			return err
		}
		c, err := a.dev.Alloc(total)
		if err != nil {
			return fmt.Errorf("gpu: arena of %d bytes: %w", total, err)
		}
		a.chunks = append(a.chunks, c)
		a.gen++
	}
	a.used, a.taken = 0, 0
	return nil
}

// free releases the arena's memory; the stream must be idle (or failed).
func (a *arena) free() error {
	var errs []error
	for _, c := range a.chunks {
		errs = append(errs, a.dev.Free(c))
	}
	a.chunks = a.chunks[:0]
	a.gen++
	a.used = 0
	return errors.Join(errs...)
}
