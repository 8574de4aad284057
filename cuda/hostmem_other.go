//go:build !unix

package cuda

// mapDeviceMemory allocates the bytes of a host backend buffer; without
// mmap they are Go memory (no emulator runs on these systems).
func mapDeviceMemory(size int64) ([]byte, error) { return make([]byte, size), nil }

func unmapDeviceMemory([]byte) {}
