package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Pre-tokenization splits a text fragment into words before BPE runs on each
// word. llama.cpp writes the two Qwen rules as regexes (llama-vocab.cpp,
// LLAMA_VOCAB_PRE_TYPE_QWEN2 and _QWEN35):
//
//	qwen2:  (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])
//	        |[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*
//	        |\s*[\r\n]+|\s+(?!\S)|\s+
//	qwen35: the same with [\p{L}\p{M}]+ for the letter run and \p{M}
//	        added to the excluded set of the punctuation run.
//
// and runs them with hand-written scanners (unicode.cpp,
// unicode_regex_split_custom_qwen2/_qwen35). Go's regexp has no lookahead, so
// nextWord is a scanner with the same leftmost-first semantics, alternative by
// alternative. What decides the result at the edges is llama.cpp's character
// classes, reproduced by classify.

// charClass is the only property of a code point the rules look at.
type charClass uint8

const (
	classOther  charClass = iota // punctuation, symbols, controls, unassigned
	classLetter                  // \p{L}
	classNumber                  // \p{N}
	classMark                    // \p{M}
	classSpace                   // \s as llama.cpp defines it
)

// asciiClass classifies the ASCII range without a table lookup in package
// unicode. \s here is [\t\n\v\f\r ]: llama.cpp's whitespace set, which does
// not include the separators 0x1C-0x1F that Python's str.isspace accepts.
var asciiClass = func() (t [utf8.RuneSelf]charClass) {
	for c := range utf8.RuneSelf {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			t[c] = classLetter
		case '0' <= c && c <= '9':
			t[c] = classNumber
		case c == ' ', '\t' <= c && c <= '\r':
			t[c] = classSpace
		}
	}
	return t
}()

// cjkExtensionI is the only letter range of Unicode 15.1 that Go's Unicode
// 15.0 tables lack. llama.cpp's tables (unicode-data.cpp) are generated from
// Unicode 15.1; the other 15.1 additions (U+2FFC-2FFF, U+31EF) are symbols,
// which both treat as classOther. TestUnicodeTablesVersion guards the
// assumption.
const (
	cjkExtensionIFirst = 0x2EBF0
	cjkExtensionILast  = 0x2EE5D
)

// classify returns the class llama.cpp assigns to r: whitespace first (its
// White_Space set, identical to unicode.IsSpace), then the general category.
func classify(r rune) charClass {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r), cjkExtensionIFirst <= r && r <= cjkExtensionILast:
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsMark(r):
		return classMark
	}
	return classOther
}

