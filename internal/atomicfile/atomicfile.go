package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Resolve follows a symbolic link at path, so that the output replaces the
// file the link points to and the link stays.
func Resolve(path string) (string, error) {
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
	target, err := Resolve(path)
	if err != nil {
		return nil, err
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(target); err == nil {
		if st.IsDir() {
			return nil, fmt.Errorf("atomicfile: %s is a folder", path)
		}
		mode = st.Mode().Perm() // a replaced file keeps its permissions
	}
	f, err := os.CreateTemp(filepath.Dir(target), filepath.Base(target)+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("atomicfile: creating %s: %w", path, unwrapPath(err))
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("atomicfile: creating %s: %w", path, err)
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

// Commit flushes the file to disk, closes it and renames it into place,
// replacing a file there, so that after a crash the path holds the old file
// or the whole new one. If any step fails, the temporary file is removed.
func (f *File) Commit() error {
	if f.closed {
		return fmt.Errorf("atomicfile: %s: %w", f.path, os.ErrClosed)
	}
	f.closed = true
	if f.tmp == "" {
		return f.f.Close()
	}
	err := f.f.Sync()
	err = errors.Join(err, f.f.Close())
	if err == nil {
		err = os.Rename(f.tmp, f.path)
	}
	if err != nil {
		os.Remove(f.tmp)
		return fmt.Errorf("atomicfile: writing %s: %w", f.path, err)
	}
	// Make the rename durable too; not every platform can sync a folder.
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
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
