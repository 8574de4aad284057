package rotary

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
)

// HostMode says how the host tier holds experts.
type HostMode int

const (
	// HostMapped registers the model file's mapping (its expert tensors) as
	// pinned memory: every expert is copied to the GPU straight from the page
	// cache at full bus speed, with no host copy.
	HostMapped HostMode = iota + 1
	// HostLRU keeps an LRU of expert copies in pinned memory allocated up
	// front, filled from the mapping in the background and on misses.
	HostLRU
)

func (m HostMode) String() string {
	switch m {
	case HostMapped:
		return "mapped"
	case HostLRU:
		return "pinned-lru"
	}
	return fmt.Sprintf("HostMode(%d)", int(m))
}

// MarshalText writes the mode's name, for JSON.
func (m HostMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a name MarshalText wrote, so a Plan's JSON reads back.
func (m *HostMode) UnmarshalText(b []byte) error {
	for _, mode := range []HostMode{HostMapped, HostLRU} {
		if string(b) == mode.String() {
			*m = mode
			return nil
		}
	}
	return fmt.Errorf("%w: host mode %q", ErrInvalid, b)
}

// pinCostPerGiB is what page-locking host memory costs on a GPU:
// cuMemHostAlloc 0.6 s per GiB, cuMemHostRegister of touched memory 45 ms per
// GiB (measured on an H200 host).
const (
	pinAllocPerGiB    = 600 * time.Millisecond
	pinRegisterPerGiB = 45 * time.Millisecond
)

// Plan says where a model's experts live under a VRAM and a host budget: how
// many experts of each layer are pinned in VRAM, how many dynamic slots each
// layer's plane has, and how the host tier holds the rest. NewPlan makes one;
// Open follows it. It prints as a small table (String) and as JSON.
type Plan struct {
	Model       string      `json:"model"`
	Layers      []LayerPlan `json:"layers"`
	TotalExpert int64       `json:"total_expert_bytes"`

	// VRAM is the device memory budget: the program's own buffers (NonExpert
	// and Reserve) and the experts' planes (Pinned, Slots) come out of it;
	// Unused is what is left. With WithSlots and no WithVRAM it is what the
	// plan needs.
	VRAM      int64 `json:"vram_budget"`
	NonExpert int64 `json:"non_expert_bytes"`
	Reserve   int64 `json:"reserve_bytes"`
	Pinned    int64 `json:"pinned_bytes"`
	Slots     int64 `json:"slot_bytes"`
	Unused    int64 `json:"unused_bytes"`
	// WorkingSet is the least expert memory that works: the top-k experts of
	// every layer at once (each layer has its own plane of slots).
	WorkingSet int64 `json:"working_set_bytes"`
	// HotSet is the pinned experts' hot set: WithHotSet's, or the one
	// WithHotProfile selected (with its expected hit rate); nil without.
	HotSet *profile.HotSet `json:"hot_set,omitempty"`

	Host HostPlan `json:"host"`
}

// LayerPlan is one MoE layer's part of a Plan. The layer's plane holds
// len(Pinned)+Slots slots of ExpertBytes each: the pinned experts first, in
// the order given, then the dynamic slots.
type LayerPlan struct {
	Layer       int   `json:"layer"`
	Experts     int   `json:"experts"`
	TopK        int   `json:"top_k"`
	ExpertBytes int64 `json:"expert_bytes"`
	Pinned      []int `json:"pinned,omitempty"`
	Slots       int   `json:"slots"`
}

// PlaneBytes is the size of the layer's plane.
func (l LayerPlan) PlaneBytes() int64 { return int64(len(l.Pinned)+l.Slots) * l.ExpertBytes }

// HostPlan is the host tier's part of a Plan.
type HostPlan struct {
	Mode   HostMode `json:"mode"`
	Budget int64    `json:"budget"` // -1: unlimited
	// Bytes is the memory pinned: the registered expert tensors (HostMapped)
	// or the LRU's allocations (HostLRU).
	Bytes int64 `json:"bytes"`
	// Chunks and Entries describe the LRU: pinned allocations, and the expert
	// copies they hold.
	Chunks  int `json:"chunks,omitempty"`
	Entries int `json:"entries,omitempty"`
	// PinTime estimates how long pinning Bytes takes on a GPU (cuMemHostAlloc
	// 0.6 s/GiB, cuMemHostRegister 45 ms/GiB), paid once in Open.
	PinTime time.Duration `json:"pin_time_ns"`

	ranges  []span      // HostMapped: file ranges to register
	classes []hostClass // HostLRU: one per expert size
}

// EntriesFor is how many experts of expertBytes each the host LRU holds at
// once (HostLRU), so how many of a layer's misses one Acquire can take; 0
// with HostMapped, whose mapping holds them all.
func (h *HostPlan) EntriesFor(expertBytes int64) int {
	for _, c := range h.classes {
		if c.size == expertBytes {
			return c.entries
		}
	}
	return 0
}

// span is a byte range [off, off+n).
type span struct{ off, n int64 }

// hostClass is the host LRU's share for experts of one size.
type hostClass struct {
	size     int64
	entries  int
	perChunk int
}

// NewPlan plans the residency of m's experts under the options' budgets
// (WithVRAM or WithSlots, WithHostBudget, WithReserve, WithHotSet). A budget
// that cannot hold the working set fails with a *BudgetError.
func NewPlan(m *experts.Model, opts ...Option) (*Plan, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.vram == 0 && c.slots == 0 {
		return nil, fmt.Errorf("%w: NewPlan needs WithVRAM or WithSlots", ErrInvalid)
	}
	return newPlan(m, &c)
}

func newPlan(m *experts.Model, c *config) (*Plan, error) {
	h := m.Params
	p := &Plan{
		Model:       modelName(m),
		TotalExpert: m.TotalExpertBytes(),
		VRAM:        c.vram,
		NonExpert:   m.NonExpertBytes(),
		Reserve:     c.reserve,
	}
	hot, err := chooseHotSet(m, c)
	if err != nil {
		return nil, err
	}
	p.HotSet = hot
	pinned, err := hotExperts(m, hot)
	if err != nil {
		return nil, err
	}
	for _, l := range m.MoELayers() {
		el, _ := m.Experts(l)
		lp := LayerPlan{Layer: l, Experts: el.NumExperts, TopK: min(h.NumExpertsUsed, el.NumExperts), ExpertBytes: el.ExpertBytes, Pinned: pinned[l]}
		p.Pinned += int64(len(lp.Pinned)) * lp.ExpertBytes
		p.WorkingSet += int64(lp.minSlots()) * lp.ExpertBytes
		p.Layers = append(p.Layers, lp)
	}
	if err := p.planSlots(c); err != nil {
		return nil, err
	}
	if err := p.planHost(m, c); err != nil {
		return nil, err
	}
	return p, nil
}

func modelName(m *experts.Model) string {
	if m.Params.Name != "" {
		return m.Params.Name
	}
	return m.Arch
}

// check reports whether p is a plan NewPlan made for m's layout, which
// WithPlan requires: the same model name, expert bytes and MoE layers, and
// the host tier's layout, which only NewPlan computes (a Plan read back from
// JSON lacks it).
func (p *Plan) check(m *experts.Model) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: WithPlan: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if p.Model != modelName(m) || p.TotalExpert != m.TotalExpertBytes() || len(p.Layers) != len(m.MoELayers()) {
		return bad("the plan is for model %s (%s of experts in %d layers), not %s (%s in %d)",
			p.Model, FormatSize(p.TotalExpert), len(p.Layers), modelName(m), FormatSize(m.TotalExpertBytes()), len(m.MoELayers()))
	}
	for i, l := range p.Layers {
		if l.Layer != m.MoELayers()[i] || l.ExpertBytes != m.ExpertBytes(l.Layer) {
			return bad("layer %d of the plan (%s experts) does not match the model's", l.Layer, FormatSize(l.ExpertBytes))
		}
	}
	if p.Host.ranges == nil && p.Host.classes == nil {
		return bad("the plan was not made by NewPlan (its host tier layout is missing)")
	}
	return nil
}

