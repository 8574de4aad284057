package model

import "errors"

var (
	// ErrUnsupportedArch: the file's architecture is not one this package runs.
	ErrUnsupportedArch = errors.New("model: unsupported architecture")
	// ErrBadWeights: a tensor the model needs is missing or has the wrong
	// shape or type.
	ErrBadWeights = errors.New("model: bad weights")
	// ErrContextFull: the tokens do not fit in the state's context.
	ErrContextFull = errors.New("model: context full")
	// ErrBadToken: a token id is outside the vocabulary.
	ErrBadToken = errors.New("model: token out of range")
	// ErrInvalid: an argument or option of New is unusable.
	ErrInvalid = errors.New("model: invalid argument")
	// ErrExpertSource: the expert source returned unusable weights.
	ErrExpertSource = errors.New("model: expert source")
)
