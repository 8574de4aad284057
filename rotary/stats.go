package rotary

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Stats count what the runtime did since Open or the last ResetStats.
type Stats struct {
	// VRAM counts requested experts: Hits were resident (pinned or in a
	// slot), Misses had to be copied; Bytes is what those copies moved.
	VRAM TierStats
	// PinnedHits are the VRAM hits on pinned experts.
	PinnedHits uint64
	// Host counts the misses (and prefetches) the host tier served: Hits
	// from pinned memory, Misses read from the file first (Bytes read). With
	// HostMapped every request is a hit.
	Host TierStats
	// HostAhead counts the experts the host tier read from the file ahead
	// of a miss (its warm-up after Open, Prefetch's fills): Host.Bytes is
	// what Host.Misses and HostAhead read.
	HostAhead uint64
	// Prefetched counts experts Prefetch copied.
	Prefetched uint64
	// Prefetch says how useful those copies and the predictions behind
	// them were.
	Prefetch PrefetchStats
	// TransferTime is the copy stream's time on the copies, StallTime the
	// compute streams' time waiting for them (both from events, so known once
	// the copies have completed); HostWait is the time callers were blocked:
	// no stream given, every slot held, host memory being filled.
	TransferTime, StallTime, HostWait time.Duration
	// Layers are the MoE layers' shares, in layer order.
	Layers []LayerStats
	// WarmupErr is why the host LRU's background warm-up (see WithoutWarmup)
	// stopped before the LRU was full: an expert could not be read from the
	// file. The runtime still works; misses read their experts themselves.
	// It is nil while the warm-up runs, after it completed, and without one.
	WarmupErr error `json:"-"`
}

// TierStats are one tier's hits and misses and the bytes its misses moved.
type TierStats struct {
	Hits, Misses uint64
	Bytes        int64
}

// Sub returns the counts of s since an earlier snapshot old of the same
// runtime (Stats taken twice, without ResetStats between), without the
// layers' shares (Layers is nil); WarmupErr is s's.
func (s Stats) Sub(old Stats) Stats {
	d := s
	d.VRAM = s.VRAM.Sub(old.VRAM)
	d.Host = s.Host.Sub(old.Host)
	d.PinnedHits -= old.PinnedHits
	d.HostAhead -= old.HostAhead
	d.Prefetched -= old.Prefetched
	d.Prefetch = s.Prefetch.Sub(old.Prefetch)
	d.TransferTime -= old.TransferTime
	d.StallTime -= old.StallTime
	d.HostWait -= old.HostWait
	d.Layers = nil
	return d
}

// Sub returns the counts of t since an earlier snapshot old.
func (t TierStats) Sub(old TierStats) TierStats {
	return TierStats{Hits: t.Hits - old.Hits, Misses: t.Misses - old.Misses, Bytes: t.Bytes - old.Bytes}
}

// HitRate is Hits / (Hits + Misses), 0 without requests.
func (t TierStats) HitRate() float64 { return ratio(t.Hits, t.Hits+t.Misses) }

// PrefetchStats count how Prefetch fared. A prefetched expert is Useful once
// an Acquire asks for it (Late if its copy had not completed by then: the
// Acquire's stream waited for it), Wasted if it is evicted first; experts
// still resident and not yet asked for are neither. Each Prefetch call is
// also a prediction of the layer's next Acquire: Predicted counts the
// distinct experts it named (resident or not), Requested the experts that
// Acquire asked for, Correct those of them it had named. A prediction that
// a later Prefetch of the layer replaces before any Acquire is not counted.
type PrefetchStats struct {
	Useful, Late, Wasted          uint64
	UsefulBytes, WastedBytes      int64
	Predicted, Requested, Correct uint64
}

// Recall is the share of the requested experts that had been predicted,
// Correct / Requested (0 without predictions).
func (p PrefetchStats) Recall() float64 { return ratio(p.Correct, p.Requested) }

// Precision is the share of the predicted experts that were then requested,
// Correct / Predicted (0 without predictions).
func (p PrefetchStats) Precision() float64 { return ratio(p.Correct, p.Predicted) }

// Sub returns the counts of p since an earlier snapshot old.
func (p PrefetchStats) Sub(old PrefetchStats) PrefetchStats {
	return PrefetchStats{
		Useful: p.Useful - old.Useful, Late: p.Late - old.Late, Wasted: p.Wasted - old.Wasted,
		UsefulBytes: p.UsefulBytes - old.UsefulBytes, WastedBytes: p.WastedBytes - old.WastedBytes,
		Predicted: p.Predicted - old.Predicted, Requested: p.Requested - old.Requested, Correct: p.Correct - old.Correct,
	}
}

