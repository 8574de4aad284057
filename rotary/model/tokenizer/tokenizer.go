package tokenizer

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// TokenType is a token's kind as GGUF stores it in tokenizer.ggml.token_type
// (llama.cpp's llama_token_type).
type TokenType int32

// Token types.
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// NoToken marks an absent special token id in Vocab.
const NoToken int32 = -1

// Limits on vocabulary data, so that hostile metadata fails cleanly.
const (
	maxTokens = 1 << 24 // Qwen3.5 has 248,320
	maxMerges = 1 << 24
)

// Vocab is the tokenizer data of a GGUF file (the tokenizer.ggml.* keys).
type Vocab struct {
	Model  string      // tokenizer.ggml.model; only "gpt2" (byte-level BPE)
	Pre    string      // tokenizer.ggml.pre: "qwen2" or "qwen35"
	Tokens []string    // token texts in the GPT-2 byte alphabet, by id
	Types  []TokenType // by id; nil means every token is TypeNormal
	Merges []string    // "left right", highest priority first

	// Special token ids, NoToken when absent. BOS and EOS are added by
	// Encode when AddBOS / AddEOS are set; EOS and EOT end generation.
	BOS, EOS, EOT, PAD int32
	AddBOS, AddEOS     bool
}

// Tokenizer encodes text to token ids and back. It is safe for concurrent
// use.
type Tokenizer struct {
	pre      preTokenizer
	preName  string
	tokens   []string
	types    []TokenType
	ids      map[string]int32
	bpe      *bpe
	specials []special // longest first
	eog      map[int32]bool

	bos, eos       int32
	addBOS, addEOS bool

	pieces   []byte   // decoded bytes of all tokens, concatenated
	pieceOff []uint32 // token id's bytes are pieces[pieceOff[id]:pieceOff[id+1]]

	work sync.Pool // *encodeState
}

// special is a token recognized in text before pre-tokenization.
type special struct {
	text    string
	id      int32
	control bool // control or unknown: recognized only when parsing specials
}

// endOfGeneration lists the Qwen token texts that llama.cpp recognizes as
// ending generation (llama-vocab.cpp, special_eog_ids), including the FIM
// tokens it adds there. Like llama.cpp, a token with one of these texts
// counts as a control token whatever its stored type.
var endOfGeneration = []string{
	"<|im_end|>", "<|endoftext|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
}

