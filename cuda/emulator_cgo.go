//go:build cgo && linux

package cuda

/*
// Calls through the function pointers of an emulated program's object
// (emulator.h, "The object's interface to Go").
static int emu_abi(void *f) { return ((int (*)(void))f)(); }
static int emu_count(void *f) { return ((int (*)(void))f)(); }
static const char *emu_name(void *f, int i) { return ((const char *(*)(int))f)(i); }
static int emu_nparams(void *f, int i) { return ((int (*)(int))f)(i); }
static unsigned emu_param_size(void *f, int i, int j) { return ((unsigned (*)(int, int))f)(i, j); }
static int emu_param_kind(void *f, int i, int j) { return ((int (*)(int, int))f)(i, j); }
static void *emu_launch_new(void *f, int k, const unsigned long long *args, int nargs, const unsigned *dims,
	unsigned smem, int order, unsigned long long seed) {
	return ((void *(*)(int, const unsigned long long *, int, const unsigned *, unsigned, int, unsigned long long))f)(
		k, args, nargs, dims, smem, order, seed);
}
static int emu_launch_work(void *f, void *l) { return ((int (*)(void *))f)(l); }
static const char *emu_launch_error(void *f, void *l) { return ((const char *(*)(void *))f)(l); }
static unsigned long long emu_launch_switches(void *f, void *l) { return ((unsigned long long (*)(void *))f)(l); }
static void emu_launch_free(void *f, void *l) { ((void (*)(void *))f)(l); }
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// emuABI is the version of emulator.h's interface this file calls.
const emuABI = 1

// The object's functions, by index into emuSymbols.
const (
	emuSymABI = iota
	emuSymCount
	emuSymName
	emuSymNParams
	emuSymParamSize
	emuSymParamKind
	emuSymLaunchNew
	emuSymLaunchWork
	emuSymLaunchError
	emuSymLaunchSwitches
	emuSymLaunchFree
	emuSymTotal
)

var emuSymbolNames = [emuSymTotal][]string{
	emuSymABI:            {"rt_emu_abi"},
	emuSymCount:          {"rt_emu_kernel_count"},
	emuSymName:           {"rt_emu_kernel_name"},
	emuSymNParams:        {"rt_emu_kernel_nparams"},
	emuSymParamSize:      {"rt_emu_kernel_param_size"},
	emuSymParamKind:      {"rt_emu_kernel_param_kind"},
	emuSymLaunchNew:      {"rt_emu_launch_new"},
	emuSymLaunchWork:     {"rt_emu_launch_work"},
	emuSymLaunchError:    {"rt_emu_launch_error"},
	emuSymLaunchSwitches: {"rt_emu_launch_switches"},
	emuSymLaunchFree:     {"rt_emu_launch_free"},
}

// emuSymbols are the functions of a loaded object.
type emuSymbols [emuSymTotal]unsafe.Pointer

// emuAvailable reports whether this build can load emulated programs.
func emuAvailable() error { return nil }

// errEmuObject marks an object that would not load.
var errEmuObject = errors.New("cuda: emulator object does not load")

// openEmulated loads a compiled object and reads its kernel table. Objects
// stay loaded for the life of the process (the build cache keeps them), so
// a module's Close never pulls code from under a running launch.
func openEmulated(path string) (*emuLibrary, error) {
	h, _, err := dlopenFirst([]string{path}, errEmuObject)
	if err != nil {
		return nil, err
	}
	lib := &emuLibrary{kernels: make(map[string]*emuKernel)}
	if err := bindSymbols(h, emuSymbolNames[:], func(i int, p unsafe.Pointer) { lib.syms[i] = p }); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errEmuObject, path, err)
	}
	if v := int(C.emu_abi(lib.syms[emuSymABI])); v != emuABI {
		return nil, fmt.Errorf("%w: %s: interface version %d, want %d", errEmuObject, path, v, emuABI)
	}
	n := int(C.emu_count(lib.syms[emuSymCount]))
	for i := range n {
		k := &emuKernel{lib: lib, index: i}
		np := int(C.emu_nparams(lib.syms[emuSymNParams], C.int(i)))
		for j := range np {
			k.params = append(k.params, emuParam{
				size: int(C.emu_param_size(lib.syms[emuSymParamSize], C.int(i), C.int(j))),
				kind: byte(C.emu_param_kind(lib.syms[emuSymParamKind], C.int(i), C.int(j))),
			})
		}
		lib.kernels[C.GoString(C.emu_name(lib.syms[emuSymName], C.int(i)))] = k
	}
	return lib, nil
}

// run runs a grid to completion on up to r.workers threads. A fault is an
// error carrying the emulator's message; switches counts the context
// switches into threads.
func (k *emuKernel) run(r emuRun) (switches uint64, err error) {
	syms := &k.lib.syms
	dims := [6]C.uint{
		C.uint(r.cfg.Grid.X), C.uint(r.cfg.Grid.Y), C.uint(r.cfg.Grid.Z),
		C.uint(r.cfg.Block.X), C.uint(r.cfg.Block.Y), C.uint(r.cfg.Block.Z),
	}
	var argp *C.ulonglong
	if len(r.args) > 0 {
		argp = (*C.ulonglong)(unsafe.Pointer(&r.args[0]))
	}
	l := C.emu_launch_new(syms[emuSymLaunchNew], C.int(k.index), argp, C.int(len(r.args)), &dims[0],
		C.uint(r.cfg.SharedMem), C.int(r.schedule.order), C.ulonglong(r.schedule.seed))
	defer C.emu_launch_free(syms[emuSymLaunchFree], l)

	blocks := uint64(r.cfg.Grid.X) * uint64(r.cfg.Grid.Y) * uint64(r.cfg.Grid.Z)
	workers := int(min(uint64(max(r.workers, 1)), blocks))
	if workers == 1 {
		C.emu_launch_work(syms[emuSymLaunchWork], l)
	} else {
		// Each worker is a goroutine in one long cgo call, so it holds an OS
		// thread for the whole grid: a block's fibers never change thread.
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() { C.emu_launch_work(syms[emuSymLaunchWork], l) })
		}
		wg.Wait()
	}
	switches = uint64(C.emu_launch_switches(syms[emuSymLaunchSwitches], l))
	if msg := C.emu_launch_error(syms[emuSymLaunchError], l); msg != nil {
		return switches, errors.New(C.GoString(msg))
	}
	return switches, nil
}
