// Package progress shows the progress of long work — writes, loads, a
// prefill, a simulation — on stderr. On a terminal it draws a one-line bar;
// elsewhere (a pipe, a log file, CI) it writes a plain line every so often
// once the work has run that long, so short work stays silent and long work
// never looks hung. Programs can use it unconditionally.
package progress
