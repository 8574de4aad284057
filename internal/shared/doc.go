// Package shared finds the project's shared folder: the real routing traces
// and llama.cpp oracle files that live beside the repository (../shared from
// its root) and are read in place, never copied into it. Tests use it and
// skip when the folder is absent; no path of a particular machine is built
// in.
package shared
