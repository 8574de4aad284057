package experts

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownType means a type id that llama.cpp does not define.
	ErrUnknownType = errors.New("experts: unknown ggml type")
	// ErrUnsupportedType means a known type this package cannot dequantize.
	ErrUnsupportedType = errors.New("experts: unsupported ggml type")
)

// Errors of the GGUF reader. A malformed file gives a *FormatError whose Err
// wraps one of these, so callers can test the kind of failure with errors.Is
// and find where it happened with errors.As.
var (
	// ErrNotGGUF means the file does not start with the GGUF magic.
	ErrNotGGUF = errors.New("experts: not a GGUF file")
	// ErrUnsupportedVersion means a GGUF version other than 2 or 3, or a
	// big-endian file.
	ErrUnsupportedVersion = errors.New("experts: unsupported GGUF version")
	// ErrTruncated means the file ends before a header field or a tensor's data.
	ErrTruncated = errors.New("experts: unexpected end of file")
	// ErrLimit means a count or length exceeds one of the reader's limits
	// (MaxStringLength, MaxArrayLength, ...).
	ErrLimit = errors.New("experts: limit exceeded")
	// ErrMalformed means a field holds an impossible value: a zero dimension,
	// a misaligned or overlapping tensor, an alignment that is not a power of
	// two, an empty key.
	ErrMalformed = errors.New("experts: malformed GGUF")
	// ErrDuplicate means two metadata keys or two tensors share a name.
	ErrDuplicate = errors.New("experts: duplicate name")
	// ErrUnknownValueType means a metadata value type id outside the GGUF spec.
	ErrUnknownValueType = errors.New("experts: unknown metadata value type")
)

// Errors of metadata look-ups, the mapping and the model view.
var (
	// ErrKeyNotFound means a metadata key is absent.
	ErrKeyNotFound = errors.New("experts: metadata key not found")
	// ErrValueType means a metadata value exists but has another type than
	// the one asked for, or does not fit it.
	ErrValueType = errors.New("experts: metadata value of wrong type")
	// ErrClosed means the File was closed.
	ErrClosed = errors.New("experts: file closed")
	// ErrFault means reading the mapping raised a page fault, typically
	// because the file was truncated after it was mapped.
	ErrFault = errors.New("experts: page fault reading mapped file")
	// ErrNoExperts means a model has no stacked expert tensors.
	ErrNoExperts = errors.New("experts: model has no expert tensors")
	// ErrInconsistentModel means the tensors disagree with each other or with
	// the hyper-parameters (an expert tensor with the wrong expert count,
	// a layer lacking its down projection, ...).
	ErrInconsistentModel = errors.New("experts: inconsistent model")
	// ErrOutOfRange means a layer or expert index the model does not have.
	ErrOutOfRange = errors.New("experts: index out of range")
)

// FormatError reports a malformed GGUF file: which field, at which byte
// offset, and what is wrong with it. Err wraps one of the package's sentinel
// errors.
type FormatError struct {
	Path   string // file name; empty when parsing bytes that came from elsewhere
	Field  string // the field being read, e.g. `tensor "blk.0.ffn_up_exps.weight" dims[2]`
	Offset int64  // byte offset of the field in the file
	Err    error
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("experts: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%s at offset %d: %s", e.Field, e.Offset, strings.TrimPrefix(e.Err.Error(), "experts: "))
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Err }
