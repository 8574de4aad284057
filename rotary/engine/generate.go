package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/sample"
)

// ErrEmptyPrompt: Generate was given a prompt that encodes to no tokens.
var ErrEmptyPrompt = errors.New("engine: empty prompt")

// Open opens the GGUF model at path and an Engine over it (see New). The
// Engine's Close closes the model too.
func Open(ctx context.Context, path string, opts ...Option) (*Engine, error) {
	m, err := experts.OpenModel(path)
	if err != nil {
		return nil, err
	}
	e, err := New(ctx, m, opts...)
	if err != nil {
		return nil, errors.Join(err, m.Close())
	}
	e.ownsModel = true
	return e, nil
}

// A GenerateOption configures Generate.
type GenerateOption interface{ applyGenerate(*generateConfig) }

type generateConfig struct {
	sampler *sample.Sampler
	stream  func(text []byte) error
}

type generateOptionFunc func(*generateConfig)

func (f generateOptionFunc) applyGenerate(c *generateConfig) { f(c) }

// WithSampler chooses the tokens with s (package sample: temperature, top-k,
// penalties, seed) instead of greedily. A Sampler is not safe for concurrent
// use: give each concurrent Generate its own.
func WithSampler(s *sample.Sampler) GenerateOption {
	return generateOptionFunc(func(c *generateConfig) { c.sampler = s })
}

// WithStream calls fn with the text of each generated token as soon as it is
// decoded (complete UTF-8 only: a token that ends inside a character waits
// for the next). An error from fn stops Generate, which returns it.
func WithStream(fn func(text []byte) error) GenerateOption {
	return generateOptionFunc(func(c *generateConfig) { c.stream = fn })
}

// Generation is what Generate produced.
type Generation struct {
	// Prompt and Tokens are the prompt's token ids and the generated ones
	// (without the end-of-generation token that stopped it).
	Prompt, Tokens []int32
	Text           string
	// Stop says why generation stopped: "length" (maxTokens), "end" (an
	// end-of-generation token) or "context" (the sequence is full).
	Stop string
}

// Generate runs prompt through the model as one sequence and generates up to
// maxTokens tokens after it, greedily unless WithSampler is given. The
// prompt is tokenized with its control tokens recognized ("<|im_start|>",
// ...): render a conversation with package chat first to talk to an
// instruction-tuned model. Each call starts a new sequence of at most the
// engine's positions (WithPositions). Concurrent calls take turns, one
// forward step at a time.
func (e *Engine) Generate(ctx context.Context, prompt string, maxTokens int, opts ...GenerateOption) (*Generation, error) {
	var c generateConfig
	for _, o := range opts {
		if o != nil {
			o.applyGenerate(&c)
		}
	}
	if c.sampler == nil {
		var err error
		if c.sampler, err = sample.New(sample.Greedy()); err != nil {
			return nil, err
		}
	}
	if maxTokens < 0 {
		return nil, fmt.Errorf("engine: Generate of %d tokens", maxTokens)
	}
	g := &Generation{Prompt: e.tok.Encode(prompt), Stop: "length"}
	if len(g.Prompt) == 0 {
		return nil, ErrEmptyPrompt
	}
	s := e.model.NewState(e.positions)
	logits, err := e.model.Forward(ctx, s, g.Prompt, model.LastLogits)
	if err != nil {
		return nil, err
	}
	history := slices.Clip(slices.Clone(g.Prompt))
	dec := e.tok.NewDecoder()
	var text []byte
	emit := func(piece []byte) error {
		text = append(text, piece...)
		if c.stream == nil || len(piece) == 0 {
			return nil
		}
		return c.stream(piece)
	}
	for len(g.Tokens) < maxTokens {
		next, err := c.sampler.Sample(logits, history)
		if err != nil {
			return nil, err
		}
		if e.tok.IsEOG(next) {
			g.Stop = "end"
			break
		}
		g.Tokens = append(g.Tokens, next)
		history = append(history, next)
		piece, err := dec.Write(next)
		if err != nil {
			return nil, err
		}
		if err := emit(piece); err != nil {
			return nil, err
		}
		if len(g.Tokens) == maxTokens {
			break
		}
		if s.Pos() == s.Capacity() {
			g.Stop = "context"
			break
		}
		if logits, err = e.model.Forward(ctx, s, []int32{next}, model.LastLogits); err != nil {
			return nil, err
		}
	}
	if err := emit(dec.Flush()); err != nil {
		return nil, err
	}
	g.Text = string(text)
	return g, nil
}
