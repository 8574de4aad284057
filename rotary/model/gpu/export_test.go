package gpu

// NeverCapture makes b run every decode step of WithGraphs without
// capturing it: the step-by-step path that replayed graphs must match.
func NeverCapture(b *Backend) { b.graph.noCapture = true }
