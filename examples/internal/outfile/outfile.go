package outfile

import (
	"bufio"
	"errors"
	"io"
	"os"
)

// Write creates (or truncates) the file at path and passes write a buffered
// writer to it. A failed write, flush or close is returned, and then a
// regular file is removed: the caller never leaves a truncated chart or
// profile that looks complete. (A device such as /dev/stdout is left alone.)
func Write(path string, write func(io.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return errors.Join(err, f.Close())
	}
	defer func() {
		err = errors.Join(err, f.Close())
		if err != nil && st.Mode().IsRegular() {
			os.Remove(path)
		}
	}()
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		return err
	}
	return w.Flush()
}