// minSlots is the fewest dynamic slots that serve any request of top-k
// experts: k, or all the experts that are not pinned.
func (l LayerPlan) minSlots() int { return min(l.TopK, l.Experts-len(l.Pinned)) }

// maxSlots is the most dynamic slots that can be used.
func (l LayerPlan) maxSlots() int { return l.Experts - len(l.Pinned) }

// chooseHotSet returns WithHotSet's hot set, or selects WithHotProfile's.
func chooseHotSet(m *experts.Model, c *config) (*profile.HotSet, error) {
	if c.hotProf == nil {
		return c.hot, nil
	}
	if c.hot != nil {
		return nil, fmt.Errorf("%w: both WithHotSet and WithHotProfile", ErrInvalid)
	}
	p, h := c.hotProf, m.Params
	if len(p.Layers) != h.NumLayers {
		return nil, fmt.Errorf("%w: hot profile: %w", ErrInvalid, &profile.MismatchError{Field: "layers", Want: h.NumLayers, Got: len(p.Layers)})
	}
	for _, l := range m.MoELayers() {
		if el, _ := m.Experts(l); len(p.Layers[l].Counts) != el.NumExperts {
			return nil, fmt.Errorf("%w: hot profile, layer %d: %w", ErrInvalid, l, &profile.MismatchError{Field: "experts", Want: el.NumExperts, Got: len(p.Layers[l].Counts)})
		}
	}
	if c.vram == 0 {
		return nil, fmt.Errorf("%w: WithHotProfile needs a VRAM budget", ErrInvalid)
	}
	sizes := make([]int64, h.NumLayers)
	var workingSet int64
	for _, l := range m.MoELayers() {
		el, _ := m.Experts(l)
		sizes[l] = el.ExpertBytes
		workingSet += int64(min(h.NumExpertsUsed, el.NumExperts)) * el.ExpertBytes
	}
	expertVRAM := c.vram - m.NonExpertBytes() - c.reserve
	budget := min(int64(float64(expertVRAM)*c.hotFrac), expertVRAM-workingSet)
	hot, err := profile.SelectHotSet(p, sizes, max(budget, 0), profile.Global)
	if err != nil {
		return nil, fmt.Errorf("rotary: selecting the hot set: %w", err)
	}
	return hot, nil
}

