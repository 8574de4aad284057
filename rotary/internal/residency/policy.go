package residency

// Rule is an eviction rule that a device runs as well as the host, with the
// same tie-break, so both evict the same experts.
type Rule uint8

const (
	// RuleCustom is an Evictor only Go code runs.
	RuleCustom Rule = iota
	// RuleLRU evicts the least recently used expert; ties (experts last
	// used by the same call) go to the lowest expert id.
	RuleLRU
	// RuleLFU evicts the expert requested least often, every request
	// counted whether or not it hit; ties go to the least recently used,
	// then the lowest expert id.
	RuleLFU
)

// RuleOf is the rule ev follows: RuleLRU for an LRU, RuleLFU for an *LFU,
// RuleCustom for any other Evictor.
func RuleOf(ev Evictor) Rule {
	switch ev.(type) {
	case LRU:
		return RuleLRU
	case *LFU:
		return RuleLFU
	}
	return RuleCustom
}

// LRU is the Evictor of RuleLRU.
type LRU struct{}

// Requested implements Evictor: LastUse is all LRU needs.
func (LRU) Requested(int, uint64) {}

// Victim implements Evictor.
func (LRU) Victim(cands []Candidate) int {
	return Argmin(cands, func(Candidate) uint64 { return 0 })
}

// LFU is the Evictor of RuleLFU.
type LFU struct {
	Counts []uint64 // [expert]: requests so far
}

// NewLFU returns the LFU state of a layer of experts experts.
func NewLFU(experts int) *LFU { return &LFU{Counts: make([]uint64, experts)} }

// Requested implements Evictor.
func (e *LFU) Requested(expert int, _ uint64) { e.Counts[expert]++ }

// Victim implements Evictor.
func (e *LFU) Victim(cands []Candidate) int {
	return Argmin(cands, func(c Candidate) uint64 { return e.Counts[c.Expert] })
}

// Argmin returns the index of the candidate with the least key, ties broken
// by the least LastUse, then the lowest expert id: the tie-break of every
// rule, on the host and on a device.
func Argmin(cands []Candidate, key func(Candidate) uint64) int {
	best, bk := 0, key(cands[0])
	for i := 1; i < len(cands); i++ {
		c, b := cands[i], cands[best]
		k := key(c)
		if k < bk || k == bk && (c.LastUse < b.LastUse || c.LastUse == b.LastUse && c.Expert < b.Expert) {
			best, bk = i, k
		}
	}
	return best
}
