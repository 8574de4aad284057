package main

import (
	"io"
	"sync"

	"github.com/rotary-moe/rotary/examples/internal/progress"
	"github.com/rotary-moe/rotary/rotary/model"
)

// prefillProgress shows the prefill's progress, which on a large model
// takes a while: the routing hook counts the tokens each MoE layer has
// routed, so a prompt of T tokens is done at T times the MoE layers.
type prefillProgress struct {
	moeLayers int

	mu     sync.Mutex
	bar    *progress.Bar // nil outside the prefill
	routed int64         // tokens × MoE layers routed
	total  int64
}

// start shows the prefill of a prompt of tokens tokens on w.
func (p *prefillProgress) start(w io.Writer, tokens int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar = progress.New(w, "prefill", progress.Count("tokens"))
	p.routed, p.total = 0, int64(tokens)*int64(max(p.moeLayers, 1))
}

// hook counts a layer's routing (model.WithRoutingHook).
func (p *prefillProgress) hook(rt model.Routing) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil || rt.K == 0 {
		return
	}
	p.routed += int64(len(rt.IDs) / rt.K)
	layers := int64(max(p.moeLayers, 1))
	p.bar.Update(p.routed/layers, p.total/layers)
}

// finish ends the prefill's bar; later routing is the decode's.
func (p *prefillProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}
