// Package outfile writes the example programs' output files (profiles,
// charts, tables, traces) in one way, so that an output can never destroy
// what it replaces or what the program reads:
//
//   - Check validates every output a command line names before any work:
//     its folder takes a new file, it is not one of the inputs (the same
//     file, also through a link or another name) and no two outputs are the
//     same file. Each problem names its flag.
//   - Write and Create write to a temporary file beside the output and
//     rename it into place only when it is complete, so an existing file is
//     replaced by a complete new one or not at all.
//   - A streaming output (Create) that is never committed because the
//     program crashed stays under its temporary name, readable up to what
//     was written; one abandoned by Close is removed.
//
// Devices such as /dev/stdout are written directly.
package outfile
