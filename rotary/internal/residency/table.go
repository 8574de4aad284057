package residency

// Candidate is a slot a Table may evict: a dynamic slot that nothing holds,
// whose expert the call in progress did not name.
type Candidate struct {
	Slot   int
	Expert int
	// LastUse is the tick at which the expert was last requested or
	// prefetched.
	LastUse uint64
}

// An Evictor is one layer's eviction state. It is called under the layer's
// lock, so it need not be safe for concurrent use.
type Evictor interface {
	// Requested is told of every expert a call asks for, hits and misses
	// alike, before any victim is chosen; tick is the call's.
	Requested(expert int, tick uint64)
	// Victim returns the index in cands (never empty) of the slot to evict.
	Victim(cands []Candidate) int
}

// Table is the residency of one layer: slots [0, Pinned) hold pinned
// experts, the others are dynamic. The exported arrays are the state; the
// methods keep them consistent (SlotOf and ExpertIn inverse to each other).
// A Table is not safe for concurrent use.
type Table struct {
	SlotOf   []int32  // [expert]: its slot, -1 if not resident
	ExpertIn []int32  // [slot]: its expert, -1 if empty
	LastUse  []uint64 // [slot]: tick of the last request or prefetch
	Held     []int32  // [slot]: holders (unreleased Sets, the call in progress)
	Pinned   int
	Tick     uint64 // one per Acquire or step
	Evictor  Evictor

	// The experts the call in progress names: mark[e] == stamp.
	mark  []uint64
	stamp uint64

	// scratch of Place
	cands []Candidate
	free  []int
}

// NewTable returns an empty table of experts experts and slots slots, the
// first pinned of them for pinned experts.
func NewTable(experts, slots, pinned int, ev Evictor) *Table {
	t := &Table{
		SlotOf:   make([]int32, experts),
		ExpertIn: make([]int32, slots),
		LastUse:  make([]uint64, slots),
		Held:     make([]int32, slots),
		Pinned:   pinned,
		Evictor:  ev,
		mark:     make([]uint64, experts),
	}
	for i := range t.SlotOf {
		t.SlotOf[i] = -1
	}
	for i := range t.ExpertIn {
		t.ExpertIn[i] = -1
	}
	return t
}

// Experts is the number of experts of the layer.
func (t *Table) Experts() int { return len(t.SlotOf) }

// Dynamic is the number of dynamic slots.
func (t *Table) Dynamic() int { return len(t.ExpertIn) - t.Pinned }

// Begin starts a call: the experts it names (Name) are not evicted by its
// Place.
func (t *Table) Begin() { t.stamp++ }

// Name marks expert e as named by the call in progress; false if it was
// already.
func (t *Table) Name(e int) bool {
	if t.mark[e] == t.stamp {
		return false
	}
	t.mark[e] = t.stamp
	return true
}

// Named reports whether the call in progress named expert e.
func (t *Table) Named(e int) bool { return t.mark[e] == t.stamp }

// Unpinned counts the experts of ids that are not in pinned slots: those a
// call needs dynamic slots for, resident or not.
func (t *Table) Unpinned(ids []int) int {
	n := 0
	for _, id := range ids {
		if s := t.SlotOf[id]; s < 0 || int(s) >= t.Pinned {
			n++
		}
	}
	return n
}

// Fits reports whether the missing ones of ids (named) can be placed now:
// enough dynamic slots that nothing holds and that ids do not name.
func (t *Table) Fits(ids []int) bool {
	need := 0
	for _, id := range ids {
		if t.SlotOf[id] < 0 {
			need++
		}
	}
	if need == 0 {
		return true
	}
	spare := 0
	for s := t.Pinned; s < len(t.ExpertIn); s++ {
		if e := t.ExpertIn[s]; t.Held[s] == 0 && (e < 0 || !t.Named(int(e))) {
			if spare++; spare >= need {
				return true
			}
		}
	}
	return false
}

// Hit holds resident slot s for a call at tick.
func (t *Table) Hit(s int, tick uint64) {
	t.Held[s]++
	t.LastUse[s] = tick
}

// Place assigns slots to ids (missing, distinct, named): the empty dynamic
// slots first, lowest first, then the Evictor's victims among the dynamic
// slots that nothing holds and whose experts the call did not name. An
// evicted expert leaves the tables at once, and evicted (if not nil) is told
// of it. The slots are held and marked used at tick. Place appends them to
// slots and returns it; it places fewer than len(ids) only when it runs out
// of slots.
func (t *Table) Place(ids []int, tick uint64, slots []int, evicted func(slot, expert int)) []int {
	t.free, t.cands = t.free[:0], t.cands[:0]
	for s := t.Pinned; s < len(t.ExpertIn); s++ {
		if t.Held[s] != 0 {
			continue
		}
		if e := t.ExpertIn[s]; e < 0 {
			t.free = append(t.free, s)
		} else if !t.Named(int(e)) {
			t.cands = append(t.cands, Candidate{Slot: s, Expert: int(e), LastUse: t.LastUse[s]})
		}
	}
	for _, id := range ids {
		var s int
		switch {
		case len(t.free) > 0:
			s, t.free = t.free[0], t.free[1:]
		case len(t.cands) > 0:
			j := t.Evictor.Victim(t.cands)
			s = t.cands[j].Slot
			t.cands[j] = t.cands[len(t.cands)-1]
			t.cands = t.cands[:len(t.cands)-1]
			old := int(t.ExpertIn[s])
			t.SlotOf[old] = -1
			if evicted != nil {
				evicted(s, old)
			}
		default:
			return slots
		}
		t.Put(s, id)
		t.Hit(s, tick)
		slots = append(slots, s)
	}
	return slots
}

// Unplace takes back a Place of ids into slots: every slot is released, and
// those from index from on are left empty (their experts were never
// copied in).
func (t *Table) Unplace(ids, slots []int, from int) {
	for i, s := range slots {
		t.Held[s]--
		if i >= from {
			t.Empty(s)
		}
	}
}

// Put makes slot s hold expert e.
func (t *Table) Put(s, e int) {
	t.ExpertIn[s] = int32(e)
	t.SlotOf[e] = int32(s)
}

// Empty empties slot s.
func (t *Table) Empty(s int) {
	if e := t.ExpertIn[s]; e >= 0 {
		t.SlotOf[e] = -1
	}
	t.ExpertIn[s] = -1
}
