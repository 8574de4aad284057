package rotary

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrBudget means a VRAM or host budget too small for what the model
	// needs; the error is a *BudgetError naming the numbers.
	ErrBudget = errors.New("rotary: budget too small")
	// ErrNoExperts means a layer without routed experts.
	ErrNoExperts = errors.New("rotary: layer has no routed experts")
	// ErrExpertRange means an expert id outside [0, experts of the layer).
	ErrExpertRange = errors.New("rotary: expert id out of range")
	// ErrDuplicate means an expert id requested twice in one Acquire.
	ErrDuplicate = errors.New("rotary: expert requested twice")
	// ErrTooMany means an Acquire for more experts than the layer's slots can
	// hold at once.
	ErrTooMany = errors.New("rotary: more experts than slots")
	// ErrReleased means a Set released twice, or one of another Runtime.
	ErrReleased = errors.New("rotary: set already released")
	// ErrClosed means use of a closed Runtime.
	ErrClosed = errors.New("rotary: runtime closed")
	// ErrSize means a size that ParseSize cannot read.
	ErrSize = errors.New("rotary: bad size")
	// ErrInvalid means an option or argument that makes no sense (a negative
	// budget, a hot set of another model, an empty trace, ...).
	ErrInvalid = errors.New("rotary: invalid argument")
	// ErrOnDevice is returned by calls that decide a layer's residency
	// (Acquire, Prefetch, Repin) once Handover gave it to the device.
	ErrOnDevice = errors.New("rotary: the layer's residency is on the device")
)

// BudgetError is a budget that cannot hold what it must: Need bytes of What,
// Have bytes left for it. Parts explain how Need or Have came about; Least
// is the smallest budget that works, all other options equal.
type BudgetError struct {
	Budget string // "VRAM" or "host"
	What   string // what does not fit, e.g. "working set (top-8 experts of 40 layers)"
	Need   int64
	Have   int64
	Parts  []string // e.g. "16.0 GiB budget", "- 2.1 GiB non-expert weights"
	Least  int64
}

func (e *BudgetError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rotary: %s budget too small: %s needs %s, %s left", e.Budget, e.What, FormatSize(e.Need), FormatSize(e.Have))
	if len(e.Parts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(e.Parts, " "))
	}
	if e.Least > 0 {
		fmt.Fprintf(&b, "; the least %s budget that works is %s", e.Budget, formatSizeUp(e.Least))
	}
	return b.String()
}

// Is makes every BudgetError match ErrBudget.
func (e *BudgetError) Is(target error) bool { return target == ErrBudget }
