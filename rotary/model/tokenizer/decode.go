package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pieceBytes returns the bytes a token stands for, as llama.cpp's
// token_to_piece renders them with special=true:
//   - normal tokens: the GPT-2 alphabet mapped back to bytes; a code point
//     outside the alphabet (none in byte-level vocabularies) is kept as its
//     UTF-8, where llama.cpp writes an "[UNK_BYTE_0x..]" marker;
//   - control, unknown and user-defined tokens: their text;
//   - byte tokens "<0xXX>": that byte;
//   - unused and undefined tokens: nothing.
func pieceBytes(text string, typ TokenType) []byte {
	switch typ {
	case TypeNormal:
		out := make([]byte, 0, len(text))
		for _, r := range text {
			if b, ok := runeByte[r]; ok {
				out = append(out, b)
			} else {
				out = utf8.AppendRune(out, r)
			}
		}
		return out
	case TypeControl, TypeUnknown, TypeUserDefined:
		return []byte(text)
	case TypeByte:
		if len(text) == 6 && strings.HasPrefix(text, "<0x") && text[5] == '>' {
			if b, err := strconv.ParseUint(text[3:5], 16, 8); err == nil {
				return []byte{byte(b)}
			}
		}
		return []byte(text)
	}
	return nil
}

// AppendPiece appends the bytes of token id to dst. A piece may end in the
// middle of a UTF-8 sequence that the next token completes; Decoder handles
// that for streaming output.
func (t *Tokenizer) AppendPiece(dst []byte, id int32) ([]byte, error) {
	if id < 0 || int(id) >= len(t.tokens) {
		return dst, fmt.Errorf("%w: %d (vocabulary has %d tokens)", ErrUnknownToken, id, len(t.tokens))
	}
	return append(dst, t.pieces[t.pieceOff[id]:t.pieceOff[id+1]]...), nil
}

// Decode returns the bytes of ids, concatenated. Control tokens are rendered
// as their text, so Decode(Encode(s)) == s for valid UTF-8 s.
func (t *Tokenizer) Decode(ids []int32) ([]byte, error) {
	var out []byte
	for _, id := range ids {
		var err error
		if out, err = t.AppendPiece(out, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Decoder turns a stream of token ids into text, holding back a UTF-8
// sequence that a token left incomplete until a later token completes it.
// It is not safe for concurrent use.
type Decoder struct {
	t       *Tokenizer
	pending []byte // bytes not yet returned: an incomplete sequence
	out     []byte
}

// NewDecoder returns a streaming decoder.
func (t *Tokenizer) NewDecoder() *Decoder { return &Decoder{t: t} }

// Write adds token id and returns the text that is now complete. The
// returned slice is valid until the next call. Bytes that can never become
// valid UTF-8 are passed through, not held.
func (d *Decoder) Write(id int32) ([]byte, error) {
	var err error
	if d.pending, err = d.t.AppendPiece(d.pending, id); err != nil {
		return nil, err
	}
	keep := incompleteSuffix(d.pending)
	d.out = append(d.out[:0], d.pending[:len(d.pending)-keep]...)
	d.pending = append(d.pending[:0], d.pending[len(d.pending)-keep:]...)
	return d.out, nil
}

// Flush returns whatever is held back (an incomplete UTF-8 sequence at the
// end of the stream) and resets the decoder.
func (d *Decoder) Flush() []byte {
	d.out = append(d.out[:0], d.pending...)
	d.pending = d.pending[:0]
	return d.out
}

// incompleteSuffix returns the length of the trailing bytes of p that begin
// a valid UTF-8 sequence but do not finish it.
func incompleteSuffix(p []byte) int {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(p); k++ {
		b := p[len(p)-k]
		if b&0xC0 != 0x80 { // a possible start byte
			if utf8.FullRune(p[len(p)-k:]) {
				return 0
			}
			return k
		}
	}
	return 0
}
