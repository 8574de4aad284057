package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/experts"
)

// The oracle: token ids llama.cpp (commit 3f545be) produced with
// llama-tokenize for each architecture's tiny model, and one GGUF per
// architecture that carries the vocabulary.
var oracles = []struct {
	arch, model, cases string
}{
	{"qwen3moe", "qwen3moe-tiny-q8_0.gguf", "tokenizer-qwen3moe.json"},
	{"qwen35moe", "qwen35moe-tiny-f32.gguf", "tokenizer-qwen35moe.json"},
}

type oracleCases struct {
	Pre          string `json:"tokenizer_pre"`
	ParseSpecial bool   `json:"parse_special"`
	AddSpecial   bool   `json:"add_special"`
	Cases        []struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
	} `json:"cases"`
}

// modelDir holds the oracle models; the experts package owns the copies.
const modelDir = "../../../experts/testdata"

func loadGGUF(t testing.TB, name string) *Tokenizer {
	t.Helper()
	f, err := experts.Open(filepath.Join(modelDir, name))
	require.NoError(t, err)
	defer f.Close()
	tok, err := FromGGUF(f)
	require.NoError(t, err)
	return tok
}

func loadCases(t testing.TB, name string) oracleCases {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var c oracleCases
	require.NoError(t, json.Unmarshal(raw, &c))
	require.NotEmpty(t, c.Cases)
	return c
}

func TestOracle(t *testing.T) {
	for _, o := range oracles {
		t.Run(o.arch, func(t *testing.T) {
			tok := loadGGUF(t, o.model)
			cases := loadCases(t, o.cases)
			require.Equal(t, cases.Pre, tok.Pre())
			require.True(t, cases.ParseSpecial)
			for _, c := range cases.Cases {
				ids := tok.Encode(c.Text)
				if len(c.IDs) == 0 {
					assert.Empty(t, ids, "%q", c.Text)
				} else {
					assert.Equal(t, c.IDs, ids, "%q", c.Text)
				}

				text, err := tok.Decode(ids)
				require.NoError(t, err)
				assert.Equal(t, c.Text, string(text), "round trip")

				var streamed strings.Builder
				d := tok.NewDecoder()
				for _, id := range ids {
					chunk, err := d.Write(id)
					require.NoError(t, err)
					assert.True(t, utf8.Valid(chunk), "%q: chunk %q", c.Text, chunk)
					streamed.Write(chunk)
				}
				streamed.Write(d.Flush())
				assert.Equal(t, c.Text, streamed.String(), "streamed")
			}
		})
	}
}

// TestOracleArchitecturesDiffer makes sure the two pre-tokenizers are really
// exercised: some oracle cases tokenize differently under qwen2 and qwen35.
func TestOracleArchitecturesDiffer(t *testing.T) {
	a, b := loadCases(t, oracles[0].cases), loadCases(t, oracles[1].cases)
	require.Equal(t, len(a.Cases), len(b.Cases))
	differ := 0
	for i := range a.Cases {
		require.Equal(t, a.Cases[i].Text, b.Cases[i].Text)
		if !assert.ObjectsAreEqual(a.Cases[i].IDs, b.Cases[i].IDs) {
			differ++
		}
	}
	assert.Positive(t, differ)
}

func TestVocabFromGGUF(t *testing.T) {
	f, err := experts.Open(filepath.Join(modelDir, oracles[1].model))
	require.NoError(t, err)
	defer f.Close()
	v, err := VocabFromGGUF(f)
	require.NoError(t, err)
	assert.Equal(t, "gpt2", v.Model)
	assert.Equal(t, "qwen35", v.Pre)
	assert.Len(t, v.Tokens, 759)
	assert.Len(t, v.Types, 759)
	assert.Len(t, v.Merges, 500)
	assert.Equal(t, []int32{756, 758, NoToken, 756}, []int32{v.BOS, v.EOS, v.EOT, v.PAD})
	assert.False(t, v.AddBOS)
	assert.False(t, v.AddEOS)
	assert.Equal(t, TypeControl, v.Types[757])

	tok, err := New(v)
	require.NoError(t, err)
	for id, eog := range map[int32]bool{756: true, 757: false, 758: true, 64: false} {
		assert.Equal(t, eog, tok.IsEOG(id), "id %d", id)
	}
	id, ok := tok.ID("<|im_start|>")
	assert.True(t, ok)
	assert.Equal(t, int32(757), id)
	text, typ, err := tok.Token(757)
	require.NoError(t, err)
	assert.Equal(t, "<|im_start|>", text)
	assert.Equal(t, TypeControl, typ)
	assert.Equal(t, 759, tok.Len())
	assert.Equal(t, int32(756), tok.BOS())
	assert.Equal(t, int32(758), tok.EOS())
}

