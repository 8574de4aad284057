// Kernels of the emulator's tests (emulator_test.go); they have no Go twins.

// gemv_q8: y[r] = sum over c of W[r][c]·x[c], W in Q8_0-like blocks of 32
// values (a binary16 scale, then 32 signed bytes: 34 bytes). One block of
// 128 threads per row: each thread sums 16 values per step, each warp adds
// its lanes with shuffles, then the warps' sums meet in shared memory.
extern "C" __global__ void __launch_bounds__(128) gemv_q8(const u8 *__restrict__ w, const float *__restrict__ x,
                                                         float *__restrict__ y, int cols) {
	__shared__ float warp_sums[4];
	const int nb = cols / 32;
	const u8 *row = w + (size_t)blockIdx.x * nb * 34;
	float sum = 0.0f;
	for (int i = threadIdx.x; i < nb * 2; i += blockDim.x) {
		const u8 *blk = row + (i / 2) * 34;
		const float d = rt_half_to_float(*(const u16 *)blk);
		const i8 *q = (const i8 *)(blk + 2) + (i % 2) * 16;
		const float *xv = x + (i / 2) * 32 + (i % 2) * 16;
		float part = 0.0f;
#pragma unroll
		for (int j = 0; j < 16; j++) part += (float)q[j] * xv[j];
		sum += d * part;
	}
	for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
	if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
	__syncthreads();
	if (threadIdx.x == 0) y[blockIdx.x] = warp_sums[0] + warp_sums[1] + warp_sums[2] + warp_sums[3];
}

// shift_racy: out[i] = in[i-1] within each block of 256 (0 for the first),
// through shared memory — without the __syncthreads between the write and
// the read, so a thread may read its neighbour's slot before the neighbour
// wrote it. Threads run in forward order write before their right
// neighbours read, so only other orders show the bug.
extern "C" __global__ void shift_racy(const float *in, float *out) {
	__shared__ float s[256];
	int i = blockIdx.x * 256 + threadIdx.x;
	s[threadIdx.x] = in[i];
	// missing: __syncthreads();
	out[i] = threadIdx.x > 0 ? s[threadIdx.x - 1] : 0.0f;
}

// shift_synced is shift_racy with its barrier.
extern "C" __global__ void shift_synced(const float *in, float *out) {
	__shared__ float s[256];
	int i = blockIdx.x * 256 + threadIdx.x;
	s[threadIdx.x] = in[i];
	__syncthreads();
	out[i] = threadIdx.x > 0 ? s[threadIdx.x - 1] : 0.0f;
}

// gather: out[i] = tables[i][i], each table its own buffer, whose device
// address the host wrote into device memory.
extern "C" __global__ void gather(const float *const *tables, float *out) {
	out[threadIdx.x] = tables[threadIdx.x][threadIdx.x];
}

// barrier_divergent: even threads wait at one barrier, odd ones at another.
extern "C" __global__ void barrier_divergent(int *out) {
	if (threadIdx.x % 2 == 0) {
		__syncthreads();
	} else {
		__syncthreads();
	}
	out[threadIdx.x] = 1;
}

// shfl_exited: the upper half of the warp returns, then the lower half
// shuffles with a full mask.
extern "C" __global__ void shfl_exited(int *out) {
	if (threadIdx.x >= 16) return;
	out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

// shfl_outside: each lane of the low half reads a lane of the high half,
// which the mask leaves out.
extern "C" __global__ void shfl_outside(int *out) {
	if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, (int)threadIdx.x, threadIdx.x + 16);
}

// warp_vs_barrier: lane 0 waits at __syncthreads while the rest of its warp
// waits for it at a shuffle: no thread can go on.
extern "C" __global__ void warp_vs_barrier(int *out) {
	if (threadIdx.x == 0) {
		__syncthreads();
	} else {
		out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
	}
}

// trap_at: thread 5 of block 1 traps.
extern "C" __global__ void trap_at(int *out) {
	if (blockIdx.x == 1 && threadIdx.x == 5) __trap();
	assert(threadIdx.x < 64);
	out[threadIdx.x] = 1;
}

// early_exit: threads past n return before the barrier, the rest sum their
// block in shared memory with __syncthreads_count on the side.
extern "C" __global__ void early_exit(const int *in, int *out, int *counts, int n) {
	__shared__ int total;
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (threadIdx.x == 0) total = 0;
	__syncthreads();
	if (i >= n) return;
	atomicAdd(&total, in[i]);
	int c = __syncthreads_count(in[i] > 0);
	if (threadIdx.x == 0) {
		out[blockIdx.x] = total;
		counts[blockIdx.x] = c;
	}
}

// histogram: global atomics from every block; also the other atomics.
extern "C" __global__ void histogram(const u32 *in, u32 *bins, float *fsum, unsigned long long *usum, int *imax, int *imin,
                                     u32 *ors, unsigned int n) {
	unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n) return;
	u32 v = in[i];
	atomicAdd(&bins[v % 16], 1u);
	atomicAdd(fsum, 0.5f);
	atomicAdd(usum, (unsigned long long)v);
	atomicMax(imax, (int)v);
	atomicMin(imin, (int)v);
	atomicOr(ors, 1u << (v % 32));
}

// votes: per warp, the ballot of odd lanes, any/all, a sum by
// __reduce_add_sync, shuffles up and down within 8-lane groups.
extern "C" __global__ void votes(u32 *out) {
	unsigned int lane = threadIdx.x % 32;
	unsigned int *o = out + threadIdx.x * 6;
	o[0] = __ballot_sync(0xffffffffu, lane & 1);
	o[1] = __any_sync(0xffffffffu, lane == 7);
	o[2] = __all_sync(0xffffffffu, lane < 31);
	o[3] = __reduce_add_sync(0xffffffffu, lane);
	o[4] = __shfl_up_sync(0xffffffffu, lane, 1, 8);
	o[5] = __shfl_down_sync(0xffffffffu, lane, 2, 8);
	__syncwarp();
}

// dyn_shared: each block stages n floats in dynamic shared memory and writes
// them back rotated by one.
extern "C" __global__ void dyn_shared(const float *in, float *out, int n) {
	float *s = (float *)rt_dynamic_shared();
	const float *src = in + blockIdx.x * n;
	for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = src[i];
	__syncthreads();
	for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = s[(i + 1) % n];
}

// sync_loop: every thread passes n barriers, for the cost of a switch.
extern "C" __global__ void sync_loop(int n, int *out) {
	int acc = 0;
	for (int i = 0; i < n; i++) {
		__syncthreads();
		acc += i;
	}
	if (threadIdx.x == 0) out[blockIdx.x] = acc;
}