// hotExperts checks the hot set against the model and returns the experts to
// pin by layer.
func hotExperts(m *experts.Model, hot *profile.HotSet) (map[int][]int, error) {
	pinned := map[int][]int{}
	if hot == nil {
		return pinned, nil
	}
	for l, lh := range hot.Layers {
		if len(lh.Experts) == 0 {
			continue
		}
		el, ok := m.Experts(l)
		if !ok {
			return nil, fmt.Errorf("%w: hot set pins experts of layer %d, which has no routed experts", ErrInvalid, l)
		}
		seen := make(map[int]bool, len(lh.Experts))
		for _, e := range lh.Experts {
			if e < 0 || e >= el.NumExperts || seen[e] {
				return nil, fmt.Errorf("%w: hot set pins expert %d of layer %d (%d experts, or pinned twice)", ErrInvalid, e, l, el.NumExperts)
			}
			seen[e] = true
		}
		pinned[l] = slices.Clone(lh.Experts)
	}
	return pinned, nil
}

// planSlots gives every layer its working set, then adds one dynamic slot to
// each layer in turn while the budget lasts, so layers get equal numbers of
// slots (or WithSlots' number), or to the layer WithSlotShares favours.
func (p *Plan) planSlots(c *config) error {
	for i := range p.Layers {
		l := &p.Layers[i]
		l.Slots = l.minSlots()
		if c.slots > 0 {
			if c.slots < l.Slots {
				return fmt.Errorf("%w: %d slots per layer cannot hold the %d experts a token of layer %d may ask for besides its %d pinned ones",
					ErrInvalid, c.slots, l.Slots, l.Layer, len(l.Pinned))
			}
			if c.shares == nil {
				l.Slots = min(c.slots, l.maxSlots())
			}
		}
	}
	if c.slots > 0 && c.shares != nil {
		extra := c.slots * len(p.Layers)
		for _, l := range p.Layers {
			extra -= l.Slots
		}
		for ; extra > 0; extra-- {
			i := p.nextByShare(c.shares, func(LayerPlan) bool { return true })
			if i < 0 {
				break
			}
			p.Layers[i].Slots++
		}
	}
	used := p.Pinned
	for _, l := range p.Layers {
		used += int64(l.Slots) * l.ExpertBytes
	}
	if c.vram == 0 { // WithSlots alone: state what it needs
		p.VRAM = p.NonExpert + p.Reserve + used
	}
	have := p.VRAM - p.NonExpert - p.Reserve
	parts := []string{FormatSize(p.VRAM) + " budget", "- " + FormatSize(p.NonExpert) + " non-expert weights"}
	if p.Reserve > 0 {
		parts = append(parts, "- "+FormatSize(p.Reserve)+" reserve")
	}
	if used > have {
		what := fmt.Sprintf("the working set (top-%d experts of each of %d layers, one plane per layer)", p.topK(), len(p.Layers))
		if p.Pinned > 0 {
			what += fmt.Sprintf(" with %s of pinned experts", FormatSize(p.Pinned))
		}
		if c.slots > 0 {
			what = fmt.Sprintf("%d slots per layer", c.slots)
			if p.Pinned > 0 {
				what += fmt.Sprintf(" with %s of pinned experts", FormatSize(p.Pinned))
			}
		}
		return &BudgetError{Budget: "VRAM", What: what, Need: used, Have: max(have, 0), Parts: parts,
			Least: p.NonExpert + p.Reserve + used}
	}
	if c.slots == 0 && c.shares != nil {
		for {
			i := p.nextByShare(c.shares, func(l LayerPlan) bool { return used+l.ExpertBytes <= have })
			if i < 0 {
				break
			}
			p.Layers[i].Slots++
			used += p.Layers[i].ExpertBytes
		}
	} else if c.slots == 0 {
		for grew := true; grew; {
			grew = false
			for i := range p.Layers {
				l := &p.Layers[i]
				if l.Slots < l.maxSlots() && used+l.ExpertBytes <= have {
					l.Slots++
					used += l.ExpertBytes
					grew = true
				}
			}
		}
	}
	p.Slots = used - p.Pinned
	p.Unused = have - used
	return nil
}