func words(p preTokenizer, s string) []string {
	var out []string
	p.split(canonicalText(s), func(w string) { out = append(out, w) })
	return out
}

// TestPreTokenizerEdges pins the splits at the edges of the two rules. They
// agree with Python's regex module running the rules (checked case by case,
// and on random strings during development) except where llama.cpp's
// character classes differ from Python's: \x1c-\x1f are not \s.
func TestPreTokenizerEdges(t *testing.T) {
	qwen2, qwen35 := preTokenizer{}, preTokenizer{marksInWords: true}
	both := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"  leading", []string{" ", " leading"}},
		{"a   \n  b", []string{"a", "   \n", " ", " b"}},
		{"x   ", []string{"x", "   "}},
		{"\r\n\r\n  x", []string{"\r\n\r\n", " ", " x"}},
		{"123", []string{"1", "2", "3"}},
		{"٣٤x", []string{"٣", "٤", "x"}},
		{"don't I'LL 'Re 'x", []string{"don", "'t", " I", "'LL", " '", "Re", " '", "x"}},
		{"!!!\n\nabc", []string{"!!!\n\n", "abc"}},
		{" !? x", []string{" !?", " x"}},
		{"\t!", []string{"\t", "!"}},
		{"\tword", []string{"\tword"}},
		{"\u00a0word", []string{"\u00a0word"}},
		{"x\u3000\u3000y", []string{"x", "\u3000", "\u3000y"}},
		{"a\x1c\x1cb", []string{"a", "\x1c\x1c", "b"}},
		{"a\xffb", []string{"a", "\ufffdb"}},
		{"a\u200bb", []string{"a", "\u200bb"}}, // zero-width space is a format char, not \s
	}
	for _, c := range both {
		assert.Equal(t, c.want, words(qwen2, c.in), "qwen2 %q", c.in)
		assert.Equal(t, c.want, words(qwen35, c.in), "qwen35 %q", c.in)
	}
	marks := []struct {
		in           string
		qwen2, qwen5 []string
	}{
		{"e\u0301!", []string{"e", "\u0301!"}, []string{"e\u0301", "!"}},
		{" \u0301a", []string{" \u0301", "a"}, []string{" \u0301a"}},
		{"नमस्ते", []string{"नमस", "्त", "े"}, []string{"नमस्ते"}},
	}
	for _, c := range marks {
		assert.Equal(t, c.qwen2, words(qwen2, c.in), "qwen2 %q", c.in)
		assert.Equal(t, c.qwen5, words(qwen35, c.in), "qwen35 %q", c.in)
	}
}

func TestClassify(t *testing.T) {
	for r, want := range map[rune]charClass{
		'a': classLetter, 'Z': classLetter, '7': classNumber, ' ': classSpace, '\v': classSpace,
		'\x1c': classOther, '_': classOther, '\x85': classSpace, '\u00a0': classSpace,
		'\u2028': classSpace, '\u3000': classSpace, '\u200b': classOther, '\u0301': classMark,
		'\u0903': classMark, '²': classNumber, 'Ⅻ': classNumber, 'ª': classLetter, 'ǅ': classLetter,
		'\U0002EBF0': classLetter, '\U0002EE5D': classLetter, '\U0002EE5E': classOther,
		'\u31EF': classOther, 0xD800: classOther, '😀': classOther, '\ufffd': classOther,
	} {
		assert.Equal(t, want, classify(r), "%U", r)
	}
}

// TestUnicodeTablesVersion guards classify's one patch: Go's tables are
// Unicode 15.0 and llama.cpp's 15.1. A Go release with newer tables needs
// the patch (and any new differences) reviewed against llama.cpp.
func TestUnicodeTablesVersion(t *testing.T) {
	require.Equal(t, "15.0.0", unicode.Version)
	assert.False(t, unicode.IsLetter(cjkExtensionIFirst), "Go's tables gained CJK Extension I")
}

func TestDecodeRuneLikeLlama(t *testing.T) {
	for in, want := range map[string]struct {
		r rune
		w int
	}{
		"a":                {'a', 1},
		"é":                {'é', 2},
		"\xc0\x80":         {0, 2},      // overlong NUL, accepted
		"\xed\xa0\x80":     {0xD800, 3}, // surrogate, accepted
		"\xf4\x90\x80\x80": {utf8.RuneError, 1},
		"\xe2\x82":         {utf8.RuneError, 1},
		"\x80":             {utf8.RuneError, 1},
		"\xf8\x88\x80\x80": {utf8.RuneError, 1},
	} {
		r, w := decodeRune(in, 0)
		assert.Equal(t, want.r, r, "%q", in)
		assert.Equal(t, want.w, w, "%q", in)
	}
	assert.Equal(t, "\x00", canonicalText("\xc0\x80"))
	assert.Equal(t, "\xed\xa0\x80", canonicalText("\xed\xa0\x80\xff")[:3])
	assert.Equal(t, "x\ufffd\ufffdy", canonicalText("x\xe2\x82y"))
	assert.Equal(t, "x\ufffd\ufffdy", canonicalText("x\x80\x80y"))
}