// New builds a tokenizer from vocabulary data.
func New(v Vocab) (*Tokenizer, error) {
	if v.Model != "gpt2" {
		return nil, fmt.Errorf("%w: model %q (only gpt2 byte-level BPE)", ErrUnsupported, v.Model)
	}
	t := &Tokenizer{preName: v.Pre, bos: v.BOS, eos: v.EOS, addBOS: v.AddBOS, addEOS: v.AddEOS}
	switch v.Pre {
	case "qwen2":
	case "qwen35":
		t.pre.marksInWords = true
	default:
		return nil, fmt.Errorf("%w: pre-tokenizer %q (want qwen2 or qwen35)", ErrUnsupported, v.Pre)
	}
	n := len(v.Tokens)
	switch {
	case n == 0:
		return nil, fmt.Errorf("%w: no tokens", ErrInvalidVocab)
	case n > maxTokens:
		return nil, fmt.Errorf("%w: %d tokens, more than %d", ErrInvalidVocab, n, maxTokens)
	case len(v.Merges) > maxMerges:
		return nil, fmt.Errorf("%w: %d merges, more than %d", ErrInvalidVocab, len(v.Merges), maxMerges)
	case v.Types != nil && len(v.Types) != n:
		return nil, fmt.Errorf("%w: %d token types for %d tokens", ErrInvalidVocab, len(v.Types), n)
	}
	t.tokens = slices.Clone(v.Tokens)
	t.types = make([]TokenType, n)
	t.ids = make(map[string]int32, n)
	for id, text := range v.Tokens {
		if text == "" {
			return nil, fmt.Errorf("%w: token %d is empty", ErrInvalidVocab, id)
		}
		if prev, dup := t.ids[text]; dup {
			return nil, fmt.Errorf("%w: token %q has ids %d and %d", ErrInvalidVocab, text, prev, id)
		}
		t.ids[text] = int32(id)
		t.types[id] = TypeNormal
		if v.Types != nil {
			t.types[id] = v.Types[id]
		}
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"BOS", v.BOS}, {"EOS", v.EOS}, {"EOT", v.EOT}, {"PAD", v.PAD}} {
		if s.id != NoToken && (s.id < 0 || int(s.id) >= n) {
			return nil, fmt.Errorf("%w: %s id %d outside the %d tokens", ErrInvalidVocab, s.name, s.id, n)
		}
	}
	if v.AddBOS && v.BOS == NoToken || v.AddEOS && v.EOS == NoToken {
		return nil, fmt.Errorf("%w: asked to add BOS/EOS without its id", ErrInvalidVocab)
	}

	t.eog = map[int32]bool{}
	for _, text := range endOfGeneration {
		if id, ok := t.ids[text]; ok {
			t.eog[id] = true
			t.types[id] = TypeControl
		}
	}
	for _, id := range []int32{v.EOS, v.EOT} {
		if id != NoToken {
			t.eog[id] = true
		}
	}

	t.bpe = newBPE(t.tokens, t.ids, v.Merges)

	for id, typ := range t.types {
		switch typ {
		case TypeControl, TypeUnknown, TypeUserDefined:
			t.specials = append(t.specials, special{text: t.tokens[id], id: int32(id), control: typ != TypeUserDefined})
		}
	}
	slices.SortStableFunc(t.specials, func(a, b special) int { return cmp.Compare(len(b.text), len(a.text)) })

	t.pieceOff = make([]uint32, n+1)
	for id, text := range t.tokens {
		t.pieces = append(t.pieces, pieceBytes(text, t.types[id])...)
		if len(t.pieces) > 1<<32-1 {
			return nil, fmt.Errorf("%w: token texts exceed 4 GiB", ErrInvalidVocab)
		}
		t.pieceOff[id+1] = uint32(len(t.pieces))
	}
	t.work.New = func() any { return new(encodeState) }
	return t, nil
}

// encodeState is the scratch space of one Encode call, pooled with a cache
// of recently encoded words: a text repeats most of its words, and BPE is
// most of the encoding time.
type encodeState struct {
	frags, spare []fragment
	bpe          bpeWork
	words        map[string]idSpan // cached word -> its ids in wordIDs
	wordIDs      []int32
}

type idSpan struct{ start, end int32 }

// Bounds of the word cache of an encodeState.
const (
	maxCachedWords   = 1 << 14
	maxCachedWordLen = 32
)

// encodeWord appends the ids of one pre-tokenized word.
func (t *Tokenizer) encodeWord(st *encodeState, dst []int32, word string) []int32 {
	if span, ok := st.words[word]; ok {
		return append(dst, st.wordIDs[span.start:span.end]...)
	}
	n := len(dst)
	dst = t.bpe.encode(dst, word, &st.bpe)
	if len(word) <= maxCachedWordLen {
		if st.words == nil || len(st.words) >= maxCachedWords {
			st.words = make(map[string]idSpan, 1024)
			st.wordIDs = st.wordIDs[:0]
		}
		start := int32(len(st.wordIDs))
		st.wordIDs = append(st.wordIDs, dst[n:]...)
		st.words[strings.Clone(word)] = idSpan{start, int32(len(st.wordIDs))}
	}
	return dst
}

// fragment is a byte range of the input: raw text, or one special token.
type fragment struct {
	start, end int
	special    int32 // token id, or NoToken for raw text
}

