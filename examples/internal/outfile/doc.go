// Package outfile writes the example programs' output files (profiles,
// charts, tables) in one way: through a buffer, with a failed flush or close
// reported like any write error, and no partial file left behind when
// writing fails.
package outfile
