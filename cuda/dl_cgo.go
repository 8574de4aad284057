//go:build cgo && linux

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// dlMu serializes dlopen, dlsym and dlerror: dlerror's message is per thread
// and the next dl call on that thread replaces it, so each call and the read
// of its error happen on one locked thread with no other dl call between.
var dlMu sync.Mutex

// withOSLock runs fn on a locked OS thread under dlMu.
func withOSLock(fn func()) {
	dlMu.Lock()
	defer dlMu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fn()
}

// dlopenFirst opens the first of names that loads. Its error wraps notFound
// and lists what was tried and why each failed.
func dlopenFirst(names []string, notFound error) (unsafe.Pointer, string, error) {
	var tried []string
	for _, name := range names {
		var h unsafe.Pointer
		var msg string
		cname := C.CString(name)
		withOSLock(func() {
			C.dlerror() // clear a stale message
			h = C.dlopen(cname, C.RTLD_NOW|C.RTLD_LOCAL)
			if h == nil {
				msg = C.GoString(C.dlerror())
			}
		})
		C.free(unsafe.Pointer(cname))
		if h != nil {
			return h, name, nil
		}
		tried = append(tried, msg)
	}
	return nil, "", fmt.Errorf("%w: tried %s", notFound, strings.Join(tried, "; "))
}

// dlsym looks a symbol up in a library opened by dlopenFirst.
func dlsym(h unsafe.Pointer, name string) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	var msg string
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	withOSLock(func() {
		C.dlerror()
		p = C.dlsym(h, cname)
		if p == nil {
			msg = C.GoString(C.dlerror())
		}
	})
	if p == nil {
		return nil, fmt.Errorf("%s: %s", name, msg)
	}
	return p, nil
}

// bindSymbols resolves each entry of table, the names a function goes by
// from newest to oldest, and hands the first found to set with the entry's
// index. An entry none of whose names resolve is an error naming them.
func bindSymbols(h unsafe.Pointer, table [][]string, set func(i int, p unsafe.Pointer)) error {
	var missing []string
	for i, names := range table {
		if len(names) == 0 {
			return fmt.Errorf("symbol table entry %d is empty", i)
		}
		var p unsafe.Pointer
		for _, name := range names {
			if q, err := dlsym(h, name); err == nil {
				p = q
				break
			}
		}
		if p == nil {
			missing = append(missing, strings.Join(names, " or "))
			continue
		}
		set(i, p)
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing symbols: %s", strings.Join(missing, ", "))
	}
	return nil
}