func TestInvalidUTF8EncodesAsReplacement(t *testing.T) {
	tok := loadGGUF(t, oracles[0].model)
	assert.Equal(t, tok.Encode("a\ufffdb\ufffd\ufffd"), tok.Encode("a\xffb\xe2\x82"))
}

type extraToken struct {
	text string
	typ  TokenType
}

// smallVocab has the 256 byte tokens, the merges "a b" and "ab c", and then
// the extra tokens.
func smallVocab(extra ...extraToken) Vocab {
	v := Vocab{Model: "gpt2", Pre: "qwen2", BOS: NoToken, EOS: NoToken, EOT: NoToken, PAD: NoToken}
	for b := range 256 {
		v.Tokens = append(v.Tokens, string(byteRune[b]))
		v.Types = append(v.Types, TypeNormal)
	}
	for _, m := range []string{"a b", "ab c"} {
		v.Tokens = append(v.Tokens, strings.ReplaceAll(m, " ", ""))
		v.Types = append(v.Types, TypeNormal)
		v.Merges = append(v.Merges, m)
	}
	for _, e := range extra {
		v.Tokens = append(v.Tokens, e.text)
		v.Types = append(v.Types, e.typ)
	}
	return v
}

func TestSpecialTokens(t *testing.T) {
	v := smallVocab(extraToken{"xab", TypeControl}, extraToken{"yx", TypeControl}, extraToken{"<u>", TypeUserDefined})
	tok, err := New(v)
	require.NoError(t, err)
	id := func(s string) int32 {
		i, ok := tok.ID(s)
		require.True(t, ok, s)
		return i
	}
	// Longest special first, not leftmost: "xab" wins over the earlier "yx".
	assert.Equal(t, []int32{id("y"), id("xab")}, tok.Encode("yxab"))
	assert.Equal(t, []int32{id("abc"), id("yx"), id("<u>"), id("abc")}, tok.Encode("abcyx<u>abc"))
	// EncodeText leaves control tokens as text but still sees user-defined ones.
	assert.Equal(t, []int32{id("y"), id("x"), id("ab"), id("<u>")}, tok.EncodeText("yxab<u>"))
	assert.Empty(t, tok.Encode(""))
}

// TestEOGTextsAreControl: like llama.cpp, a token spelled "<|im_end|>" ends
// generation and is parsed as a control token even when stored as normal.
func TestEOGTextsAreControl(t *testing.T) {
	tok, err := New(smallVocab(extraToken{"<|im_end|>", TypeNormal}))
	require.NoError(t, err)
	end, _ := tok.ID("<|im_end|>")
	a, _ := tok.ID("a")
	assert.True(t, tok.IsEOG(end))
	_, typ, err := tok.Token(end)
	require.NoError(t, err)
	assert.Equal(t, TypeControl, typ)
	assert.Equal(t, []int32{a, end}, tok.Encode("a<|im_end|>"))
	assert.Len(t, tok.EncodeText("a<|im_end|>"), 11)
}

func TestAddBOSAndEOS(t *testing.T) {
	v := smallVocab(extraToken{"<s>", TypeControl}, extraToken{"</s>", TypeControl})
	v.BOS, v.EOS, v.AddBOS, v.AddEOS = int32(len(v.Tokens)-2), int32(len(v.Tokens)-1), true, true
	tok, err := New(v)
	require.NoError(t, err)
	assert.Equal(t, []int32{v.BOS, 257, v.EOS}, tok.Encode("abc"))
	assert.Equal(t, []int32{257}, tok.EncodeText("abc"))
	assert.True(t, tok.IsEOG(v.EOS))
}

// TestMergeToNonToken covers a vocabulary whose merge result is not a token:
// llama.cpp keeps merging and, if the final symbol is no token, emits the
// tokens of its single bytes.
func TestMergeToNonToken(t *testing.T) {
	v := smallVocab()
	v.Merges = append([]string{"x y", "xy z"}, v.Merges...) // "xy" and "xyz" are not tokens
	tok, err := New(v)
	require.NoError(t, err)
	x, _ := tok.ID("x")
	y, _ := tok.ID("y")
	z, _ := tok.ID("z")
	assert.Equal(t, []int32{x, y, z}, tok.Encode("xyz"))
	abc, _ := tok.ID("abc")
	assert.Equal(t, []int32{abc, x, y}, tok.Encode("abcxy"))
}

