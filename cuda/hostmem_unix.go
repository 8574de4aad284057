//go:build unix

package cuda

import (
	"fmt"
	"syscall"
)

// mapDeviceMemory allocates the bytes of a host backend buffer outside the Go
// heap, so that emulated kernels (C++) may address them under cgo's rules,
// and so that Buffer.Addr is their real address, which kernels can follow
// from tables of pointers.
func mapDeviceMemory(size int64) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("cuda: Alloc(%d): mmap: %v: %w", size, err, ErrOutOfMemory)
	}
	return b, nil
}

func unmapDeviceMemory(b []byte) { syscall.Munmap(b) }
