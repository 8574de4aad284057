package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/sample"
)

var (
	// ErrEmptyPrompt: Generate was given a prompt that encodes to no tokens.
	ErrEmptyPrompt = errors.New("engine: empty prompt")
	// ErrRoutesNotHooked: Generate was given WithRoutes(r), but the prompt
	// ran without calling r.Hook: the engine's model was not opened with
	// it as its routing hook, and the trace would stay empty.
	ErrRoutesNotHooked = errors.New("engine: WithRoutes: the model's routing hook does not feed these Routes")
)

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
	sampler   *sample.Sampler
	stream    func(text []byte) error
	routes    *Routes
	prefilled func()
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

// WithRoutes has Generate write the routing of its forward steps through r:
// the prompt's prefill and the generation's decode as trace segments
// ("prompt", "prefill" and "generation", "decode"), every step's tokens
// flushed as it ends, and a prefill that ctx cut short discarded. r must be
// fed by the engine's model (WithModelOptions(model.WithRoutingHook(r.Hook))
// at New; otherwise Generate fails with ErrRoutesNotHooked), and used by one
// Generate at a time.
func WithRoutes(r *Routes) GenerateOption {
	return generateOptionFunc(func(c *generateConfig) { c.routes = r })
}

// WithPrefilled calls fn when the prompt's forward step has returned, done
// or cut short, before the first token is sampled: the end of a prefill
// progress display, say.
func WithPrefilled(fn func()) GenerateOption {
	return generateOptionFunc(func(c *generateConfig) { c.prefilled = fn })
}

// Generation is what Generate produced and what it cost.
type Generation struct {
	// Prompt and Tokens are the prompt's token ids and the generated ones
	// (without the end-of-generation token that stopped it).
	Prompt, Tokens []int32
	Text           string
	// Stop says why generation stopped: "length" (maxTokens), "end" (an
	// end-of-generation token), "context" (the sequence is full) or
	// "interrupted" (ctx was done: ctx.Err says why).
	Stop string
	// Prefill is the prompt's forward step; Decode the forward steps of
	// the generated tokens but the last, which is sampled, never run.
	Prefill, Decode Phase
}

// Phase is one part of a generation: its forward steps' tokens, their time
// (sampling excluded), and the engine's counters over them. Concurrent
// Generate calls share the engine, so the counters of each include the
// others' steps between its own.
type Phase struct {
	Tokens  int
	Elapsed time.Duration
	Stats   Stats
}

// TokensPerSecond is the phase's speed, 0 if it ran no tokens.
func (p Phase) TokensPerSecond() float64 {
	if p.Tokens == 0 || p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Tokens) / p.Elapsed.Seconds()
}

// Generate runs prompt through the model as one sequence and generates up to
// maxTokens tokens after it, greedily unless WithSampler is given. The
// prompt is tokenized with its control tokens recognized ("<|im_start|>",
// ...): render a conversation with package chat first to talk to an
// instruction-tuned model. Each call starts a new sequence of at most the
// engine's positions (WithPositions). Concurrent calls take turns, one
// forward step at a time.
//
// When ctx is done, Generate stops after the token in hand — a prefill is
// cut short, a decode step runs to its end, so the routing and the counters
// hold whole tokens — and returns what it has with Stop "interrupted" and
// no error.
func (e *Engine) Generate(ctx context.Context, prompt string, maxTokens int, opts ...GenerateOption) (*Generation, error) {
	return e.GenerateTokens(ctx, e.tok.Encode(prompt), maxTokens, opts...)
}

// GenerateTokens is Generate of a prompt already tokenized (with Tokenizer,
// or chat templates the caller applied).
func (e *Engine) GenerateTokens(ctx context.Context, prompt []int32, maxTokens int, opts ...GenerateOption) (*Generation, error) {
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
	if len(prompt) == 0 {
		return nil, ErrEmptyPrompt
	}
	g := &Generation{Prompt: prompt, Stop: "length"}
	s, err := e.takeState()
	if err != nil {
		return nil, err
	}
	defer e.putState(s)

	if err := c.routes.StartSegment("prompt", "prefill"); err != nil {
		return nil, err
	}
	var hooked int
	if c.routes != nil {
		hooked = c.routes.calls
	}
	before := e.Stats()
	start := time.Now()
	logits, err := e.model.Forward(ctx, s, prompt, model.LastLogits)
	if c.prefilled != nil {
		c.prefilled()
	}
	g.Prefill.Elapsed = time.Since(start)
	prefilled := e.Stats()
	g.Prefill.Stats = prefilled.Sub(before)
	if err != nil {
		if ctx.Err() == nil {
			return nil, err
		}
		// Tokens the cancelled step routed in part stay out of the trace.
		c.routes.Discard()
		g.Stop = "interrupted"
		return g, nil
	}
	g.Prefill.Tokens = len(prompt)
	if c.routes != nil && c.routes.calls == hooked {
		return nil, ErrRoutesNotHooked
	}
	if err := c.routes.StartSegment("generation", "decode"); err != nil {
		return nil, err
	}

	history := slices.Clip(slices.Clone(prompt))
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
		if ctx.Err() != nil {
			g.Stop = "interrupted"
			break
		}
		// The step runs to its end even if ctx is done meanwhile: its token
		// is the one in hand.
		start := time.Now()
		if logits, err = e.model.Forward(context.WithoutCancel(ctx), s, []int32{next}, model.LastLogits); err != nil {
			return nil, err
		}
		g.Decode.Elapsed += time.Since(start)
		g.Decode.Tokens++
		if err := c.routes.Flush(); err != nil {
			return nil, err
		}
	}
	g.Decode.Stats = e.Stats().Sub(prefilled)
	if err := emit(dec.Flush()); err != nil {
		return nil, err
	}
	if err := c.routes.Flush(); err != nil {
		return nil, err
	}
	g.Text = string(text)
	return g, nil
}
