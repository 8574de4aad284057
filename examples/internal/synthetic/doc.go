// Package synthetic writes the synthetic models the example programs run
// without a model argument, with progress, into the user cache folder
// (experts.WriteSynthetic does the writing; this package picks the place,
// shows the progress, and writes a cached model again when it finds it
// damaged).
package synthetic