func (p *PrefetchStats) add(o PrefetchStats) {
	p.Useful += o.Useful
	p.Late += o.Late
	p.Wasted += o.Wasted
	p.UsefulBytes += o.UsefulBytes
	p.WastedBytes += o.WastedBytes
	p.Predicted += o.Predicted
	p.Requested += o.Requested
	p.Correct += o.Correct
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// LayerStats are one layer's share of Stats.
type LayerStats struct {
	Layer                             int
	Hits, PinnedHits, Misses          uint64
	Prefetched                        uint64
	Prefetch                          PrefetchStats
	Bytes                             int64
	TransferTime, StallTime, HostWait time.Duration
}

// layerCounts are a layer's counters, guarded by the layer's lock.
type layerCounts struct {
	hits, pinnedHits, misses, prefetched uint64
	bytes                                int64
	hostWait                             time.Duration
	prefetch                             PrefetchStats
}

// layerTiming collects the timings of completed batches, which are harvested
// outside the layer's lock.
type layerTiming struct {
	mu              sync.Mutex
	transfer, stall time.Duration
}

func (t *layerTiming) add(transfer, stall time.Duration) {
	t.mu.Lock()
	t.transfer += transfer
	t.stall += stall
	t.mu.Unlock()
}

func (t *layerTiming) get(reset bool) (transfer, stall time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	transfer, stall = t.transfer, t.stall
	if reset {
		t.transfer, t.stall = 0, 0
	}
	return transfer, stall
}

// Stats returns the counters. Timings include the copies that have
// completed.
func (r *Runtime) Stats() Stats { return r.stats(false) }

// ResetStats returns the counters and sets them to zero, logging them at
// debug level.
func (r *Runtime) ResetStats() Stats {
	s := r.stats(true)
	r.log.Debug("rotary: stats", slog.Any("stats", s))
	return s
}

func (r *Runtime) stats(reset bool) Stats {
	r.batches.collect()
	var s Stats
	var mapped uint64
	for _, ls := range r.moe {
		ls.mu.Lock()
		c := ls.counts
		if reset {
			ls.counts = layerCounts{}
		}
		if ls.onDevice {
			// The device adds to its counters while this reads them:
			// each is one aligned word, read whole.
			var now [deviceCounters]uint64
			for i := range now {
				now[i] = atomic.LoadUint64(&ls.device[i])
			}
			c.hits += now[0] - ls.base[0]
			c.pinnedHits += now[1] - ls.base[1]
			c.misses += now[2] - ls.base[2]
			c.bytes += int64(now[2]-ls.base[2]) * ls.expertBytes
			mapped += now[2] - ls.base[2] // the fill kernel read them from the mapping
			if reset {
				ls.base = now
			}
		}
		ls.mu.Unlock()
		transfer, stall := ls.timing.get(reset)
		l := LayerStats{Layer: ls.index, Hits: c.hits, PinnedHits: c.pinnedHits, Misses: c.misses, Prefetched: c.prefetched,
			Prefetch: c.prefetch, Bytes: c.bytes, TransferTime: transfer, StallTime: stall, HostWait: c.hostWait}
		s.Layers = append(s.Layers, l)
		s.VRAM.Hits += l.Hits
		s.VRAM.Misses += l.Misses
		s.VRAM.Bytes += l.Bytes
		s.PinnedHits += l.PinnedHits
		s.Prefetched += l.Prefetched
		s.Prefetch.add(l.Prefetch)
		s.TransferTime += l.TransferTime
		s.StallTime += l.StallTime
		s.HostWait += l.HostWait
	}
	s.Host, s.HostAhead = r.host.stats()
	s.Host.Hits += mapped
	if err := r.warmErr.Load(); err != nil {
		s.WarmupErr = *err
	}
	if reset {
		r.host.reset()
	}
	return s
}

// LogValue logs the totals (not the layers).
func (s Stats) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Uint64("vram_hits", s.VRAM.Hits),
		slog.Uint64("vram_misses", s.VRAM.Misses),
		slog.Uint64("pinned_hits", s.PinnedHits),
		slog.Int64("bytes_to_device", s.VRAM.Bytes),
		slog.Uint64("host_hits", s.Host.Hits),
		slog.Uint64("host_misses", s.Host.Misses),
		slog.Int64("bytes_from_file", s.Host.Bytes),
		slog.Uint64("host_ahead", s.HostAhead),
		slog.Uint64("prefetched", s.Prefetched),
		slog.Uint64("prefetch_useful", s.Prefetch.Useful),
		slog.Uint64("prefetch_wasted", s.Prefetch.Wasted),
		slog.Float64("prefetch_recall", s.Prefetch.Recall()),
		slog.Float64("prefetch_precision", s.Prefetch.Precision()),
		slog.Duration("transfer", s.TransferTime),
		slog.Duration("stall", s.StallTime),
		slog.Duration("host_wait", s.HostWait),
	}
	if s.WarmupErr != nil {
		attrs = append(attrs, slog.Any("warmup_err", s.WarmupErr))
	}
	return slog.GroupValue(attrs...)
}
