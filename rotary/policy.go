package rotary

import (
	"sync"

	"github.com/rotary-moe/rotary/rotary/internal/residency"

	"github.com/rotary-moe/rotary/profile"
)

// A Policy decides which resident expert a layer gives up for a new one. It
// is a stateless description: Open, and each run of the simulator, ask it for
// one Evictor per layer, which holds that layer's state. The runtime and the
// simulator share this code, so a policy's simulated hit rate is the one it
// gets at run time.
type Policy interface {
	// Name names the policy in plans, tables and logs.
	Name() string
	// NewEvictor returns the eviction state of one layer with the given
	// number of experts and dynamic slots.
	NewEvictor(layer, experts, slots int) Evictor
}

// Candidate is a slot the runtime may evict: a dynamic slot that no
// unreleased Set holds and that the Acquire in progress did not ask for.
// LastUse is the layer's tick when the expert was last requested or
// prefetched; each Acquire of the layer is one tick.
type Candidate = residency.Candidate

// An Evictor is one layer's eviction state. The runtime calls it under the
// layer's lock, so it need not be safe for concurrent use. Requested is told
// of every expert an Acquire asks for, hits and misses alike, before any
// victim is chosen; Victim returns the index in cands (never empty) of the
// slot to evict.
type Evictor = residency.Evictor

// LRU evicts the least recently requested expert; among experts last
// requested by the same Acquire, the lowest id. This is the default.
var LRU Policy = lruPolicy{}

// LFU evicts the expert requested least often so far, counting every request
// since Open whether or not the expert was resident; ties go to the least
// recently requested, then the lowest id.
var LFU Policy = lfuPolicy{}

type lruPolicy struct{}

func (lruPolicy) Name() string                   { return "LRU" }
func (lruPolicy) NewEvictor(_, _, _ int) Evictor { return residency.LRU{} }

type lfuPolicy struct{}

func (lfuPolicy) Name() string                         { return "LFU" }
func (lfuPolicy) NewEvictor(_, experts, _ int) Evictor { return residency.NewLFU(experts) }

// Belady returns the offline optimal policy for a routing trace: evict the
// expert whose next request lies farthest ahead (never: farthest of all),
// ties broken as LRU. It knows the future, so it serves only as the bound in
// simulations that replay exactly this trace, one Acquire per routed token
// and layer, in order.
func Belady(t *profile.Trace) Policy { return &beladyPolicy{trace: t} }

type beladyPolicy struct {
	trace *profile.Trace
	once  sync.Once
	uses  [][][]int32 // [layer][expert]: the tokens requesting it, ascending
}

func (p *beladyPolicy) Name() string { return "Belady" }

func (p *beladyPolicy) NewEvictor(layer, experts, _ int) Evictor {
	p.once.Do(p.index)
	var uses [][]int32
	if layer < len(p.uses) {
		uses = p.uses[layer]
	}
	return &beladyEvictor{uses: uses, next: make([]int, experts)}
}

// index lists, for every layer and expert, the tokens that request it.
func (p *beladyPolicy) index() {
	m := p.trace.Model()
	p.uses = make([][][]int32, m.Layers)
	var ids []int32
	for l := range m.Layers {
		p.uses[l] = make([][]int32, m.Experts)
		for tok := range p.trace.Tokens() {
			ids = p.trace.AppendExperts(ids[:0], tok, l)
			for _, e := range ids {
				p.uses[l][e] = append(p.uses[l][e], int32(tok))
			}
		}
	}
}

type beladyEvictor struct {
	uses [][]int32 // [expert]: tokens requesting it
	next []int     // [expert]: index in uses of its next request
}

func (e *beladyEvictor) Requested(expert int, _ uint64) {
	if expert < len(e.uses) {
		e.next[expert]++
	}
}

// never is the next use of an expert the trace does not request again.
const never = 1<<63 - 1

func (e *beladyEvictor) Victim(cands []Candidate) int {
	// The farthest next use is the least of never - next use.
	return residency.Argmin(cands, func(c Candidate) uint64 {
		if c.Expert < len(e.uses) && e.next[c.Expert] < len(e.uses[c.Expert]) {
			return never - uint64(e.uses[c.Expert][e.next[c.Expert]])
		}
		return 0
	})
}
