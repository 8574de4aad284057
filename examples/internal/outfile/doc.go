// Package outfile checks the example programs' output files before any
// work: every output a command line names is validated up front — its
// folder takes a new file, it is not one of the inputs (the same file, also
// through a link or another name) and no two outputs are the same file —
// and each problem names its flag. Write then writes them through
// internal/atomicfile, complete or not at all, each one it can.
package outfile
