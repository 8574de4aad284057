package synth

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// llama.cpp token types (llama_token_type).
const (
	synthTokenNormal  int32 = 1
	synthTokenControl int32 = 3
	synthTokenUnused  int32 = 5
)

// synthVocab is a GPT-2-style byte-level BPE tokenizer as GGUF stores it.
// Ids 0–255 are the byte tokens in GPT-2's order, then one token per merge
// that made a new string, up to the preset's regular token count; then
// <|endoftext|>, <|im_start|>, <|im_end|> (control tokens); then, where the
// model's vocabulary is larger, unused "[PADn]" tokens as llama.cpp's
// converter pads Qwen vocabularies.
type synthVocab struct {
	tokens                    []string
	types                     []int32
	merges                    []string
	endOfText, imStart, imEnd int
}

// synthByteTokens returns GPT-2's byte-to-unicode table and the byte order
// of GPT-2's first 256 tokens: the printable bytes stand for themselves, the
// others are mapped to U+0100 and up.
func synthByteTokens() (enc [256]string, order []byte) {
	printable := func(b int) bool { return b >= '!' && b <= '~' || b >= 0xa1 && b <= 0xac || b >= 0xae }
	next := 0
	for b := range 256 {
		if printable(b) {
			enc[b] = string(rune(b))
			order = append(order, byte(b))
		}
	}
	for b := range 256 {
		if !printable(b) {
			enc[b] = string(rune(256 + next))
			next++
			order = append(order, byte(b))
		}
	}
	return enc, order
}

// synthBuildVocab trains BPE merges on the embedded English corpus until the
// preset's regular token count is reached or no pair occurs twice, then, for
// large vocabularies, adds deterministic word-like merges (a word-ish token
// followed by a run of letters) until the count is reached.
func synthBuildVocab(p *synthPreset, seed uint64) *synthVocab {
	enc, order := synthByteTokens()
	v := &synthVocab{}
	ids := map[string]int32{}
	addToken := func(s string, typ int32) {
		ids[s] = int32(len(v.tokens))
		v.tokens = append(v.tokens, s)
		v.types = append(v.types, typ)
	}
	for _, b := range order {
		addToken(enc[b], synthTokenNormal)
	}

	// Words of the corpus as sequences of token ids, with their counts.
	type word struct {
		syms  []int32
		count int
	}
	var words []word
	seen := map[string]int{}
	for _, w := range synthPreTokenize(synthCorpus) {
		if i, ok := seen[w]; ok {
			words[i].count++
			continue
		}
		syms := make([]int32, len(w))
		for i := range len(w) {
			syms[i] = ids[enc[w[i]]]
		}
		seen[w] = len(words)
		words = append(words, word{syms: syms, count: 1})
	}

	merge := func(a, b int32) int32 {
		s := v.tokens[a] + v.tokens[b]
		v.merges = append(v.merges, v.tokens[a]+" "+v.tokens[b])
		id, ok := ids[s]
		if !ok {
			id = int32(len(v.tokens))
			addToken(s, synthTokenNormal)
		}
		return id
	}
	for len(v.tokens) < p.regularTokens {
		counts := map[uint64]int{}
		best, bestCount := uint64(0), 1
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pair := uint64(w.syms[i])<<32 | uint64(w.syms[i+1])
				c := counts[pair] + w.count
				counts[pair] = c
				if c > bestCount || c == bestCount && pair < best {
					best, bestCount = pair, c
				}
			}
		}
		if bestCount < 2 {
			break
		}
		a, b := int32(best>>32), int32(best&0xffffffff)
		id := merge(a, b)
		for wi := range words {
			syms := words[wi].syms
			out := syms[:0]
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
					out = append(out, id)
					i++
				} else {
					out = append(out, syms[i])
				}
			}
			words[wi].syms = out
		}
	}

	// Word-like filler merges: a head (letters, maybe after a space) of at
	// most 12 bytes and a tail of at most 3 letters.
	isLetters := func(s string) bool {
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
		return s != ""
	}
	space := enc[' ']
	const maxHead, maxTail = 12, 3
	var heads, tails []int32
	for id, s := range v.tokens {
		word, _ := strings.CutPrefix(s, space)
		if isLetters(word) && len(s) <= maxHead {
			heads = append(heads, int32(id))
		}
		if isLetters(s) && len(s) <= maxTail {
			tails = append(tails, int32(id))
		}
	}
	r := synthRand{s: synthMix(seed, synthHashString("tokenizer"))}
	for len(v.tokens) < p.regularTokens {
		a, b := heads[r.next()%uint64(len(heads))], tails[r.next()%uint64(len(tails))]
		s := v.tokens[a] + v.tokens[b]
		if _, ok := ids[s]; ok {
			continue
		}
		id := merge(a, b)
		if len(s) <= maxHead {
			heads = append(heads, id)
		}
	}

	v.endOfText, v.imStart, v.imEnd = len(v.tokens), len(v.tokens)+1, len(v.tokens)+2
	for _, s := range []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"} {
		addToken(s, synthTokenControl)
	}
	for len(v.tokens) < p.vocab {
		addToken("[PAD"+strconv.Itoa(len(v.tokens))+"]", synthTokenUnused)
	}
	return v
}

