// Package cli holds what the example commands share on their command
// lines: byte-size flags, usage errors, and the choice of the device the
// forward pass runs on (-backend, -device and -residency).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
)

// Size is a byte-count flag ("16GiB", "500MB") that remembers whether it
// was given.
type Size struct {
	Bytes int64
	Given bool
}

// String is the size given, "" for the default, which the flag's usage text
// states (it often depends on the model).
func (s *Size) String() string {
	if s == nil || !s.Given {
		return ""
	}
	return rotary.FormatSize(s.Bytes)
}

// Set implements flag.Value: a size of more than 0 bytes.
func (s *Size) Set(v string) error {
	n, err := rotary.ParseSize(v)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("must be more than 0 bytes")
	}
	s.Bytes, s.Given = n, true
	return nil
}

// UsageError is a bad command line: the commands exit with status 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg + " (run with -h for the flags)" }

// Exit reports err as one line on stderr, prefixed by the command's name
// (joined errors separated by "; "), and returns the exit status: 0 for no
// error or -h, 2 for a UsageError, 1 for any other.
func Exit(stderr io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintln(stderr, name+":", strings.Join(strings.Fields(msg), " "))
	var u *UsageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

// Emulated is the -device of the GPU backend on package cuda's emulator.
const Emulated = "emulated"

// Device is the -backend and -device flags: where the forward pass runs.
type Device struct {
	// Backend is "cuda" (a GPU, or the emulator), "host" (the CPU, rotary
	// on an emulated card) or "auto" (cuda when a GPU opens, else host).
	Backend string
	// Name is a CUDA device number or Emulated.
	Name string
	// Residency is where an engine on a device decides which experts its
	// slots hold: "host", "device", or "" (not given: device).
	Residency string
	ordinal   int
}

// BackendUsage and DeviceUsage are the flags' usage texts.
const (
	BackendUsage   = "where the forward pass runs: cuda (a GPU, or -device emulated), host (the CPU, rotary on an emulated card of the -vram budget) or auto (cuda when a GPU opens, else host)"
	DeviceUsage    = "the GPU of -backend cuda: a CUDA device `number`, or emulated (the GPU backend's CUDA C run on the CPU by package cuda's emulator; slow, for tests)"
	ResidencyUsage = "where the forward pass on a GPU decides which experts its VRAM slots hold: device (a resolve kernel; a decode step waits for the GPU once, for its logits) or host (rotary's Acquire, which reads each layer's routing back) (default device)"
)

// Check validates the flags' values (a UsageError).
func (d *Device) Check() error {
	switch d.Backend {
	case "auto", "host", "cuda":
	default:
		return Usagef("-backend %q: want auto, cuda or host", d.Backend)
	}
	if _, err := engine.ParseResidency(d.Residency); d.Residency != "" && err != nil {
		return Usagef("-residency %q: want host or device", d.Residency)
	}
	if d.Backend == "host" && d.Residency == "device" {
		return Usagef("-residency device needs the forward pass on a GPU (-backend cuda or auto)")
	}
	if d.Name == Emulated {
		return nil
	}
	n, err := strconv.Atoi(d.Name)
	if err != nil || n < 0 {
		return Usagef("-device %q: want a CUDA device number or %s", d.Name, Emulated)
	}
	d.ordinal = n
	return nil
}

// ResidencyOn is the residency of an engine on a device (onDevice) or on
// the CPU: -residency, by default device on a device, unless keepHost (a
// feature that needs host residency is on; with -residency device that is
// a UsageError naming why).
func (d *Device) ResidencyOn(onDevice bool, keepHost string) (engine.Residency, error) {
	switch {
	case !onDevice:
		if d.Residency == "device" {
			return 0, Usagef("-residency device: the forward pass runs on the CPU (no GPU opened)")
		}
		return engine.ResidencyHost, nil
	case keepHost != "" && d.Residency == "device":
		return 0, Usagef("-residency device: %s needs -residency host", keepHost)
	case keepHost != "" || d.Residency == "host":
		return engine.ResidencyHost, nil
	}
	return engine.ResidencyDevice, nil
}

// OnDevice reports whether the forward pass may run on a device: -backend
// cuda, or auto (when a GPU opens).
func (d *Device) OnDevice() bool { return d.Backend != "host" }

// EmulatedGPU reports whether -backend cuda -device emulated was asked for:
// the caller opens a host device of the budget's capacity (NewEmulated).
func (d *Device) EmulatedGPU() bool { return d.Backend == "cuda" && d.Name == Emulated }

// OpenGPU opens the GPU of -backend cuda or auto (not the emulated one): nil
// for the CPU path (host, or auto without a GPU, which it tells verbose if
// not nil). Without a GPU, -backend cuda is an error saying how to run
// elsewhere.
func (d *Device) OpenGPU(ctx context.Context, verbose io.Writer) (cuda.Device, error) {
	if d.Backend == "host" || d.Name == Emulated {
		return nil, nil
	}
	dev, err := cuda.Open(ctx, d.ordinal)
	switch {
	case err == nil:
		return dev, nil
	case d.Backend == "cuda":
		return nil, fmt.Errorf("-backend cuda: no GPU %d: %w; -backend host runs the forward pass on the CPU, "+
			"-backend cuda -device emulated runs the GPU backend on the CPU's emulator", d.ordinal, err)
	}
	if verbose != nil {
		fmt.Fprintf(verbose, "backend: host (auto: no GPU %d: %v)\n", d.ordinal, err)
	}
	return nil, nil
}
