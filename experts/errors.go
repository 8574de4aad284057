package experts

import "errors"

var (
	// ErrUnknownType means a type id that llama.cpp does not define.
	ErrUnknownType = errors.New("experts: unknown ggml type")
	// ErrUnsupportedType means a known type this package cannot dequantize.
	ErrUnsupportedType = errors.New("experts: unsupported ggml type")
)
