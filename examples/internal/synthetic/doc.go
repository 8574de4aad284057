// Package synthetic writes the synthetic models the example programs run
// without a model argument, with a progress bar, into the user cache folder
// (synth.Write does the writing; this package picks the place and
// shows the progress, and writes a cached model again when it finds it
// damaged).
package synthetic
