package profile

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Mode says how a byte budget is spread over layers by SelectHotSet.
type Mode int

const (
	// PerLayer gives every layer the whole budget for its own experts.
	PerLayer Mode = iota
	// Global spends one budget across all layers.
	Global
)

func (m Mode) String() string {
	switch m {
	case PerLayer:
		return "per-layer"
	case Global:
		return "global"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// A HotSet is the experts chosen for pinning and what the profile says they
// would have served.
type HotSet struct {
	Mode   Mode
	Layers []LayerHotSet // indexed by layer
	// Bytes is the total size of the pinned experts.
	Bytes int64
	// Hits is the number of routed selections in the profile that the pinned
	// experts serve; Selections the number of all routed selections.
	Hits, Selections uint64
	// HitRate is Hits / Selections (0 for an empty profile): the expected share
	// of expert requests served by the pinned set if the workload matches the
	// profile.
	HitRate float64
	// Optimal reports that no other choice within the budget has more hits.
	// MaxHits is an upper bound on the best possible hits (Hits when Optimal).
	Optimal bool
	MaxHits uint64
}

// LayerHotSet is one layer's part of a HotSet.
type LayerHotSet struct {
	Experts    []int  // expert ids to pin, most selected first
	Bytes      int64  // their size
	Hits       uint64 // selections they serve
	Selections uint64 // all selections of the layer
}

// enumLimit caps the combinations Global selection enumerates before it falls
// back to greedy selection (a variable so tests can force the fallback).
var enumLimit = 1 << 24

// SelectHotSet chooses experts to pin within budget bytes so as to maximise the
// expected hits: the routed selections in p that the pinned experts serve.
// expertBytes[l] is the size of one expert of layer l (0 for a layer without
// routed experts). In PerLayer mode each layer may use budget bytes; in Global
// mode all layers share budget. Experts the profile never saw selected are not
// pinned: they would add no expected hits, and leftover memory serves better as
// dynamic cache slots.
//
// Within a layer all experts have one size, so the best k experts of a layer are
// its k most selected, and PerLayer selection is exact. Global selection is a
// knapsack. Items of equal size are interchangeable by size, so for each size
// class c (layers whose experts have one size s_c) the best use of k_c slots is
// the k_c most selected experts of the class, whatever their layers: value
// V_c(k_c). The optimum is then the best vector (k_c) with Σ k_c·s_c <= budget.
// SelectHotSet enumerates it exactly: every k_c for all classes but one, the
// remaining class filled as far as the budget allows (V_c never decreases).
// With one size class that is plain greedy; real quantised models have one to
// three classes (for example Q4_K_M mixes Q4_K and Q6_K down projections), so at
// most a few million combinations. Beyond 2^24 combinations it falls back to
// greedy by hits per byte, which is within one expert's hits of the optimum
// (hits >= LP bound - the most selected expert that did not fit), reports
// Optimal=false unless the bound proves it, and sets MaxHits to the LP bound.
func SelectHotSet(p *Profile, expertBytes []int64, budget int64, mode Mode) (*HotSet, error) {
	if budget < 0 {
		return nil, fmt.Errorf("%w: negative budget %d", ErrInvalid, budget)
	}
	if len(expertBytes) != len(p.Layers) {
		return nil, fmt.Errorf("%w: %d expert sizes for %d layers", ErrInvalid, len(expertBytes), len(p.Layers))
	}
	for l, s := range expertBytes {
		if s < 0 || s == 0 && p.Layers[l].Selections() > 0 {
			return nil, fmt.Errorf("%w: layer %d has routed experts of size %d", ErrInvalid, l, s)
		}
	}
	h := &HotSet{Mode: mode, Layers: make([]LayerHotSet, len(p.Layers))}
	for l := range p.Layers {
		h.Layers[l].Selections = p.Layers[l].Selections()
		h.Selections += h.Layers[l].Selections
	}
	switch mode {
	case PerLayer:
		for l := range p.Layers {
			if expertBytes[l] > 0 {
				h.pin(p, l, candidates(p, l), int(budget/expertBytes[l]), expertBytes[l])
			}
		}
		h.Optimal = true
	case Global:
		h.selectGlobal(p, expertBytes, budget)
	default:
		return nil, fmt.Errorf("%w: unknown mode %d", ErrInvalid, int(mode))
	}
	h.finish()
	return h, nil
}

// candidates returns layer l's experts with at least one selection, most
// selected first.
func candidates(p *Profile, l int) []int {
	counts := p.Layers[l].Counts
	ids := p.Layers[l].Ranked()
	n := 0
	for n < len(ids) && counts[ids[n]] > 0 {
		n++
	}
	return ids[:n]
}

// pin adds the first n of ranked (experts of layer l, each size bytes) to the set.
func (h *HotSet) pin(p *Profile, l int, ranked []int, n int, size int64) {
	n = min(n, len(ranked))
	lh := &h.Layers[l]
	for _, e := range ranked[:n] {
		lh.Experts = append(lh.Experts, e)
		lh.Hits += p.Layers[l].Counts[e]
	}
	lh.Bytes += int64(n) * size
}

func (h *HotSet) finish() {
	for l := range h.Layers {
		lh := &h.Layers[l]
		h.Bytes += lh.Bytes
		h.Hits += lh.Hits
	}
	if h.Selections > 0 {
		h.HitRate = float64(h.Hits) / float64(h.Selections)
	}
	if h.Optimal {
		h.MaxHits = h.Hits
	}
}

// sizeClass is the candidate experts of all layers whose experts have one size.
type sizeClass struct {
	size   int64
	items  []classItem // most selected first
	prefix []uint64    // prefix[k]: hits of the first k items
	limit  int         // the most items the budget could hold
}

type classItem struct {
	layer, expert int
	hits          uint64
}

func (h *HotSet) selectGlobal(p *Profile, expertBytes []int64, budget int64) {
	bySize := map[int64]*sizeClass{}
	var classes []*sizeClass
	for l := range p.Layers {
		s := expertBytes[l]
		if s == 0 {
			continue
		}
		c := bySize[s]
		if c == nil {
			c = &sizeClass{size: s}
			bySize[s] = c
			classes = append(classes, c)
		}
		for _, e := range candidates(p, l) {
			c.items = append(c.items, classItem{layer: l, expert: e, hits: p.Layers[l].Counts[e]})
		}
	}
	combos := 1
	for _, c := range classes {
		slices.SortStableFunc(c.items, func(a, b classItem) int { return cmp.Compare(b.hits, a.hits) })
		c.prefix = make([]uint64, len(c.items)+1)
		for i, it := range c.items {
			c.prefix[i+1] = c.prefix[i] + it.hits
		}
		c.limit = int(min(int64(len(c.items)), budget/c.size))
	}
	// The class with the widest range is filled greedily, so it is not enumerated.
	slices.SortFunc(classes, func(a, b *sizeClass) int { return cmp.Compare(a.limit, b.limit) })
	for _, c := range classes[:max(len(classes)-1, 0)] {
		if combos > enumLimit/(c.limit+1) {
			combos = enumLimit + 1
			break
		}
		combos *= c.limit + 1
	}
	if combos > enumLimit {
		h.selectGreedy(p, classes, budget)
		return
	}
	take := make([]int, len(classes))
	best := make([]int, len(classes))
	var bestHits uint64
	bestBytes := int64(math.MaxInt64)
	var walk func(i int, left int64, hits uint64)
	walk = func(i int, left int64, hits uint64) {
		c := classes[i]
		if i == len(classes)-1 {
			take[i] = int(min(int64(c.limit), left/c.size))
			hits += c.prefix[take[i]]
			used := budget - left + int64(take[i])*c.size
			if hits > bestHits || hits == bestHits && used < bestBytes {
				bestHits, bestBytes = hits, used
				copy(best, take)
			}
			return
		}
		for k := 0; k <= c.limit && int64(k)*c.size <= left; k++ {
			take[i] = k
			walk(i+1, left-int64(k)*c.size, hits+c.prefix[k])
		}
	}
	if len(classes) > 0 {
		walk(0, budget, 0)
	}
	for i, c := range classes {
		for _, it := range c.items[:best[i]] {
			h.addItem(p, it, c.size)
		}
	}
	h.sortLayers(p)
	h.Optimal = true
}

func (h *HotSet) addItem(p *Profile, it classItem, size int64) {
	lh := &h.Layers[it.layer]
	lh.Experts = append(lh.Experts, it.expert)
	lh.Hits += it.hits
	lh.Bytes += size
}

// sortLayers puts each layer's experts most selected first, ties by id.
func (h *HotSet) sortLayers(p *Profile) {
	for l := range h.Layers {
		counts := p.Layers[l].Counts
		slices.SortFunc(h.Layers[l].Experts, func(a, b int) int {
			return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
		})
	}
}

// selectGreedy takes items by hits per byte while they fit, and bounds the
// optimum by the fractional (LP) relaxation: the items in the same order up to
// the first that does not fit, plus the fitting fraction of it.
func (h *HotSet) selectGreedy(p *Profile, classes []*sizeClass, budget int64) {
	type ref struct {
		item classItem
		size int64
	}
	var all []ref
	for _, c := range classes {
		for _, it := range c.items {
			all = append(all, ref{it, c.size})
		}
	}
	// Compare hits/size exactly: a.hits·b.size vs b.hits·a.size in float64,
	// which is exact for counts and sizes below 2^26 each and close otherwise.
	slices.SortStableFunc(all, func(a, b ref) int {
		return cmp.Compare(float64(b.item.hits)*float64(a.size), float64(a.item.hits)*float64(b.size))
	})
	left := budget
	var hits uint64
	bound := -1.0
	for _, r := range all {
		if r.size <= left {
			left -= r.size
			hits += r.item.hits
			h.addItem(p, r.item, r.size)
		} else if bound < 0 {
			bound = float64(hits) + float64(r.item.hits)*float64(left)/float64(r.size)
		}
	}
	h.sortLayers(p)
	if bound < 0 { // everything fit
		h.Optimal = true
		return
	}
	h.MaxHits = uint64(bound)
	h.Optimal = hits >= h.MaxHits
}
