package tokenizer

import "errors"

var (
	// ErrUnsupported reports a tokenizer model or pre-tokenizer this package
	// does not implement.
	ErrUnsupported = errors.New("tokenizer: unsupported tokenizer")
	// ErrInvalidVocab reports vocabulary data that cannot form a tokenizer.
	ErrInvalidVocab = errors.New("tokenizer: invalid vocabulary")
	// ErrUnknownToken reports a token id outside the vocabulary.
	ErrUnknownToken = errors.New("tokenizer: unknown token id")
)