// Encode converts text to token ids as llama.cpp's llama_tokenize does with
// add_special and parse_special set: control and user-defined token texts
// become their ids (the longest first), BOS/EOS are added if the vocabulary
// asks for them, and the rest is pre-tokenized and BPE-encoded. Invalid UTF-8
// is encoded as U+FFFD, one per bad byte, as llama.cpp does.
func (t *Tokenizer) Encode(text string) []int32 {
	return t.encode(text, true, t.addBOS, t.addEOS)
}

// EncodeText converts text to token ids without recognizing control tokens
// and without BOS/EOS: text that spells "<|im_end|>" stays text. Use it for
// untrusted content placed inside a chat template. User-defined tokens are
// still recognized, as in llama.cpp with parse_special unset.
func (t *Tokenizer) EncodeText(text string) []int32 {
	return t.encode(text, false, false, false)
}

func (t *Tokenizer) encode(text string, parseSpecial, addBOS, addEOS bool) []int32 {
	st := t.work.Get().(*encodeState)
	defer t.work.Put(st)
	return t.encodeWith(st, text, parseSpecial, addBOS, addEOS)
}

func (t *Tokenizer) encodeWith(st *encodeState, text string, parseSpecial, addBOS, addEOS bool) []int32 {
	ids := make([]int32, 0, len(text)/3+2)
	if addBOS {
		ids = append(ids, t.bos)
	}
	for _, f := range t.partition(st, text, parseSpecial) {
		if f.special != NoToken {
			ids = append(ids, f.special)
			continue
		}
		t.pre.split(canonicalText(text[f.start:f.end]), func(word string) {
			ids = t.encodeWord(st, ids, word)
		})
	}
	if addEOS {
		ids = append(ids, t.eos)
	}
	return ids
}

// partition splits text at special tokens as llama.cpp's
// tokenizer_st_partition does: for each special token, longest first, every
// occurrence in the remaining raw fragments, left to right.
func (t *Tokenizer) partition(st *encodeState, text string, parseSpecial bool) []fragment {
	frags := st.frags[:0]
	if text != "" {
		frags = append(frags, fragment{0, len(text), NoToken})
	}
	for _, sp := range t.specials {
		if sp.control && !parseSpecial || !strings.Contains(text, sp.text) {
			continue
		}
		out := st.spare[:0]
		for _, f := range frags {
			if f.special != NoToken {
				out = append(out, f)
				continue
			}
			for f.start < f.end {
				k := strings.Index(text[f.start:f.end], sp.text)
				if k < 0 {
					break
				}
				if k > 0 {
					out = append(out, fragment{f.start, f.start + k, NoToken})
				}
				f.start += k + len(sp.text)
				out = append(out, fragment{f.start - len(sp.text), f.start, sp.id})
			}
			if f.start < f.end {
				out = append(out, f)
			}
		}
		frags, st.spare = out, frags
	}
	st.frags = frags
	return frags
}

// Len returns the number of tokens in the vocabulary.
func (t *Tokenizer) Len() int { return len(t.tokens) }

// Pre returns the pre-tokenizer name (tokenizer.ggml.pre).
func (t *Tokenizer) Pre() string { return t.preName }

// BOS returns the beginning-of-sequence id, or NoToken.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence id, or NoToken.
func (t *Tokenizer) EOS() int32 { return t.eos }

// IsEOG reports whether generating id ends the turn: EOS, EOT, and the
// tokens llama.cpp recognizes by text (<|im_end|>, <|endoftext|>, ...).
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// ID returns the id of the token whose text is exactly text.
func (t *Tokenizer) ID(text string) (int32, bool) {
	id, ok := t.ids[text]
	return id, ok
}

// Token returns the text and type of token id.
func (t *Tokenizer) Token(id int32) (string, TokenType, error) {
	if id < 0 || int(id) >= len(t.tokens) {
		return "", 0, fmt.Errorf("%w: %d (vocabulary has %d tokens)", ErrUnknownToken, id, len(t.tokens))
	}
	return t.tokens[id], t.types[id], nil
}
