package moe

import "errors"

var (
	// ErrUnsupported means a weight type the kernels cannot multiply, or one
	// Load was told to leave out (WithTypes).
	ErrUnsupported = errors.New("moe: unsupported weight type")
	// ErrShape means a matrix, plane or call whose sizes do not fit: columns
	// that are not whole blocks, a buffer shorter than the shape needs, a
	// slot that does not hold its parts, a grid past the device's limits.
	ErrShape = errors.New("moe: bad shape")
	// ErrScratch means a scratch buffer smaller than the call needs
	// (MatMulScratch, MoEScratch).
	ErrScratch = errors.New("moe: scratch too small")
	// ErrClosed means use of closed Kernels.
	ErrClosed = errors.New("moe: kernels closed")
)
