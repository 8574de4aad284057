// Device-side residency: a MoE layer's residency tables in device memory,
// in the layout of rotary's host tables (rotary/internal/residency.Table),
// and the two kernels of a step: resolve (routed ids to slots, with the
// eviction decisions) and fill (the misses' bytes from mapped host memory
// into their slots).
//
// A layer's tables:
//   slotOf[experts]   i32  the expert's slot, -1 if not resident
//   expertIn[slots]   i32  the slot's expert, -1 if empty
//   lastUse[slots]    u64  tick of the slot's last use
//   counts[experts]   u64  requests so far (LFU; null under LRU)
//   named[experts]    u64  tick of the last step that routed the expert
//   tick              u64  one per step
// Slots [0, pinned) hold pinned experts and are never evicted.

#define RTD_THREADS 256
#define RTD_MAX_EXPERTS 1024

// rtd_cand is a slot a miss may take: an empty one (cls 0, lowest slot
// first), a resident expert's (cls 1, least key, then least lastUse, then
// lowest expert id: the host's residency.Argmin), or none (cls 2).
struct rtd_cand {
	u64 key, last;
	int cls, id, slot;
};

__device__ __forceinline__ bool rtd_better(const rtd_cand &a, const rtd_cand &b) {
	if (a.cls != b.cls) {
		return a.cls < b.cls;
	}
	if (a.cls == 0) {
		return a.slot < b.slot;
	}
	if (a.key != b.key) {
		return a.key < b.key;
	}
	if (a.last != b.last) {
		return a.last < b.last;
	}
	return a.id < b.id;
}

// rt_decode_resolve: one block of RTD_THREADS. ids are a step's n routed
// expert ids (rows of k, repeats across rows allowed, each < experts). The
// step's experts, the distinct ids in ascending order, are requested in
// turn: the tick advances, counts (if not null) count each once, hits mark
// their slots used; then the misses, in ascending order, each take the
// lowest empty dynamic slot or else the best candidate (rtd_better) among
// dynamic slots whose expert the step did not route. slotIds[i] is the
// slot of ids[i]. misses[0] is the number of misses, then (expert, slot,
// evicted expert or -1) for each; a slot of -1 means none was free, which
// cannot happen when n <= slots - pinned. counters (mapped host memory, may
// be null) gain the step's hits, pinned hits and misses.
extern "C" __global__ void __launch_bounds__(RTD_THREADS)
    rt_decode_resolve(int *slotOf, int *expertIn, u64 *lastUse, u64 *counts, u64 *named, u64 *tickp, const int *ids, int n,
                      int experts, int slots, int pinned, int *slotIds, int *misses, u64 *counters) {
	__shared__ int missing[RTD_MAX_EXPERTS];
	__shared__ rtd_cand best[RTD_THREADS];
	__shared__ int scan[RTD_THREADS];
	__shared__ u64 tickShared, hitsShared, pinnedShared;
	__shared__ int missCount;
	int tid = threadIdx.x;

	if (tid == 0) {
		tickShared = *tickp + 1;
		hitsShared = pinnedShared = 0;
	}
	__syncthreads();
	u64 tick = tickShared;
	for (int i = tid; i < n; i += blockDim.x) {
		named[ids[i]] = tick;
	}
	__syncthreads();
	// Each thread takes a run of experts, so that a scan of the threads'
	// miss counts orders the misses by expert.
	int per = (experts + blockDim.x - 1) / blockDim.x;
	int e0 = tid * per, e1 = e0 + per < experts ? e0 + per : experts;
	int myMisses = 0;
	u64 myHits = 0, myPinned = 0;
	for (int e = e0; e < e1; e++) {
		if (named[e] != tick) {
			continue;
		}
		if (counts) {
			counts[e]++;
		}
		int s = slotOf[e];
		if (s >= 0) {
			lastUse[s] = tick;
			myHits++;
			myPinned += s < pinned;
		} else {
			myMisses++;
		}
	}
	if (myHits > 0) {
		atomicAdd(&hitsShared, myHits);
		atomicAdd(&pinnedShared, myPinned);
	}
	scan[tid] = myMisses;
	__syncthreads();
	for (int off = 1; off < blockDim.x; off <<= 1) {
		int v = tid >= off ? scan[tid - off] : 0;
		__syncthreads();
		scan[tid] += v;
		__syncthreads();
	}
	int at = scan[tid] - myMisses;
	for (int e = e0; e < e1 && at < scan[tid]; e++) {
		if (named[e] == tick && slotOf[e] < 0) {
			missing[at++] = e;
		}
	}
	if (tid == blockDim.x - 1) {
		int m = scan[tid];
		missCount = m;
		misses[0] = m;
		*tickp = tick;
	}
	__syncthreads();
	if (tid == 0 && counters) {
		counters[0] += hitsShared;
		counters[1] += pinnedShared;
		counters[2] += (u64)missCount;
	}
	int m = missCount;
	for (int j = 0; j < m; j++) {
		rtd_cand mine;
		mine.cls = 2;
		mine.key = mine.last = 0;
		mine.id = mine.slot = -1;
		for (int s = pinned + tid; s < slots; s += blockDim.x) {
			rtd_cand c;
			int e = expertIn[s];
			c.slot = s;
			c.id = e;
			if (e < 0) {
				c.cls = 0;
				c.key = c.last = 0;
			} else if (named[e] == tick) {
				continue; // the step uses it
			} else {
				c.cls = 1;
				c.key = counts ? counts[e] : 0;
				c.last = lastUse[s];
			}
			if (rtd_better(c, mine)) {
				mine = c;
			}
		}
		best[tid] = mine;
		__syncthreads();
		for (int w = blockDim.x / 2; w > 0; w >>= 1) {
			if (tid < w && rtd_better(best[tid + w], best[tid])) {
				best[tid] = best[tid + w];
			}
			__syncthreads();
		}
		if (tid == 0) {
			int e = missing[j], s = best[0].slot, old = -1;
			if (best[0].cls < 2) {
				old = expertIn[s];
				if (old >= 0) {
					slotOf[old] = -1;
				}
				expertIn[s] = e;
				slotOf[e] = s;
				lastUse[s] = tick;
			}
			misses[1 + 3 * j] = e;
			misses[2 + 3 * j] = s;
			misses[3 + 3 * j] = old;
		}
		__syncthreads();
	}
	for (int i = tid; i < n; i += blockDim.x) {
		slotIds[i] = slotOf[ids[i]];
	}
}

