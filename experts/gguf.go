package experts

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"

	"github.com/edsrzf/mmap-go"
)

// File is a GGUF file mapped read-only. Its header is parsed and checked
// when it is opened; tensor data are read from the mapping on demand.
//
// A File is safe for concurrent use. Its metadata stay readable after Close;
// its data do not.
type File struct {
	path       string
	size       int64
	version    uint32
	alignment  int64
	dataOffset int64

	kvs         []KV
	kvIndex     map[string]int
	tensors     []*TensorInfo
	tensorIndex map[string]*TensorInfo

	mu     sync.RWMutex // Close takes it exclusively, so no read copies from an unmapped region
	data   []byte       // the whole file; nil once closed
	unmap  func() error // releases data; nil for a File over plain memory
	closed bool
}

// Open maps the GGUF file at path read-only and parses its header. Every
// header field is checked against the file size and the reader's limits;
// a malformed file gives a *FormatError. The File must be closed.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("experts: %w", err)
	}
	// The mapping outlives the descriptor.
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("experts: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("experts: %s: not a regular file", path)
	}
	size := st.Size()
	if size > math.MaxInt {
		return nil, fmt.Errorf("experts: %s: %d bytes do not fit in this platform's address space", path, size)
	}
	var m mmap.MMap
	if size > 0 { // an empty mapping is an error; an empty file fails to parse below
		if m, err = mmap.MapRegion(fd, int(size), mmap.RDONLY, 0, 0); err != nil {
			return nil, fmt.Errorf("experts: map %s: %w", path, err)
		}
	}
	var f *File
	// The header is read from the mapping too: protect it against the file
	// shrinking under us.
	err = guardFaults(path, m, func() (err error) {
		f, err = parse(path, m)
		return err
	})
	if err != nil {
		if m != nil {
			_ = m.Unmap() // the parse error is the one to report
		}
		return nil, err
	}
	f.unmap = m.Unmap // m is not nil: an empty file does not parse
	return f, nil
}

// Close unmaps the file. Views returned by TensorData and Mapping must not
// be used afterwards. Closing twice is harmless.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	if f.unmap == nil {
		return nil
	}
	unmap := f.unmap
	f.unmap = nil
	if err := unmap(); err != nil {
		return fmt.Errorf("experts: unmap %s: %w", f.path, err)
	}
	return nil
}

// Path is the name the file was opened with.
func (f *File) Path() string { return f.path }

// Version is the GGUF version, 2 or 3.
func (f *File) Version() uint32 { return f.version }

// Alignment is the alignment of tensor data in bytes (general.alignment,
// 32 by default).
func (f *File) Alignment() int64 { return f.alignment }

// DataOffset is the file offset where the tensor data section starts.
func (f *File) DataOffset() int64 { return f.dataOffset }

// Size is the size of the file in bytes when it was opened.
func (f *File) Size() int64 { return f.size }

// KVs returns the metadata in file order.
func (f *File) KVs() []KV { return slices.Clone(f.kvs) }

// Value looks a metadata key up.
func (f *File) Value(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.kvs[i].Value, true
}

// Tensors returns the tensors in file order.
func (f *File) Tensors() []*TensorInfo { return slices.Clone(f.tensors) }

// Tensor looks a tensor up by name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	t, ok := f.tensorIndex[name]
	return t, ok
}

// TensorData returns t's data as a view into the mapping: no copy is made,
// and the view is valid until Close. Reading it faults (SIGBUS, which kills
// the process) if the file is truncated meanwhile; see ReadAt for a
// protected copy.
func (f *File) TensorData(t *TensorInfo) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrClosed
	}
	if own, ok := f.tensorIndex[t.Name]; !ok || own != t {
		return nil, fmt.Errorf("experts: tensor %q is not one of %s's", t.Name, f.path)
	}
	end := t.Offset + t.Size
	return f.data[t.Offset:end:end], nil
}

// Mapping returns the whole read-only mapping (nil after Close), e.g. to
// register it with a GPU driver as pinned memory. It must not be written
// to, and it is not protected against the file being truncated.
func (f *File) Mapping() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.data
}

// ReadAt copies len(p) bytes at file offset off out of the mapping
// (io.ReaderAt). Unlike reads of the views TensorData returns, it survives
// the file being truncated after it was mapped: the page fault becomes an
// error wrapping ErrFault.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("experts: ReadAt %s: negative offset %d", f.path, off)
	}
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	src := f.data[off:]
	n := min(len(p), len(src))
	if err := guardFaults(f.path, f.data, func() error {
		copy(p[:n], src)
		return nil
	}); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WillNeed asks the kernel to start reading [off, off+n) of the file into
// the page cache in the background (madvise MADV_WILLNEED), e.g. before
// copying an expert out of a file that is not cached yet. It is a no-op on
// systems without madvise.
//
// The mapping keeps the kernel's default read-ahead, not MADV_RANDOM: an
// expert is read at a random place but as one contiguous range of hundreds
// of KiB, which read-ahead serves in a few large reads where MADV_RANDOM
// would fault it in page by page.
func (f *File) WillNeed(off, n int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrClosed
	}
	if off < 0 || n < 0 || off > int64(len(f.data)) || n > int64(len(f.data))-off {
		return fmt.Errorf("experts: WillNeed %s: range [%d, %d+%d) outside the %d-byte file", f.path, off, off, n, len(f.data))
	}
	if f.unmap == nil || n == 0 {
		return nil // not a mapping
	}
	page := int64(os.Getpagesize())
	start := off &^ (page - 1)
	return adviseWillNeed(f.data[start : off+n])
}

// DontNeed tells the kernel that the program is done with [off, off+n) of
// the file for now (madvise MADV_DONTNEED): the mapping's pages in that
// range leave the process's resident set, and the page cache keeps them, so
// reading them again costs a page fault, not a disk read. A program that
// copies a model larger than its memory out of the mapping piece by piece
// (ReadAt) calls it after each piece, so that its resident memory does not
// grow toward the file's size. Only the pages wholly inside the range are
// released, so data next to it stays mapped. It is a no-op on systems
// without madvise.
func (f *File) DontNeed(off, n int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrClosed
	}
	if off < 0 || n < 0 || off > int64(len(f.data)) || n > int64(len(f.data))-off {
		return fmt.Errorf("experts: DontNeed %s: range [%d, %d+%d) outside the %d-byte file", f.path, off, off, n, len(f.data))
	}
	page := int64(os.Getpagesize())
	start, end := (off+page-1)&^(page-1), (off+n)&^(page-1)
	if f.unmap == nil || start >= end {
		return nil // not a mapping, or no whole page
	}
	return adviseDontNeed(f.data[start:end])
}
