package experts

import (
	"fmt"
	"runtime/debug"
	"unsafe"
)

// guardFaults runs fn, which reads the mapping m, and turns a page fault in
// it (SIGBUS when the file was truncated after it was mapped, SIGSEGV) into
// an error wrapping ErrFault instead of a crash. Any other panic propagates.
//
// debug.SetPanicOnFault applies to the calling goroutine only, which is why
// views handed out to callers cannot be protected this way.
func guardFaults(m []byte, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fault, ok := r.(interface{ Addr() uintptr })
		if !ok {
			panic(r)
		}
		err = faultError(m, fault.Addr())
	}()
	return fn()
}

func faultError(m []byte, addr uintptr) error {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
	if addr >= base && addr-base < uintptr(len(m)) {
		return fmt.Errorf("%w at file offset %d (was the file truncated?)", ErrFault, addr-base)
	}
	return fmt.Errorf("%w at address %#x", ErrFault, addr)
}