// decodeRune decodes one code point the way llama.cpp's unicode_cpt_from_utf8
// does: it checks the lead byte and that continuation bytes follow, but
// accepts overlong forms and surrogates. A bad sequence yields U+FFFD and a
// width of 1. Unlike llama.cpp, a 4-byte form above U+10FFFF is also bad:
// llama.cpp decodes it and then throws when re-encoding the word.
func decodeRune(s string, i int) (rune, int) {
	b0 := s[i]
	if b0 < 0x80 {
		return rune(b0), 1
	}
	n := len(s) - i
	cont := func(k int) bool { return k < n && s[i+k]&0xC0 == 0x80 }
	switch {
	case b0&0xE0 == 0xC0:
		if cont(1) {
			return rune(b0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
		}
	case b0&0xF0 == 0xE0:
		if cont(1) && cont(2) {
			return rune(b0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
		}
	case b0&0xF8 == 0xF0:
		if cont(1) && cont(2) && cont(3) {
			r := rune(b0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
			if r <= unicode.MaxRune {
				return r, 4
			}
		}
	}
	return utf8.RuneError, 1
}

// appendRune encodes r like llama.cpp's unicode_cpt_to_utf8, which, unlike
// utf8.AppendRune, keeps surrogates as their 3-byte form.
func appendRune(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return append(dst, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// canonicalText returns s unchanged when it is valid UTF-8, else the text
// llama.cpp actually tokenizes: every code point decoded by decodeRune and
// re-encoded, so each bad byte becomes U+FFFD and overlong forms shrink.
func canonicalText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, w := decodeRune(s, i)
		out = appendRune(out, r)
		i += w
	}
	return string(out)
}

// preTokenizer is one of the Qwen splitting rules; the two differ only in
// whether combining marks belong to words.
type preTokenizer struct {
	marksInWords bool // qwen35: [\p{L}\p{M}]+ words, \p{M} out of punctuation runs
}

func (p preTokenizer) inWord(c charClass) bool {
	return c == classLetter || (p.marksInWords && c == classMark)
}

// inPunct reports membership in [^\s\p{L}\p{N}] (qwen2) or
// [^\s\p{L}\p{M}\p{N}] (qwen35).
func (p preTokenizer) inPunct(c charClass) bool {
	return c == classOther || (!p.marksInWords && c == classMark)
}

// split calls yield with each word of s, in order; the words concatenate to s.
// s must be canonical (see canonicalText).
func (p preTokenizer) split(s string, yield func(word string)) {
	for i := 0; i < len(s); {
		end := p.nextWord(s, i)
		yield(s[i:end])
		i = end
	}
}

// nextWord returns the end of the word that starts at i < len(s), trying the
// rule's alternatives in order as a backtracking regex engine would.
func (p preTokenizer) nextWord(s string, i int) int {
	n := len(s)
	r0, w0 := decodeRune(s, i)
	c0 := classify(r0)
	at := func(j int) (rune, charClass) {
		if j >= n {
			return -1, classOther
		}
		r, _ := decodeRune(s, j)
		return r, classify(r)
	}
	// run returns the end of the longest run from j of code points in class set.
	run := func(j int, in func(charClass) bool) int {
		for j < n {
			r, w := decodeRune(s, j)
			if !in(classify(r)) {
				break
			}
			j += w
		}
		return j
	}

	// (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])
	if r0 == '\'' && i+1 < n {
		switch lowerASCII(s[i+1]) {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < n && lowerASCII(s[i+2]) == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < n && lowerASCII(s[i+2]) == 'l' {
				return i + 3
			}
		}
	}

	// [^\r\n\p{L}\p{N}]?\p{L}+ (qwen35: [\p{L}\p{M}]+). A code point that is
	// itself in the word class starts the run (for a qwen35 mark, which is
	// also allowed as the prefix, both readings end at the same place);
	// otherwise it may prefix a run that starts right after it.
	if r0 != '\r' && r0 != '\n' && c0 != classNumber {
		if p.inWord(c0) {
			return run(i+w0, p.inWord)
		}
		if _, c1 := at(i + w0); p.inWord(c1) {
			return run(i+w0, p.inWord)
		}
	}

	// \p{N}
	if c0 == classNumber {
		return i + w0
	}

	// ' ?[^\s\p{L}\p{N}]+[\r\n]*' (qwen35: \p{M} also excluded)
	start := -1
	if p.inPunct(c0) {
		start = i
	} else if r0 == ' ' {
		if _, c1 := at(i + 1); p.inPunct(c1) {
			start = i + 1
		}
	}
	if start >= 0 {
		j := run(start, p.inPunct)
		for j < n && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}

	// What is left is whitespace (every other class was handled above):
	// \s*[\r\n]+ | \s+(?!\S) | \s+ over the run that starts at i.
	j, last, afterNewline, count := i+w0, i, -1, 1
	if r0 == '\r' || r0 == '\n' {
		afterNewline = j
	}
	for j < n {
		r, w := decodeRune(s, j)
		if classify(r) != classSpace {
			break
		}
		if r == '\r' || r == '\n' {
			afterNewline = j + w
		}
		last = j
		j += w
		count++
	}
	switch {
	case afterNewline >= 0: // up to and including the run's last \r or \n
		return afterNewline
	case count > 1 && j < n: // leave the last space to prefix the next word
		return last
	}
	return j
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}
