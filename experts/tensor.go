package experts

// TensorInfo describes one tensor of a GGUF file. The reader has checked
// that its data lie inside the file, aligned, without overlapping another
// tensor's. Callers must not modify it.
type TensorInfo struct {
	Name string
	Type Type
	// Dims is the ggml shape ne: Dims[0] is the contiguous (row) dimension.
	// It has 1 to 4 entries, each at least 1.
	Dims []uint64
	// Offset is the absolute file offset of the tensor's data.
	Offset int64
	// Size is the number of bytes of the tensor's data.
	Size int64

	// infoOffset is where the tensor's description starts in the header,
	// so that later checks (the model view's) can point at it.
	infoOffset int64
}

// Elements is the number of elements, the product of the dimensions.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Stride is ggml's nb[i]: the byte distance between consecutive indices of
// dimension i. Stride(0) is the size of one block, Stride(1) the size of a
// row; for i >= len(Dims) it is Size, as if the missing dimensions were 1.
// Expert e of a stacked expert tensor starts e*Stride(2) bytes into it.
func (t *TensorInfo) Stride(i int) int64 {
	s := int64(t.Type.BlockBytes())
	if s == 0 {
		return 0 // unknown type: no layout
	}
	for j := range min(i, len(t.Dims)) {
		if j == 0 {
			s *= int64(t.Dims[0]) / int64(t.Type.BlockSize())
		} else {
			s *= int64(t.Dims[j])
		}
	}
	return s
}
