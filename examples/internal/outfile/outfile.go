package outfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rotary-moe/rotary/internal/atomicfile"
)

// ErrIsInput is an output that is one of the program's inputs.
var ErrIsInput = errors.New("outfile: the output would overwrite an input")

// ErrSameOutput is two outputs that are the same file.
var ErrSameOutput = errors.New("outfile: two outputs are the same file")

// An Output is an output file as a command line names it: the flag (for
// errors) and the path ("" for an output not asked for), and for Write what
// writes its content.
type Output struct {
	Flag, Path string
	Write      func(io.Writer) error
}

// Check validates outputs before the program does any work, and returns
// every problem found, each as "-flag path: why": the output is one of
// inputs (ErrIsInput), two outputs are the same file (ErrSameOutput), the
// path is a folder, or its folder does not take a new file (a temporary
// file is created there and removed). Empty paths are skipped.
func Check(outputs []Output, inputs ...string) error {
	var errs []error
	for i, o := range outputs {
		if o.Path == "" {
			continue
		}
		if err := checkOne(o.Path, inputs); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", o.Flag, o.Path, err))
			continue
		}
		for _, prev := range outputs[:i] {
			if prev.Path != "" && sameFile(prev.Path, o.Path) {
				errs = append(errs, fmt.Errorf("%s %s: %w as %s", o.Flag, o.Path, ErrSameOutput, prev.Flag))
				break
			}
		}
	}
	return errors.Join(errs...)
}

func checkOne(path string, inputs []string) error {
	for _, in := range inputs {
		if in != "" && sameFile(in, path) {
			return fmt.Errorf("%w, %s", ErrIsInput, in)
		}
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return errors.New("is a folder")
	case err == nil && !st.Mode().IsRegular():
		return nil // a device: written directly
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	target, err := atomicfile.Resolve(path)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(target), ".outfile-check-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // the probe's name would only confuse
			err = pe.Err
		}
		return fmt.Errorf("cannot create a file in %s: %w", filepath.Dir(target), err)
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// sameFile reports whether a and b name the same file: the same path, or
// existing files that os.SameFile matches (links, other names).
func sameFile(a, b string) bool {
	if absA, err := filepath.Abs(a); err == nil {
		if absB, err := filepath.Abs(b); err == nil && absA == absB {
			return true
		}
	}
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// Write writes every output whose path is set, each through atomicfile
// (complete or not at all), and says "wrote PATH" on log for each. One that
// fails does not stop the others: their errors, each naming its flag, are
// joined.
func Write(log io.Writer, outputs ...Output) error {
	var errs []error
	for _, o := range outputs {
		if o.Path == "" {
			continue
		}
		if err := atomicfile.Write(o.Path, o.Write); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.Flag, err))
			continue
		}
		fmt.Fprintln(log, "wrote", o.Path)
	}
	return errors.Join(errs...)
}
