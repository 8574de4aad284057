package main

import (
	"context"
	"io"
	"slices"
	"time"

	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/sample"
	"github.com/rotary-moe/rotary/rotary/model/tokenizer"
)

// generation is what a run produced and what it cost.
type generation struct {
	Prompt    []int32
	Generated []int32
	Text      []byte
	// Stop is why generation stopped: "length" (-n), "end" (an
	// end-of-generation token), "context" (the context is full) or
	// "interrupted" (a signal, or the run failed mid-way).
	Stop string

	Prefill, Decode phase
	// Total are the runtime's counters since the engine was opened.
	Total engine.Stats
}

// phase is the prefill (the prompt in one forward call) or the decode (one
// forward call per generated token after the first) and the runtime's
// counters over it.
type phase struct {
	Tokens  int
	Elapsed time.Duration
	Experts engine.Stats
}

// TokensPerSecond is the phase's speed, 0 if it ran no tokens.
func (p phase) TokensPerSecond() float64 {
	if p.Tokens == 0 || p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Tokens) / p.Elapsed.Seconds()
}

// generate runs the prompt, then samples up to n tokens, writing their text
// to out as it is decoded. Every forward step's routing is flushed to routes;
// prefilled is called when the prompt has run.
//
// When ctx is done, generation stops after the token in hand (a prefill is
// cut short, a decode step finishes) and generate returns what it has, with
// Stop "interrupted" and no error.
func generate(ctx context.Context, e *engine.Engine, tok *tokenizer.Tokenizer, smp *sample.Sampler, routes *engine.Routes,
	prompt []int32, n, positions int, out io.Writer, prefilled func()) (*generation, error) {
	md := e.Net()
	g := &generation{Prompt: prompt, Stop: "length"}
	s := md.NewState(positions)

	if err := routes.StartSegment("prompt", "prefill"); err != nil {
		return nil, err
	}
	start := time.Now()
	logits, err := md.Forward(ctx, s, prompt, model.LastLogits)
	prefilled()
	g.Prefill = phase{Elapsed: time.Since(start)}
	if err != nil {
		if ctx.Err() == nil {
			return nil, err
		}
		// Tokens the cancelled step routed in part stay out of the trace.
		routes.Discard()
		g.Stop = "interrupted"
		g.Total = e.Stats()
		g.Prefill.Experts = g.Total
		return g, nil
	}
	g.Prefill.Tokens, g.Prefill.Experts = len(prompt), e.Stats()
	if err := routes.StartSegment("generation", "decode"); err != nil {
		return nil, err
	}

	history := slices.Clip(slices.Clone(prompt))
	dec := tok.NewDecoder()
	var decode time.Duration
	defer func() {
		g.Total = e.Stats()
		g.Decode.Elapsed = decode
		g.Decode.Experts = g.Total.Sub(g.Prefill.Experts)
	}()
	for len(g.Generated) < n {
		next, err := smp.Sample(logits, history)
		if err != nil {
			return nil, err
		}
		if tok.IsEOG(next) {
			g.Stop = "end"
			break
		}
		g.Generated = append(g.Generated, next)
		history = append(history, next)
		piece, err := dec.Write(next)
		if err != nil {
			return nil, err
		}
		g.Text = append(g.Text, piece...)
		if _, err := out.Write(piece); err != nil {
			return nil, err
		}
		if len(g.Generated) == n {
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
		// is the one in hand, and the trace and profile keep whole tokens.
		start := time.Now()
		if logits, err = md.Forward(context.WithoutCancel(ctx), s, []int32{next}, model.LastLogits); err != nil {
			return nil, err
		}
		decode += time.Since(start)
		g.Decode.Tokens++
		if err := routes.Flush(); err != nil {
			return nil, err
		}
	}
	rest := dec.Flush()
	g.Text = append(g.Text, rest...)
	if _, err := out.Write(rest); err != nil {
		return nil, err
	}
	if err := routes.Flush(); err != nil {
		return nil, err
	}
	return g, nil
}
