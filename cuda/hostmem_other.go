//go:build !unix

package cuda

// mapDeviceMemory allocates the bytes of a host backend buffer; without
// mmap they are Go memory (no emulator runs on these systems).
func mapDeviceMemory(size int64) (mapping, data []byte, err error) {
	data = make([]byte, size)
	return data, data, nil
}

func unmapDeviceMemory([]byte) {}
