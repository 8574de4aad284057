//go:build unix

package cuda

import (
	"fmt"
	"os"
	"syscall"
)

// mapDeviceMemory maps the bytes of a host backend buffer outside the Go
// heap, so that emulated kernels (C++) may address them under cgo's rules,
// and so that Buffer.Addr is their real address, which kernels can follow
// from tables of pointers. The buffer ends where an inaccessible guard page
// begins (its start stays hostAlign-aligned), so an emulated kernel that
// reads or writes past its end faults at once, and the launch fails, rather
// than touching a neighbour.
func mapDeviceMemory(size int64) (mapping, data []byte, err error) {
	page := int64(os.Getpagesize())
	span := (size + page - 1) / page * page
	mapping, err = syscall.Mmap(-1, 0, int(span+page), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("cuda: Alloc(%d): mmap: %v: %w", size, err, ErrOutOfMemory)
	}
	if err := syscall.Mprotect(mapping[span:], syscall.PROT_NONE); err != nil {
		syscall.Munmap(mapping)
		return nil, nil, fmt.Errorf("cuda: Alloc(%d): guard page: %v: %w", size, err, ErrOutOfMemory)
	}
	start := span - (size+hostAlign-1)/hostAlign*hostAlign
	return mapping, mapping[start : start+size : start+size], nil
}

func unmapDeviceMemory(mapping []byte) { syscall.Munmap(mapping) }
