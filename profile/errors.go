package profile

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns that is caused by bad input
// wraps one of them, so callers can test with errors.Is.
var (
	// ErrModelMismatch: a profile or trace belongs to a different model than the
	// one it is used with. The error is a *MismatchError naming the field.
	ErrModelMismatch = errors.New("profile: model mismatch")
	// ErrFormat: a profile file or trace is malformed. The error is a *FormatError
	// naming where.
	ErrFormat = errors.New("profile: malformed input")
	// ErrVersion: a profile file or trace has a version this package cannot read.
	ErrVersion = errors.New("profile: unsupported version")
	// ErrOutOfRange: a layer, expert id or routing list does not fit the model.
	ErrOutOfRange = errors.New("profile: out of range")
	// ErrInvalid: an argument is unusable (negative budget, wrong slice length, ...).
	ErrInvalid = errors.New("profile: invalid argument")
)

// MismatchError reports which field of a ModelID differs.
type MismatchError struct {
	Field string // "arch", "layers", "experts", "experts_used" or "tensor_hash"
	Want  any    // the model's value
	Got   any    // the profile's (or trace's) value
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("profile: model mismatch: %s is %v, want %v", e.Field, e.Got, e.Want)
}

// Is reports whether target is ErrModelMismatch.
func (e *MismatchError) Is(target error) bool { return target == ErrModelMismatch }

// FormatError reports malformed input: which format, where in it, and what is wrong.
type FormatError struct {
	Format string // "profile", "trace/jsonl", "trace/binary", "deepseek-csv", ...
	Source string // file name when known
	Where  string // "line 12", "byte 4096", "prompt code", ...
	Msg    string
	Err    error // an underlying error (a JSON syntax error, ErrVersion, ...), if any
}

func (e *FormatError) Error() string {
	s := "profile: " + e.Format
	if e.Source != "" {
		s += " " + e.Source
	}
	if e.Where != "" {
		s += " at " + e.Where
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }
