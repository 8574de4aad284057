package experts

import (
	"fmt"
	"math/bits"
)

// Type is a ggml tensor element type, numbered as in ggml.h. The numbering
// has gaps (ids retired by llama.cpp) and only grows at the end.
type Type uint32

// The ggml types as llama.cpp defines them. Ids 4, 5, 31–33 and 36–38 were
// retired and are not valid in GGUF files.
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
	TypeTQ1_0   Type = 34
	TypeTQ2_0   Type = 35
	TypeMXFP4   Type = 39
	TypeNVFP4   Type = 40
	TypeQ1_0    Type = 41
	TypeQ2_0    Type = 42
)

// typeTraits describes the storage of one type: elements are stored in
// blocks of blockSize elements taking blockBytes bytes.
type typeTraits struct {
	name       string
	blockSize  int
	blockBytes int
}

// typeTable is indexed by Type; the zero entry marks an id llama.cpp does not
// define. An array, not a map: BlockSize and BlockBytes sit on hot paths.
var typeTable = [...]typeTraits{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 18},
	TypeQ4_1:    {"Q4_1", 32, 20},
	TypeQ5_0:    {"Q5_0", 32, 22},
	TypeQ5_1:    {"Q5_1", 32, 24},
	TypeQ8_0:    {"Q8_0", 32, 34},
	TypeQ8_1:    {"Q8_1", 32, 36},
	TypeQ2_K:    {"Q2_K", 256, 84},
	TypeQ3_K:    {"Q3_K", 256, 110},
	TypeQ4_K:    {"Q4_K", 256, 144},
	TypeQ5_K:    {"Q5_K", 256, 176},
	TypeQ6_K:    {"Q6_K", 256, 210},
	TypeQ8_K:    {"Q8_K", 256, 292},
	TypeIQ2_XXS: {"IQ2_XXS", 256, 66},
	TypeIQ2_XS:  {"IQ2_XS", 256, 74},
	TypeIQ3_XXS: {"IQ3_XXS", 256, 98},
	TypeIQ1_S:   {"IQ1_S", 256, 50},
	TypeIQ4_NL:  {"IQ4_NL", 32, 18},
	TypeIQ3_S:   {"IQ3_S", 256, 110},
	TypeIQ2_S:   {"IQ2_S", 256, 82},
	TypeIQ4_XS:  {"IQ4_XS", 256, 136},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", 256, 56},
	TypeBF16:    {"BF16", 1, 2},
	TypeTQ1_0:   {"TQ1_0", 256, 54},
	TypeTQ2_0:   {"TQ2_0", 256, 66},
	TypeMXFP4:   {"MXFP4", 32, 17},
	TypeNVFP4:   {"NVFP4", 64, 36},
	TypeQ1_0:    {"Q1_0", 128, 18},
	TypeQ2_0:    {"Q2_0", 64, 18},
}

// Known reports whether t is a type llama.cpp defines today.
func (t Type) Known() bool {
	_, ok := t.traits()
	return ok
}

func (t Type) traits() (typeTraits, bool) {
	if int(t) >= len(typeTable) || typeTable[t].blockSize == 0 {
		return typeTraits{}, false
	}
	return typeTable[t], true
}

// String returns ggml's name for the type, or "type(N)" for an unknown id.
func (t Type) String() string {
	if tr, ok := t.traits(); ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of elements in one storage block (1 for plain
// numeric types), or 0 for an unknown type.
func (t Type) BlockSize() int {
	tr, _ := t.traits()
	return tr.blockSize
}

// BlockBytes is the number of bytes one storage block takes, or 0 for an
// unknown type.
func (t Type) BlockBytes() int {
	tr, _ := t.traits()
	return tr.blockBytes
}

// Quantized reports whether elements are stored in multi-element blocks.
func (t Type) Quantized() bool { return t.BlockSize() > 1 }

// TypeByName looks a type up by its ggml name (e.g. "Q4_K").
func TypeByName(name string) (Type, bool) {
	for t, tr := range typeTable {
		if tr.blockSize != 0 && tr.name == name {
			return Type(t), true
		}
	}
	return 0, false
}

// RowBytes returns the storage size of n elements of type t. It fails for an
// unknown type, for n not a multiple of the block size, and on overflow.
func (t Type) RowBytes(n uint64) (uint64, error) {
	tr, ok := t.traits()
	if !ok {
		return 0, fmt.Errorf("%w: %v", ErrUnknownType, t)
	}
	if n%uint64(tr.blockSize) != 0 {
		return 0, fmt.Errorf("experts: %d elements of %v is not a whole number of %d-element blocks", n, t, tr.blockSize)
	}
	hi, lo := bits.Mul64(n/uint64(tr.blockSize), uint64(tr.blockBytes))
	if hi != 0 {
		return 0, fmt.Errorf("experts: size of %d elements of %v overflows", n, t)
	}
	return lo, nil
}
