// Package atomicfile writes a file so that it never destroys what it
// replaces: into a temporary file beside it, renamed into place only when
// complete. An existing file is replaced by a complete new one or not at
// all; a streaming file a crash interrupts stays under its temporary name
// (PATH.NNN.partial), readable up to what was written; one abandoned by
// Close is removed. Devices such as /dev/stdout are written directly. The
// model writer (experts), profiles and traces (profile) and the example
// programs' outputs all write through it.
package atomicfile
