package prefetch

import "errors"

var (
	// ErrInvalid: an argument is unusable (a nil predictor, a weight that is
	// not finite, a matrix of the wrong size, ...).
	ErrInvalid = errors.New("prefetch: invalid argument")
	// ErrNoHidden: a predictor that needs the hidden state was given none.
	ErrNoHidden = errors.New("prefetch: no hidden state")
	// ErrNoTransitions: a profile holds no transition counts (record it with
	// profile.WithTransitions).
	ErrNoTransitions = errors.New("prefetch: profile without transition counts")
	// ErrLayer: a layer that does not route tokens, or has no layer after it.
	ErrLayer = errors.New("prefetch: not a routed layer")
)
