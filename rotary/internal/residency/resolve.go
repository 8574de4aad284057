package residency

// Miss is an expert a step placed: into Slot, evicting expert Evicted (-1
// when the slot was empty).
type Miss struct {
	Expert, Slot, Evicted int
}

// Resolve makes one step's residency decisions for the experts ids of a
// layer (distinct; a batch's routed experts in ascending order), as
// Runtime.Acquire does when nothing else holds a slot and as the device's
// resolve kernel does: it ticks, tells the Evictor of every request, marks
// the hits used, places the misses in the order of ids (Place), and
// releases every slot again. It appends the slot of each of ids to slots
// and each placement to misses, and returns them; ok is false, with the
// tables unchanged, when ids name an expert twice or their misses do not
// fit in the dynamic slots.
func (t *Table) Resolve(ids []int, slots []int, misses []Miss) (_ []int, _ []Miss, ok bool) {
	t.Begin()
	for _, id := range ids {
		if !t.Name(id) {
			return slots, misses, false
		}
	}
	if !t.Fits(ids) {
		return slots, misses, false
	}
	t.Tick++
	tick := t.Tick
	base := len(slots)
	var missing []int
	for _, id := range ids {
		t.Evictor.Requested(id, tick)
		s := int(t.SlotOf[id])
		if s >= 0 {
			t.Hit(s, tick)
		} else {
			missing = append(missing, id)
		}
		slots = append(slots, s)
	}
	evicted := map[int]int{} // slot: the expert it held
	placed := t.Place(missing, tick, nil, func(s, e int) { evicted[s] = e })
	for i := range ids {
		if slots[base+i] >= 0 {
			continue
		}
		s := placed[0]
		placed = placed[1:]
		slots[base+i] = s
		m := Miss{Expert: ids[i], Slot: s, Evicted: -1}
		if e, ok := evicted[s]; ok {
			m.Evicted = e
		}
		misses = append(misses, m)
	}
	for _, s := range slots[base:] {
		t.Held[s]--
	}
	return slots, misses, true
}
