package experts

import "fmt"

// Typed metadata getters. Each fails with an error wrapping ErrKeyNotFound
// when the key is absent and ErrValueType when its value does not convert
// (see Value for the conversions).

// Uint returns a non-negative integer value.
func (f *File) Uint(key string) (uint64, error) {
	return get(f, key, "an unsigned integer", Value.AsUint)
}

// Int returns an integer value that fits an int64.
func (f *File) Int(key string) (int64, error) {
	return get(f, key, "an integer", Value.AsInt)
}

// Float returns a numeric value as a float64.
func (f *File) Float(key string) (float64, error) {
	return get(f, key, "a number", Value.AsFloat)
}

// String returns a string value.
func (f *File) String(key string) (string, error) {
	return get(f, key, "a string", Value.AsString)
}

// Bool returns a boolean value.
func (f *File) Bool(key string) (bool, error) {
	return get(f, key, "a bool", Value.AsBool)
}

// Strings returns an array of strings.
func (f *File) Strings(key string) ([]string, error) {
	return get(f, key, "an array of strings", Value.AsStrings)
}

// Ints returns an array of integers.
func (f *File) Ints(key string) ([]int64, error) {
	return get(f, key, "an array of integers", Value.AsInts)
}

// Floats returns an array of numbers.
func (f *File) Floats(key string) ([]float64, error) {
	return get(f, key, "an array of numbers", Value.AsFloats)
}

func get[T any](f *File, key, want string, as func(Value) (T, bool)) (T, error) {
	var zero T
	v, ok := f.Value(key)
	if !ok {
		return zero, fmt.Errorf("%w: %q", ErrKeyNotFound, key)
	}
	x, ok := as(v)
	if !ok {
		return zero, fmt.Errorf("%w: %q is %s, want %s", ErrValueType, key, v.describe(), want)
	}
	return x, nil
}

// describe names a value's type and, for a scalar, its value.
func (v Value) describe() string {
	if v.typ == ValueArray {
		return fmt.Sprintf("an array of %d %v", v.Len(), v.elem)
	}
	return fmt.Sprintf("%v %v", v.typ, v)
}
