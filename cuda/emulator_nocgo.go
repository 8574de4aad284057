//go:build !cgo || !linux

package cuda

import "fmt"

// emuSymbols is empty: without cgo no object is ever loaded.
type emuSymbols struct{}

// emuAvailable reports that a build without cgo (or off Linux) cannot load
// emulated programs.
func emuAvailable() error { return fmt.Errorf("%w: built without cgo for linux", ErrNoEmulator) }

func openEmulated(string) (*emuLibrary, error) { return nil, emuAvailable() }

func (k *emuKernel) run(emuRun) (uint64, error) { return 0, emuAvailable() }