// rt_decode_fill: block (j, c) copies its share c of gridDim.y of miss j's
// bytes (misses as rt_decode_resolve wrote them; blocks past the count
// return) into its slot of plane (slots of slotBytes). parts holds nparts
// triples (source address of expert 0's part, part size, offset in the
// slot): expert e's part starts at source + e*size, in host memory mapped
// into the device. Aligned parts copy 8 bytes per load.
extern "C" __global__ void __launch_bounds__(RTD_THREADS)
    rt_decode_fill(u8 *plane, i64 slotBytes, const int *misses, const i64 *parts, int nparts) {
	int j = blockIdx.x;
	if (j >= misses[0]) {
		return;
	}
	int e = misses[1 + 3 * j], s = misses[2 + 3 * j];
	if (s < 0) {
		return;
	}
	i64 stride = (i64)gridDim.y * blockDim.x;
	i64 first = (i64)blockIdx.y * blockDim.x + threadIdx.x;
	for (int p = 0; p < nparts; p++) {
		i64 size = parts[3 * p + 1];
		const u8 *src = (const u8 *)parts[3 * p] + (i64)e * size;
		u8 *dst = plane + (i64)s * slotBytes + parts[3 * p + 2];
		if ((((u64)src | (u64)dst | (u64)size) & 7) == 0) {
			const u64 *from = (const u64 *)src;
			u64 *to = (u64 *)dst;
			for (i64 i = first; i < size / 8; i += stride) {
				to[i] = from[i];
			}
		} else {
			for (i64 i = first; i < size; i += stride) {
				dst[i] = src[i];
			}
		}
	}
}
