package outfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrIsInput is an output that is one of the program's inputs.
var ErrIsInput = errors.New("outfile: the output is an input of the program")

// ErrSameOutput is two outputs that are the same file.
var ErrSameOutput = errors.New("outfile: two outputs are the same file")

// An Output is an output file as a command line names it: the flag (for
// errors) and the path ("" for an output not asked for).
type Output struct {
	Flag, Path string
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
			return fmt.Errorf("%w (%s)", ErrIsInput, in)
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
	target, err := resolve(path)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(target), ".outfile-check-*")
	if err != nil {
		return fmt.Errorf("cannot create a file in %s: %w", filepath.Dir(target), unwrapPath(err))
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

// resolve follows a symbolic link at path, so that the output replaces the
// file the link points to and the link stays.
func resolve(path string) (string, error) {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&fs.ModeSymlink == 0 {
		return path, nil
	}
	return filepath.EvalSymlinks(path)
}

// Write writes the file at path through a buffered writer passed to write:
// into a temporary file beside it, renamed into place once write, the
// flush and the close have succeeded. On failure the temporary file is
// removed and an existing file at path is left as it was. A device (such
// as /dev/stdout) is written directly.
func Write(path string, write func(io.Writer) error) (err error) {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Commit()
}

// A File is an output being written: a temporary file beside its path
// until Commit renames it into place. Write to it as to any writer.
type File struct {
	f      *os.File
	path   string // where Commit puts it
	tmp    string // "" for a device, written in place
	closed bool
}

// Create starts the output file at path: a temporary file in path's folder
// named after it (PATH-NAME.NNN.partial), which a crash leaves behind
// readable up to what was written. An existing file at path is untouched
// until Commit. A device (such as /dev/stdout) is opened and written
// directly.
func Create(path string) (*File, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &File{f: f, path: path}, nil
	}
	target, err := resolve(path)
	if err != nil {
		return nil, err
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(target); err == nil {
		if st.IsDir() {
			return nil, fmt.Errorf("outfile: %s is a folder", path)
		}
		mode = st.Mode().Perm() // a replaced file keeps its permissions
	}
	f, err := os.CreateTemp(filepath.Dir(target), filepath.Base(target)+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("outfile: creating %s: %w", path, unwrapPath(err))
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("outfile: creating %s: %w", path, err)
	}
	return &File{f: f, path: target, tmp: f.Name()}, nil
}

// unwrapPath drops the temporary name from a failed create: the folder is
// what failed, and the caller names the output.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Write implements io.Writer.
func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// Name is the file being written: the temporary name until Commit.
func (f *File) Name() string { return f.f.Name() }

// Commit closes the file and renames it into place, replacing a file there.
// If closing fails, the temporary file is removed.
func (f *File) Commit() error {
	if f.closed {
		return fmt.Errorf("outfile: %s: %w", f.path, os.ErrClosed)
	}
	f.closed = true
	err := f.f.Close()
	if f.tmp == "" {
		return err
	}
	if err == nil {
		err = os.Rename(f.tmp, f.path)
	}
	if err != nil {
		os.Remove(f.tmp)
		return fmt.Errorf("outfile: writing %s: %w", f.path, err)
	}
	return nil
}

// Close abandons a file not committed: it closes and removes the temporary
// file, leaving whatever was at path. After Commit it does nothing, so it
// can be deferred.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	err := f.f.Close()
	if f.tmp != "" {
		err = errors.Join(err, os.Remove(f.tmp))
	}
	return err
}
