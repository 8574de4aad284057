package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool runs data-parallel loops on a fixed set of goroutines started once,
// so that a forward pass made of many small operations pays no goroutine
// start per operation. The goroutine calling Run works too.
//
// A Pool runs one loop at a time: concurrent Run calls are serialised.
type Pool struct {
	mu      sync.Mutex // serialises Run
	workers int
	wake    []chan *loop
	stopped sync.WaitGroup
	current loop
	closed  bool
}

// loop is one Run call shared by the goroutines working on it.
type loop struct {
	fn      func(lo, hi int)
	n       int
	chunk   int
	next    atomic.Int64
	pending sync.WaitGroup
}

// NewPool starts a pool of the given number of workers (the caller of Run
// counts as one). workers <= 0 means runtime.GOMAXPROCS(0).
func NewPool(workers int) *Pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{workers: workers, wake: make([]chan *loop, workers-1)}
	for i := range p.wake {
		ch := make(chan *loop)
		p.wake[i] = ch
		p.stopped.Add(1)
		go func() {
			defer p.stopped.Done()
			for l := range ch {
				l.work()
				l.pending.Done()
			}
		}()
	}
	return p
}

// Workers is the number of goroutines a Run may use, the caller included.
func (p *Pool) Workers() int { return p.workers }

// Run calls fn on disjoint ranges [lo, hi) covering [0, n) and returns when
// all calls have returned. A range holds at least grain items (except the
// last): grain is how much work makes waking another goroutine worth it.
func (p *Pool) Run(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	// Four chunks per worker balance uneven chunks without much claiming.
	chunk := max(grain, (n+4*p.workers-1)/(4*p.workers))
	if n <= chunk || p.workers == 1 {
		fn(0, n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		fn(0, n)
		return
	}
	l := &p.current
	l.fn, l.n, l.chunk = fn, n, chunk
	l.next.Store(0)
	helpers := min(len(p.wake), (n+chunk-1)/chunk-1)
	l.pending.Add(helpers)
	for _, ch := range p.wake[:helpers] {
		ch <- l
	}
	l.work()
	l.pending.Wait()
	l.fn = nil
}

// work claims chunks until none are left.
func (l *loop) work() {
	for {
		lo := int(l.next.Add(int64(l.chunk))) - l.chunk
		if lo >= l.n {
			return
		}
		l.fn(lo, min(lo+l.chunk, l.n))
	}
}

// Close stops the pool's goroutines. Run still works after Close, on the
// calling goroutine alone.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, ch := range p.wake {
		close(ch)
	}
	p.stopped.Wait()
}
