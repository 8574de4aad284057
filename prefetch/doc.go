// Package prefetch will hold the expert predictors and the prefetcher that
// overlaps expert copies with compute: while layer l computes, predict the
// experts layer l+1 will route to (for example by applying layer l+1's router
// to layer l's input) and hand them to rotary.Runtime.Prefetch, so PCIe is
// busy while the GPU is.
//
// It is empty for now: the hook it will drive, rotary.Runtime.Prefetch,
// exists and is tested, and no issue has asked for the predictors yet. The
// package is here because the project's top-level layout is fixed.
package prefetch
