package main

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// terminalText writes generated text to a terminal with its non-printing
// characters made visible: a model can emit any byte, and ESC, a carriage
// return or a C1 control (U+0080 to U+009F) would drive the terminal
// rather than show. Control characters other than newline and tab become
// \xNN (C1 controls \u00NN) and bytes that are not UTF-8 \xNN; a character
// split across writes is held until it is whole.
type terminalText struct {
	w       io.Writer
	pending []byte // the start of a character the next write completes
	buf     []byte
}

func newTerminalText(w io.Writer) *terminalText { return &terminalText{w: w} }

// Write implements io.Writer.
func (t *terminalText) Write(p []byte) (int, error) {
	b := append(t.pending, p...)
	whole := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				whole = i
			}
			break
		}
	}
	t.buf = appendVisible(t.buf[:0], b[:whole])
	t.pending = append([]byte(nil), b[whole:]...)
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes a character left incomplete at the end, escaped.
func (t *terminalText) Flush() error {
	if len(t.pending) == 0 {
		return nil
	}
	t.buf = appendVisible(t.buf[:0], t.pending)
	t.pending = t.pending[:0]
	_, err := t.w.Write(t.buf)
	return err
}

func appendVisible(dst, b []byte) []byte {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1:
			dst = fmt.Appendf(dst, `\x%02x`, b[0])
		case r == '\n' || r == '\t':
			dst = append(dst, b[0])
		case r < 0x20 || r == 0x7f:
			dst = fmt.Appendf(dst, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f:
			dst = fmt.Appendf(dst, `\u%04x`, r)
		default:
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}
