// Package progress draws a one-line progress bar for long writes and loads
// on a terminal. When its output is not a terminal (a pipe, a log file, CI)
// it draws nothing, so programs can use it unconditionally.
package progress
