package experts

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ValueType is the type of a GGUF metadata value, numbered as in the GGUF
// specification.
type ValueType uint32

// The GGUF metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	ValueUint8:   "uint8",
	ValueInt8:    "int8",
	ValueUint16:  "uint16",
	ValueInt16:   "int16",
	ValueUint32:  "uint32",
	ValueInt32:   "int32",
	ValueFloat32: "float32",
	ValueBool:    "bool",
	ValueString:  "string",
	ValueArray:   "array",
	ValueUint64:  "uint64",
	ValueInt64:   "int64",
	ValueFloat64: "float64",
}

// String returns the type's name ("uint32", "array", ...).
func (t ValueType) String() string {
	if t.valid() {
		return valueTypeNames[t]
	}
	return "valuetype(" + strconv.FormatUint(uint64(t), 10) + ")"
}

func (t ValueType) valid() bool { return uint64(t) < uint64(len(valueTypeNames)) }

// size is the encoded size of a fixed-size value, 0 for strings and arrays.
func (t ValueType) size() int {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// KV is one metadata key and its value.
type KV struct {
	Key   string
	Value Value
}

// Value is one GGUF metadata value: a scalar, a string or an array (whose
// elements may themselves be arrays). The zero Value has no type and
// converts to nothing.
//
// The As methods convert: AsUint, AsInt and AsFloat accept any numeric
// scalar whose value the result can hold exactly (AsFloat also accepts
// integers), the array accessors likewise per element. They report false
// when the value has another type.
type Value struct {
	typ  ValueType
	elem ValueType // element type of an array
	// x holds a scalar as its Go type (uint8 ... float64, bool, string) or an
	// array as a slice of that type; nested arrays are []Value.
	x any
}

// Type is the value's type; for arrays, ValueArray.
func (v Value) Type() ValueType { return v.typ }

// ElemType is the element type of an array (ValueArray for nested arrays).
func (v Value) ElemType() ValueType { return v.elem }

// Len is the number of elements of an array, 0 for any other value.
func (v Value) Len() int {
	switch a := v.x.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	case []Value:
		return len(a)
	}
	return 0
}

// Index returns element i of an array as a Value. It panics if v is not an
// array or i is out of range, like indexing a slice.
func (v Value) Index(i int) Value {
	e := Value{typ: v.elem}
	switch a := v.x.(type) {
	case []uint8:
		e.x = a[i]
	case []int8:
		e.x = a[i]
	case []uint16:
		e.x = a[i]
	case []int16:
		e.x = a[i]
	case []uint32:
		e.x = a[i]
	case []int32:
		e.x = a[i]
	case []float32:
		e.x = a[i]
	case []bool:
		e.x = a[i]
	case []string:
		e.x = a[i]
	case []uint64:
		e.x = a[i]
	case []int64:
		e.x = a[i]
	case []float64:
		e.x = a[i]
	case []Value:
		return a[i]
	default:
		panic("experts: Index of a " + v.typ.String() + " value")
	}
	return e
}

// AsUint returns an integer scalar that is not negative.
func (v Value) AsUint() (uint64, bool) {
	if u, ok := v.x.(uint64); ok {
		return u, true
	}
	i, ok := v.AsInt()
	if !ok || i < 0 {
		return 0, false
	}
	return uint64(i), true
}

// AsInt returns an integer scalar that fits an int64.
func (v Value) AsInt() (int64, bool) {
	switch x := v.x.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// AsFloat returns a numeric scalar as a float64. Integers beyond 2^53 lose
// precision.
func (v Value) AsFloat() (float64, bool) {
	switch x := v.x.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case uint64:
		return float64(x), true
	}
	i, ok := v.AsInt()
	return float64(i), ok
}

// AsBool returns a boolean scalar.
func (v Value) AsBool() (bool, bool) {
	b, ok := v.x.(bool)
	return b, ok
}

// AsString returns a string scalar.
func (v Value) AsString() (string, bool) {
	s, ok := v.x.(string)
	return s, ok
}

// AsStrings returns a copy of an array of strings.
func (v Value) AsStrings() ([]string, bool) {
	a, ok := v.x.([]string)
	return slices.Clone(a), ok
}

// AsInts returns an array of integers as int64s; it fails for an array of
// uint64 holding a value beyond math.MaxInt64.
func (v Value) AsInts() ([]int64, bool) {
	switch a := v.x.(type) {
	case []uint8:
		return widen[int64](a), true
	case []int8:
		return widen[int64](a), true
	case []uint16:
		return widen[int64](a), true
	case []int16:
		return widen[int64](a), true
	case []uint32:
		return widen[int64](a), true
	case []int32:
		return widen[int64](a), true
	case []int64:
		return slices.Clone(a), true
	case []uint64:
		for _, x := range a {
			if x > math.MaxInt64 {
				return nil, false
			}
		}
		return widen[int64](a), true
	}
	return nil, false
}

// AsFloats returns a numeric array as float64s.
func (v Value) AsFloats() ([]float64, bool) {
	switch a := v.x.(type) {
	case []float32:
		return widen[float64](a), true
	case []float64:
		return slices.Clone(a), true
	case []uint64:
		return widen[float64](a), true
	}
	ints, ok := v.AsInts()
	if !ok {
		return nil, false
	}
	return widen[float64](ints), true
}

type number interface {
	~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32 | ~uint64 | ~int64 | ~float32 | ~float64
}

func widen[T, S number](a []S) []T {
	out := make([]T, len(a))
	for i, x := range a {
		out[i] = T(x)
	}
	return out
}

// maxFormattedElems bounds how many array elements String prints.
const maxFormattedElems = 8

// String formats the value for people: a string value as itself, numbers in
// Go syntax, arrays as their first elements and length.
func (v Value) String() string {
	if v.typ != ValueArray {
		if v.x == nil {
			return "<none>"
		}
		return fmt.Sprint(v.x)
	}
	n := v.Len()
	var b strings.Builder
	b.WriteByte('[')
	for i := range min(n, maxFormattedElems) {
		if i > 0 {
			b.WriteByte(' ')
		}
		e := v.Index(i)
		if e.typ == ValueString {
			b.WriteString(strconv.Quote(e.x.(string)))
		} else {
			b.WriteString(e.String())
		}
	}
	if n > maxFormattedElems {
		fmt.Fprintf(&b, " ... (%d %v)", n, v.elem)
	}
	b.WriteByte(']')
	return b.String()
}
