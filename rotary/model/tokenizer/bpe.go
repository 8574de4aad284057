package tokenizer

import "strings"

// GPT-2's byte-level alphabet: every byte is one printable code point, so a
// token's text never contains raw spaces or control bytes. Bytes that are
// printable Latin-1 (except the soft hyphen) stand for themselves; the other
// 68 get U+0100 and up, in byte order.
var byteRune, runeByte = func() (b2r [256]rune, r2b map[rune]byte) {
	r2b = make(map[rune]byte, 256)
	next := rune(256)
	for b := range 256 {
		r := rune(b)
		if !('!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF) {
			r = next
			next++
		}
		b2r[b] = r
		r2b[r] = byte(b)
	}
	return b2r, r2b
}()

// A symbol is a string BPE can form: one byte's code point or the result of
// a merge. Symbols that are vocabulary tokens have the token's id; the others
// (possible only in a vocabulary whose merges produce non-tokens) get ids
// from len(tokens) up.
type symbol = int32

type mergeRule struct {
	rank   int32
	result symbol
}

func pairKey(left, right symbol) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// bpe merges the symbols of one word by rank, as llama.cpp's
// llm_tokenizer_bpe_session does.
type bpe struct {
	nTokens  int32
	byteSym  [256]symbol
	rules    map[uint64]mergeRule
	fallback [][]int32 // ids emitted for symbol nTokens+i, which is not a token
}

// newBPE builds the merge table. A merge is "left right", split at the first
// space after the first byte, as llama.cpp does; the first occurrence of a
// pair sets its rank. Merges whose halves can never be formed are dropped.
// New's limits on tokens and merges keep every symbol id within int32.
func newBPE(tokens []string, ids map[string]int32, merges []string) *bpe {
	b := &bpe{nTokens: int32(len(tokens)), rules: make(map[uint64]mergeRule, len(merges))}
	synthetic := map[string]symbol{}
	var texts []string // of synthetic symbols
	intern := func(s string) symbol {
		if id, ok := ids[s]; ok {
			return id
		}
		if id, ok := synthetic[s]; ok {
			return id
		}
		id := b.nTokens + int32(len(texts))
		synthetic[s] = id
		texts = append(texts, s)
		return id
	}
	var buf []byte
	for c := range 256 {
		b.byteSym[c] = intern(string(byteRune[c]))
	}
	// Results of merges that are not tokens must exist before the merges
	// that consume them are read.
	for _, m := range merges {
		if left, right, ok := splitMerge(m); ok {
			buf = append(append(buf[:0], left...), right...)
			if _, ok := ids[string(buf)]; !ok {
				intern(string(buf))
			}
		}
	}
	formable := func(s string) (symbol, bool) {
		if id, ok := synthetic[s]; ok {
			return id, true
		}
		id, ok := ids[s]
		return id, ok
	}
	for rank, m := range merges {
		left, right, ok := splitMerge(m)
		if !ok {
			continue
		}
		l, okL := formable(left)
		r, okR := formable(right)
		if !okL || !okR {
			continue
		}
		key := pairKey(l, r)
		if _, dup := b.rules[key]; dup {
			continue
		}
		buf = append(append(buf[:0], left...), right...)
		res, _ := formable(string(buf))
		b.rules[key] = mergeRule{rank: int32(rank), result: res}
	}
	// llama.cpp emits a non-token symbol as the tokens of its single bytes
	// (bytes of the encoded text, so only ASCII-printable ones exist) and
	// silently drops the rest.
	b.fallback = make([][]int32, len(texts))
	for i, s := range texts {
		for k := 0; k < len(s); k++ {
			if id, ok := ids[s[k:k+1]]; ok {
				b.fallback[i] = append(b.fallback[i], id)
			}
		}
	}
	return b
}

func splitMerge(m string) (left, right string, ok bool) {
	if len(m) < 2 {
		return "", "", false
	}
	k := strings.IndexByte(m[1:], ' ')
	if k < 0 {
		return "", "", false
	}
	return m[:k+1], m[k+2:], true
}

// bpeSymbol is a live span of the word being merged, linked to its neighbours.
type bpeSymbol struct {
	sym        symbol
	prev, next int32 // indexes into the word's symbols, -1 at the ends
	merged     bool  // absorbed into its left neighbour
}

// bigram is a candidate merge of symbols left and right (adjacent when
// pushed); it is stale once either side changed.
type bigram struct {
	rank, left, right int32
	l, r, result      symbol
}

func (a bigram) before(b bigram) bool {
	return a.rank < b.rank || a.rank == b.rank && a.left < b.left
}

// bpeWork holds the buffers of one encoding; reused across words and calls.
type bpeWork struct {
	syms []bpeSymbol
	heap []bigram
}

// encode appends the ids of word (raw bytes, before the byte-level mapping).
func (b *bpe) encode(dst []int32, word string, w *bpeWork) []int32 {
	if len(word) == 1 {
		return b.emit(dst, b.byteSym[word[0]])
	}
	syms := w.syms[:0]
	for k := 0; k < len(word); k++ {
		syms = append(syms, bpeSymbol{sym: b.byteSym[word[k]], prev: int32(k) - 1, next: int32(k) + 1})
	}
	syms[len(syms)-1].next = -1
	w.syms = syms
	w.heap = w.heap[:0]
	for k := 1; k < len(syms); k++ {
		b.push(w, int32(k-1), int32(k))
	}
	for len(w.heap) > 0 {
		g := w.pop()
		left, right := &syms[g.left], &syms[g.right]
		if left.merged || right.merged || left.sym != g.l || right.sym != g.r {
			continue // stale: a neighbour was merged since it was pushed
		}
		left.sym = g.result
		right.merged = true
		left.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = g.left
		}
		b.push(w, left.prev, g.left)
		b.push(w, g.left, left.next)
	}
	for k := int32(0); k >= 0; k = syms[k].next {
		dst = b.emit(dst, syms[k].sym)
	}
	return dst
}

func (b *bpe) emit(dst []int32, s symbol) []int32 {
	if s < b.nTokens {
		return append(dst, s)
	}
	return append(dst, b.fallback[s-b.nTokens]...)
}

// push queues the merge of symbols left and right if a rule exists.
func (b *bpe) push(w *bpeWork, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	l, r := w.syms[left].sym, w.syms[right].sym
	rule, ok := b.rules[pairKey(l, r)]
	if !ok {
		return
	}
	h := append(w.heap, bigram{rank: rule.rank, left: left, right: right, l: l, r: r, result: rule.result})
	for i := len(h) - 1; i > 0; { // sift up
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	w.heap = h
}

// pop removes and returns the bigram of lowest rank, leftmost first.
func (w *bpeWork) pop() bigram {
	h := w.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; { // sift down
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].before(h[least]) {
			least = l
		}
		if r < len(h) && h[r].before(h[least]) {
			least = r
		}
		if least == i {
			break
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
	w.heap = h
	return top
}
