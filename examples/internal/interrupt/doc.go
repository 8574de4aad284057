// Package interrupt lets the example programs stop cleanly on Ctrl-C
// (SIGINT) or SIGTERM: the first signal cancels a context, so the program
// finishes the step it is in and writes what it has gathered; a second one
// ends it at once, as usual. ExitCode gives the status a shell expects of a
// program a signal stopped (130, 143).
package interrupt
