// Package cputime reads the CPU time the process has used, for benchmarks
// of the CPU backend and the forward pass. Divided into work done, it gives
// per-core throughput that stays meaningful on a machine shared with other
// work, where wall time measures the neighbours too. It is kept out of
// package cpu, whose kernels never need it, and is imported by tests only.
package cputime