func TestNewRejectsBadVocab(t *testing.T) {
	good := smallVocab()
	for name, c := range map[string]struct {
		edit func(v *Vocab)
		err  error
	}{
		"model":          {func(v *Vocab) { v.Model = "llama" }, ErrUnsupported},
		"pre":            {func(v *Vocab) { v.Pre = "llama3" }, ErrUnsupported},
		"no tokens":      {func(v *Vocab) { v.Tokens, v.Types = nil, nil }, ErrInvalidVocab},
		"types length":   {func(v *Vocab) { v.Types = v.Types[1:] }, ErrInvalidVocab},
		"empty token":    {func(v *Vocab) { v.Tokens[3] = "" }, ErrInvalidVocab},
		"duplicate":      {func(v *Vocab) { v.Tokens[3] = v.Tokens[4] }, ErrInvalidVocab},
		"bos range":      {func(v *Vocab) { v.BOS = int32(len(v.Tokens)) }, ErrInvalidVocab},
		"eot negative":   {func(v *Vocab) { v.EOT = -5 }, ErrInvalidVocab},
		"add bos, no id": {func(v *Vocab) { v.AddBOS = true }, ErrInvalidVocab},
	} {
		v := good
		v.Tokens = append([]string(nil), good.Tokens...)
		v.Types = append([]TokenType(nil), good.Types...)
		c.edit(&v)
		_, err := New(v)
		assert.ErrorIs(t, err, c.err, name)
	}
	v := good
	v.Types = nil // all normal
	_, err := New(v)
	assert.NoError(t, err)
}

func TestDecodeErrors(t *testing.T) {
	tok := loadGGUF(t, oracles[0].model)
	for _, id := range []int32{-1, 759, 1 << 30} {
		_, err := tok.Decode([]int32{64, id})
		assert.ErrorIs(t, err, ErrUnknownToken)
		_, err = tok.NewDecoder().Write(id)
		assert.ErrorIs(t, err, ErrUnknownToken)
		_, _, err = tok.Token(id)
		assert.ErrorIs(t, err, ErrUnknownToken)
	}
}

func TestDecoderHoldsIncompleteUTF8(t *testing.T) {
	tok := loadGGUF(t, oracles[0].model)
	// Byte tokens: 127 = 0xC3, 102 = 0xA9 ("é" split in two), 172 253 246 222 =
	// F0 9F 98 80 ("😀"), 187 = 0xFF (never valid), 64 = "a".
	d := tok.NewDecoder()
	steps := []struct {
		id   int32
		want string
	}{
		{64, "a"}, {127, ""}, {102, "é"}, {172, ""}, {253, ""}, {246, ""}, {222, "😀"},
		{187, "\xff"}, {127, ""}, {64, "\xc3a"}, {172, ""}, {253, ""},
	}
	for i, s := range steps {
		got, err := d.Write(s.id)
		require.NoError(t, err)
		assert.Equal(t, s.want, string(got), "step %d", i)
	}
	assert.Equal(t, "\xf0\x9f", string(d.Flush()))
	assert.Empty(t, d.Flush())
}

// TestAppendPieceRendersTypes covers the piece of each token type.
func TestAppendPieceRendersTypes(t *testing.T) {
	v := smallVocab(extraToken{"<0x41>", TypeByte}, extraToken{"<ctl>", TypeControl},
		extraToken{"<unused>", TypeUnused}, extraToken{"<0xZZ>", TypeByte})
	tok, err := New(v)
	require.NoError(t, err)
	for text, want := range map[string]string{"<0x41>": "A", "<ctl>": "<ctl>", "<unused>": "", "<0xZZ>": "<0xZZ>", "Ġ": " ", "Ċ": "\n"} {
		id, ok := tok.ID(text)
		require.True(t, ok)
		got, err := tok.AppendPiece([]byte("x"), id)
		require.NoError(t, err)
		assert.Equal(t, "x"+want, string(got), text)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok := loadGGUF(t, oracles[1].model)
	cases := loadCases(t, oracles[1].cases)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				c := cases.Cases[(g+i)%len(cases.Cases)]
				if got := tok.Encode(c.Text); len(got) != len(c.IDs) {
					t.Errorf("%q: %d ids, want %d", c.Text, len(got), len(c.IDs))
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

func FuzzEncodeDecode(f *testing.F) {
	for _, o := range oracles {
		for _, c := range loadCases(f, o.cases).Cases {
			f.Add(c.Text)
		}
	}
	f.Add("a\xffb\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80")
	toks := []*Tokenizer{loadGGUF(f, oracles[0].model), loadGGUF(f, oracles[1].model)}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range toks {
			for _, ids := range [][]int32{tok.Encode(s), tok.EncodeText(s)} {
				text, err := tok.Decode(ids)
				if err != nil {
					t.Fatal(err)
				}
				if string(text) != canonicalText(s) {
					t.Fatalf("%s: %q decodes to %q", tok.Pre(), s, text)
				}
			}
		}
	})
}