// synthPreTokenize splits text roughly as the Qwen2 pre-tokenizer does:
// contractions, letter runs with at most one leading non-letter, single
// digits, punctuation runs after an optional space, newline runs and other
// whitespace (a run before a word leaves its last space to that word).
func synthPreTokenize(text string) []string {
	var out []string
	isLetter, isDigit, isSpace := unicode.IsLetter, unicode.IsNumber, unicode.IsSpace
	isNewline := func(r rune) bool { return r == '\n' || r == '\r' }
	isPunct := func(r rune) bool { return !isSpace(r) && !isLetter(r) && !isDigit(r) }
	at := func(i int) (rune, int) { return utf8.DecodeRuneInString(text[i:]) }
	peek := func(i int, pred func(rune) bool) bool {
		if i >= len(text) {
			return false
		}
		r, _ := at(i)
		return pred(r)
	}
	skip := func(i int, pred func(rune) bool) int {
		for i < len(text) {
			r, n := at(i)
			if !pred(r) {
				break
			}
			i += n
		}
		return i
	}
	for i := 0; i < len(text); {
		r, n := at(i)
		j := i + n
		switch {
		case r == '\'' && synthContraction(text[j:]) > 0:
			j += synthContraction(text[j:])
		case isLetter(r) || !isDigit(r) && !isNewline(r) && peek(j, isLetter):
			j = skip(j, isLetter)
		case isDigit(r):
		case isPunct(r) || r == ' ' && peek(j, isPunct):
			j = skip(skip(j, isPunct), isNewline)
		default: // whitespace
			lastNewline, lastStart := -1, i
			for j < len(text) {
				r2, n2 := at(j)
				if !isSpace(r2) {
					break
				}
				if isNewline(r2) {
					lastNewline = j + n2
				}
				lastStart = j
				j += n2
			}
			switch {
			case lastNewline > 0:
				j = lastNewline
			case j < len(text) && lastStart > i:
				j = lastStart // leave the last space to the word that follows
			}
		}
		out = append(out, text[i:j])
		i = j
	}
	return out
}

// synthContraction returns the length of an English contraction suffix
// ('s, 't, 're, 've, 'm, 'll, 'd) at the start of s, after the apostrophe.
func synthContraction(s string) int {
	lower := strings.ToLower(s[:min(len(s), 2)])
	for _, c := range []string{"re", "ve", "ll", "s", "t", "m", "d"} {
		if strings.HasPrefix(lower, c) {
			return len(c)
		}
	}
	return 0
}