// nextByShare returns the index of the layer that should get the next
// slot by shares (the largest share per slot once it has it; ties to the
// first), among those below their maximum for which fits holds, or -1.
func (p *Plan) nextByShare(shares map[int]float64, fits func(LayerPlan) bool) int {
	best, bestScore := -1, 0.0
	for i, l := range p.Layers {
		share := shares[l.Layer]
		if share <= 0 || l.Slots >= l.maxSlots() || !fits(l) {
			continue
		}
		if score := share / float64(l.Slots+1); score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

func (p *Plan) topK() int {
	k := 0
	for _, l := range p.Layers {
		k = max(k, l.TopK)
	}
	return k
}

// planHost chooses the host tier's mode and carves the LRU.
func (p *Plan) planHost(m *experts.Model, c *config) error {
	hp := &p.Host
	hp.Budget = c.host
	hp.ranges = expertRanges(m)
	var registered int64
	for _, r := range hp.ranges {
		registered += r.n
	}
	if c.host < 0 || c.host >= registered {
		hp.Mode, hp.Bytes = HostMapped, registered
		hp.PinTime = time.Duration(float64(registered) / (1 << 30) * float64(pinRegisterPerGiB))
		return nil
	}
	hp.Mode = HostLRU
	// One class per expert size, sharing the budget in proportion to the
	// bytes of its experts; each class needs room for one layer's top-k.
	bySize := map[int64]int64{}
	for _, l := range p.Layers {
		bySize[l.ExpertBytes] += int64(l.Experts) * l.ExpertBytes
	}
	// The least budget gives every class its top-k.
	var least int64
	for s, n := range bySize {
		b := int64(math.Ceil(float64(int64(p.topK())*s) * float64(p.TotalExpert) / float64(n)))
		for int64(float64(b)*float64(n)/float64(p.TotalExpert)) < int64(p.topK())*s { // as the shares round
			b++
		}
		least = max(least, b)
	}
	for _, s := range slices.Sorted(maps.Keys(bySize)) {
		share := int64(float64(c.host) * float64(bySize[s]) / float64(p.TotalExpert))
		cl := hostClass{size: s, entries: int(share / s), perChunk: int(max(c.chunk/s, 1))}
		if cl.entries < p.topK() {
			return &BudgetError{Budget: "host",
				What: fmt.Sprintf("the host LRU's share for %s experts (%d of them, one layer's top-k)", FormatSize(s), p.topK()),
				Need: int64(p.topK()) * s, Have: share,
				Parts: []string{fmt.Sprintf("%s budget split by expert size in proportion to their bytes", FormatSize(c.host))},
				Least: least}
		}
		hp.classes = append(hp.classes, cl)
		hp.Entries += cl.entries
		hp.Chunks += (cl.entries + cl.perChunk - 1) / cl.perChunk
		hp.Bytes += int64(cl.entries) * cl.size
	}
	hp.PinTime = time.Duration(float64(hp.Bytes) / (1 << 30) * float64(pinAllocPerGiB))
	return nil
}

// expertRanges returns the file ranges of the stacked expert tensors, widened
// to whole pages (registration pins pages) and merged where they touch.
func expertRanges(m *experts.Model) []span {
	page := int64(os.Getpagesize())
	size := m.File.Size()
	var rs []span
	for _, t := range m.ExpertTensors() {
		start := t.Offset / page * page
		end := min((t.Offset+t.Size+page-1)/page*page, size)
		rs = append(rs, span{start, end - start})
	}
	slices.SortFunc(rs, func(a, b span) int { return cmp.Compare(a.off, b.off) })
	var out []span
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].off+out[n-1].n >= r.off {
			out[n-1].n = max(out[n-1].n, r.off+r.n-out[n-1].off)
			continue
		}
		out = append(out, r)
	}
	return out
}

