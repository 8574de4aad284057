package tokenizer

import (
	"errors"
	"fmt"
	"math"

	"github.com/rotary-moe/rotary/experts"
)

// GGUF metadata keys read by FromGGUF.
const (
	keyModel  = "tokenizer.ggml.model"
	keyPre    = "tokenizer.ggml.pre"
	keyTokens = "tokenizer.ggml.tokens"
	keyTypes  = "tokenizer.ggml.token_type"
	keyMerges = "tokenizer.ggml.merges"
	keyBOS    = "tokenizer.ggml.bos_token_id"
	keyEOS    = "tokenizer.ggml.eos_token_id"
	keyEOT    = "tokenizer.ggml.eot_token_id"
	keyPAD    = "tokenizer.ggml.padding_token_id"
	keyAddBOS = "tokenizer.ggml.add_bos_token"
	keyAddEOS = "tokenizer.ggml.add_eos_token"
)

// VocabFromGGUF reads the tokenizer data of a GGUF file. Absent special
// token ids are NoToken and absent add_bos/add_eos flags false (llama.cpp
// would fall back to id 11 for a gpt2 vocabulary).
func VocabFromGGUF(f *experts.File) (Vocab, error) {
	v := Vocab{BOS: NoToken, EOS: NoToken, EOT: NoToken, PAD: NoToken}
	var err error
	if v.Model, err = f.String(keyModel); err != nil {
		return Vocab{}, keyError(keyModel, err)
	}
	if v.Pre, err = f.String(keyPre); err != nil {
		return Vocab{}, keyError(keyPre, err)
	}
	if v.Tokens, err = f.Strings(keyTokens); err != nil {
		return Vocab{}, keyError(keyTokens, err)
	}
	if v.Merges, err = f.Strings(keyMerges); err != nil {
		return Vocab{}, keyError(keyMerges, err)
	}
	switch types, err := f.Ints(keyTypes); {
	case errors.Is(err, experts.ErrKeyNotFound):
	case err != nil:
		return Vocab{}, keyError(keyTypes, err)
	case len(types) < len(v.Tokens):
		// Extra entries are ignored, as llama.cpp does.
		return Vocab{}, fmt.Errorf("%w: %s has %d entries for %d tokens", ErrInvalidVocab, keyTypes, len(types), len(v.Tokens))
	default:
		v.Types = make([]TokenType, len(v.Tokens))
		for i := range v.Types {
			if types[i] < math.MinInt32 || types[i] > math.MaxInt32 {
				return Vocab{}, fmt.Errorf("%w: %s[%d] = %d", ErrInvalidVocab, keyTypes, i, types[i])
			}
			v.Types[i] = TokenType(types[i])
		}
	}
	for _, id := range []struct {
		key string
		dst *int32
	}{{keyBOS, &v.BOS}, {keyEOS, &v.EOS}, {keyEOT, &v.EOT}, {keyPAD, &v.PAD}} {
		switch n, err := f.Uint(id.key); {
		case errors.Is(err, experts.ErrKeyNotFound):
		case err != nil:
			return Vocab{}, keyError(id.key, err)
		case n >= uint64(len(v.Tokens)):
			return Vocab{}, fmt.Errorf("%w: %s = %d, outside the %d tokens", ErrInvalidVocab, id.key, n, len(v.Tokens))
		default:
			*id.dst = int32(n)
		}
	}
	for _, flag := range []struct {
		key string
		dst *bool
	}{{keyAddBOS, &v.AddBOS}, {keyAddEOS, &v.AddEOS}} {
		switch b, err := f.Bool(flag.key); {
		case errors.Is(err, experts.ErrKeyNotFound):
		case err != nil:
			return Vocab{}, keyError(flag.key, err)
		default:
			*flag.dst = b
		}
	}
	return v, nil
}

// FromGGUF builds the tokenizer described by a GGUF file's metadata.
func FromGGUF(f *experts.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return New(v)
}

func keyError(key string, err error) error {
	return fmt.Errorf("tokenizer: GGUF key %s: %w", key, err)
}