// JSON returns the plan as indented JSON.
func (p *Plan) JSON() ([]byte, error) { return json.MarshalIndent(p, "", "  ") }

// String prints the plan: the budget's breakdown, the host tier, and a table
// of layers (runs of identical layers on one line).
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "model %s: %d MoE layers, %s of routed experts\n", p.Model, len(p.Layers), FormatSize(p.TotalExpert))
	fmt.Fprintf(&b, "VRAM  %s = %s non-expert + %s reserve + %s pinned experts + %s slots + %s unused\n",
		FormatSize(p.VRAM), FormatSize(p.NonExpert), FormatSize(p.Reserve), FormatSize(p.Pinned), FormatSize(p.Slots), FormatSize(p.Unused))
	if h := p.HotSet; h != nil && h.Selections > 0 {
		n := 0
		for _, l := range h.Layers {
			n += len(l.Experts)
		}
		fmt.Fprintf(&b, "hot   %d experts pinned (%s): %.1f%% of the profile's selections\n", n, FormatSize(h.Bytes), 100*h.HitRate)
	}
	switch p.Host.Mode {
	case HostMapped:
		fmt.Fprintf(&b, "host  %s: %s of expert tensors registered in place (pinning ~%.1f s on a GPU)\n",
			p.Host.Mode, FormatSize(p.Host.Bytes), p.Host.PinTime.Seconds())
	case HostLRU:
		fmt.Fprintf(&b, "host  %s: %d expert copies in %s of pinned memory in %d allocation%s (pinning ~%.1f s on a GPU)\n",
			p.Host.Mode, p.Host.Entries, FormatSize(p.Host.Bytes), p.Host.Chunks, plural(p.Host.Chunks), p.Host.PinTime.Seconds())
	}
	// One line per distinct layer shape, naming its layers.
	var groups [][]LayerPlan
	for _, l := range p.Layers {
		i := slices.IndexFunc(groups, func(g []LayerPlan) bool { return g[0].sameShape(l) })
		if i < 0 {
			groups = append(groups, nil)
			i = len(groups) - 1
		}
		groups[i] = append(groups[i], l)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "experts\ttop-k\texpert size\tpinned\tslots\tplane\t layers")
	for _, g := range groups {
		l := g[0]
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%s\t %s\n", l.Experts, l.TopK, FormatSize(l.ExpertBytes), len(l.Pinned), l.Slots, FormatSize(l.PlaneBytes()), layerRanges(g))
	}
	tw.Flush()
	return b.String()
}

// layerRanges writes the layers' numbers as ranges: "0-4,7,9-11".
func layerRanges(ls []LayerPlan) string {
	var parts []string
	for i := 0; i < len(ls); {
		j := i + 1
		for j < len(ls) && ls[j].Layer == ls[j-1].Layer+1 {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%d-%d", ls[i].Layer, ls[j-1].Layer))
		} else {
			parts = append(parts, fmt.Sprint(ls[i].Layer))
		}
		i = j
	}
	return strings.Join(parts, ",")
}

func (l LayerPlan) sameShape(o LayerPlan) bool {
	return l.Experts == o.Experts && l.TopK == o.TopK && l.ExpertBytes == o.ExpertBytes && len(l.Pinned) == len(o.Pinned) && l.Slots == o.Slots
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
