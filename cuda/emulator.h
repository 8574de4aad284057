// rotary's CUDA emulator: the definitions under which the host C++ compiler
// builds a program's CUDA C source (cuda.Prelude + source) into a shared
// object the host backend loads. Each CUDA thread is a fiber with its own
// stack; a block's fibers run on one OS thread, switching at every barrier and
// warp operation; the blocks of a grid are shared out between worker threads.
// See the package documentation (doc.go) for what it shows and what it
// cannot.
//
// The Go side appends a table of the source's extern "C" kernels
// (RT_EMU_KERNEL) and talks to the object through the extern "C" functions
// at the end of this file.

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>
#include <time.h>

#include <atomic>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include <dlfcn.h>
#include <signal.h>
#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer must be told when the stack changes, or it takes a
// fiber's frames for overflows of the thread's stack.
extern "C" void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
extern "C" void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define RT_EMU_ASAN 1
#else
#define RT_EMU_ASAN 0
#endif

#define ROTARY_EMULATOR 1

// RT_EMU_ASM_SWITCH selects the hand-written context switch (x86-64);
// elsewhere, or built with -DRT_EMU_UCONTEXT, fibers switch with glibc's
// ucontext, about ten times slower (it saves the signal mask by a system
// call).
#if defined(__x86_64__) && !defined(RT_EMU_UCONTEXT)
#define RT_EMU_ASM_SWITCH 1
#else
#define RT_EMU_ASM_SWITCH 0
#endif

// ---- Qualifiers ------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __constant__
#define __managed__
// Shared memory is storage per worker thread: a block's fibers all run on
// one thread, and a block runs to completion before its worker starts the
// next, so each block sees its own copy (holding whatever the worker's
// previous block left there, as on a GPU).
#define __shared__ static thread_local
// NVRTC knows __builtin_assume; GCC does not.
#if !defined(__clang__)
#define __builtin_assume(c) ((void)sizeof((c) ? 1 : 0))
#endif

// ---- Vector and index types ------------------------------------------------

#define RT_EMU_VEC2(T, N, A) \
	struct __attribute__((aligned(A))) N##2 { T x, y; }; \
	static inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define RT_EMU_VEC3(T, N) \
	struct N##3 { T x, y, z; }; \
	static inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define RT_EMU_VEC4(T, N, A) \
	struct __attribute__((aligned(A))) N##4 { T x, y, z, w; }; \
	static inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
#define RT_EMU_VECS(T, N) RT_EMU_VEC2(T, N, 2 * sizeof(T)) RT_EMU_VEC3(T, N) RT_EMU_VEC4(T, N, 4 * sizeof(T))

RT_EMU_VECS(signed char, char)
RT_EMU_VECS(unsigned char, uchar)
RT_EMU_VECS(short, short)
RT_EMU_VECS(unsigned short, ushort)
RT_EMU_VECS(int, int)
RT_EMU_VECS(unsigned int, uint)
RT_EMU_VECS(float, float)
RT_EMU_VEC2(long long, longlong, 16)
RT_EMU_VEC2(unsigned long long, ulonglong, 16)
RT_EMU_VEC2(double, double, 16)

struct dim3 {
	unsigned int x, y, z;
	dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
	dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
	operator uint3() const { return uint3{x, y, z}; }
};

#define warpSize 32

// ---- The runtime -----------------------------------------------------------

namespace rt_emu {

enum Order { order_forward = 0, order_reverse = 1, order_random = 2 };

enum State { st_runnable, st_barrier, st_warp, st_exited };

enum WarpOp {
	op_syncwarp, op_shfl, op_shfl_up, op_shfl_down, op_shfl_xor,
	op_ballot, op_any, op_all, op_reduce_add, op_reduce_min, op_reduce_max,
	op_reduce_min_signed, op_reduce_max_signed, op_match_any,
};

static const char *const op_names[] = {
	"__syncwarp", "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
	"__ballot_sync", "__any_sync", "__all_sync", "__reduce_add_sync", "__reduce_min_sync", "__reduce_max_sync",
	"__reduce_min_sync", "__reduce_max_sync", "__match_any_sync",
};

struct Fiber {
	void *sp; // saved stack pointer (x86-64)
#if !RT_EMU_ASM_SWITCH
	ucontext_t uc;
#endif
	uint3 tid;
	unsigned warp, lane;
	State state;
	// The warp operation or barrier the fiber waits at.
	WarpOp op;
	unsigned mask;
	uint64_t val;
	int arg, width;
	const char *file;
	int line;
	uint64_t result;
	char *stack; // the top (highest address) of its stack
	void *asan_fake;
	// A hardware fault taken while the fiber ran (see on_signal).
	int fault_sig;
	void *fault_addr, *fault_pc;
};

// Warp is what the lanes of one warp know of each other, as bit masks.
struct Warp {
	unsigned present; // lanes the block has
	unsigned exited;  // lanes that returned
	unsigned waiting; // lanes waiting at a warp operation
};

struct Launch;

struct Block {
	Launch *L;
	uint3 idx;
	uint3 bdim;
	uint3 gdim;
	unsigned n;          // threads
	unsigned live;       // threads not exited
	unsigned at_barrier; // threads waiting at __syncthreads
	unsigned bar_count;  // __syncthreads_count's tally
	const char *bar_file;
	int bar_line;
	Fiber *fibers;
	Warp *warps;
	unsigned char *dyn_smem;
	bool failed;
	volatile bool in_fiber; // a fiber runs (not the scheduler), for on_signal
	void *sched_sp;
#if !RT_EMU_ASM_SWITCH
	ucontext_t sched_uc;
#endif
	void *asan_fake;
	const void *sched_bottom; // the scheduler's stack, for AddressSanitizer
	size_t sched_size;
	uint64_t switches;
};

struct KernelDesc {
	const char *name;
	void (*invoke)(void **);
	int nparams;
	const unsigned *sizes;
	const char *kinds;
};

struct Launch {
	const KernelDesc *k;
	std::vector<uint64_t> values;
	std::vector<void *> params;
	unsigned grid[3], block[3];
	unsigned smem;
	int order;
	uint64_t seed;
	uint64_t nblocks;
	std::atomic<uint64_t> next{0};
	std::atomic<bool> failed{false};
	std::atomic<uint64_t> switches{0};
	std::mutex mu;
	char error[2048];
};

static thread_local Fiber *t_cur;
static thread_local Block *t_block;

// Stacks: each fiber gets kStackSize bytes above a guard page, so a kernel
// that overflows its stack faults instead of corrupting a neighbour. A
// worker thread keeps its stacks for the next launch.
static const size_t kStackSize = 64 << 10;

struct StackPool {
	std::vector<char *> stacks; // each the low end of guard page + stack
	size_t page = 0;
	~StackPool() {
		for (char *s : stacks) munmap(s, page + kStackSize);
	}
	bool reserve(size_t n) {
		if (page == 0) page = (size_t)sysconf(_SC_PAGESIZE);
		while (stacks.size() < n) {
			void *m = mmap(nullptr, page + kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED) return false;
			mprotect(m, page, PROT_NONE);
			stacks.push_back((char *)m);
		}
		return true;
	}
	char *top(size_t i) const { return stacks[i] + page + kStackSize; }
};

static thread_local StackPool t_stacks;
static thread_local std::vector<Fiber> t_fibers;
static thread_local std::vector<Warp> t_warps;
static thread_local std::vector<unsigned char> t_dyn_smem;
static thread_local std::vector<unsigned> t_order;

// ---- Context switch ----------------------------------------------------------

#if RT_EMU_ASM_SWITCH
// rt_emu_switch saves the callee-saved registers of the System V ABI on the
// current stack, stores the stack pointer in *save, loads next and restores
// its registers. The FPU control words are shared by the fibers of a thread
// and left alone. Each fiber starts at rt_emu_fiber_start through a frame
// made by prepare().
extern "C" void rt_emu_switch(void **save, void *next);
asm(R"(
	.text
	.p2align 4
	.globl rt_emu_switch
	.hidden rt_emu_switch
	.type rt_emu_switch, @function
rt_emu_switch:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, (%rdi)
	movq %rsi, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.size rt_emu_switch, .-rt_emu_switch
)");
#endif

static void fiber_main();

#if RT_EMU_ASM_SWITCH
extern "C" void rt_emu_fiber_start() { fiber_main(); }

static inline void prepare(Fiber *f, char *top) {
	uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
	void **sp = (void **)t;
	*--sp = nullptr;                      // fiber_main never returns here
	*--sp = (void *)&rt_emu_fiber_start;  // rt_emu_switch's ret goes here
	for (int i = 0; i < 6; i++) *--sp = nullptr; // rbp rbx r12..r15
	f->sp = sp;
}

static inline void switch_to_fiber(Block *b, Fiber *f) { rt_emu_switch(&b->sched_sp, f->sp); }
static inline void switch_to_scheduler(Block *b, Fiber *f) { rt_emu_switch(&f->sp, b->sched_sp); }
#else
static void uc_start() { fiber_main(); }

static inline void prepare(Fiber *f, char *top) {
	getcontext(&f->uc);
	f->uc.uc_stack.ss_sp = top - kStackSize;
	f->uc.uc_stack.ss_size = kStackSize;
	f->uc.uc_link = nullptr;
	makecontext(&f->uc, uc_start, 0);
}

static inline void switch_to_fiber(Block *b, Fiber *f) { swapcontext(&b->sched_uc, &f->uc); }
static inline void switch_to_scheduler(Block *b, Fiber *f) { swapcontext(&f->uc, &b->sched_uc); }
#endif

// to_fiber runs f until it switches back.
static inline void to_fiber(Block *b, Fiber *f) {
#if RT_EMU_ASAN
	__sanitizer_start_switch_fiber(&b->asan_fake, f->stack - kStackSize, kStackSize);
#endif
	b->in_fiber = true;
	switch_to_fiber(b, f);
	b->in_fiber = false;
#if RT_EMU_ASAN
	__sanitizer_finish_switch_fiber(b->asan_fake, nullptr, nullptr);
#endif
}

// fiber_entered tells AddressSanitizer a fiber runs, and learns the
// scheduler's stack on the way.
static inline void fiber_entered(Block *b, Fiber *f) {
#if RT_EMU_ASAN
	__sanitizer_finish_switch_fiber(f->asan_fake, &b->sched_bottom, &b->sched_size);
#else
	(void)b, (void)f;
#endif
}

// to_scheduler switches from f back to the scheduler; an exited f is never
// resumed.
static inline void to_scheduler(Block *b, Fiber *f) {
#if RT_EMU_ASAN
	__sanitizer_start_switch_fiber(f->state == st_exited ? nullptr : &f->asan_fake, b->sched_bottom, b->sched_size);
#endif
	switch_to_scheduler(b, f);
	fiber_entered(b, f);
}

// ---- Faults ------------------------------------------------------------------

// where writes "file:line: thread (x,y,z) of block (x,y,z)", without the
// file for a null one.
static int where(char *buf, size_t n, const char *file, int line, const Fiber *f, const Block *b) {
	int k = file != nullptr ? snprintf(buf, n, "%s:%d: ", file, line) : 0;
	if (k < 0 || (size_t)k >= n) return k;
	return k + snprintf(buf + k, n - k, "thread (%u,%u,%u) of block (%u,%u,%u)", f->tid.x, f->tid.y, f->tid.z, b->idx.x,
	                    b->idx.y, b->idx.z);
}

// fail records the launch's first fault; the block is abandoned.
static void record(Block *b, const char *msg) {
	b->failed = true;
	Launch *L = b->L;
	std::lock_guard<std::mutex> lock(L->mu);
	if (!L->failed.load()) {
		snprintf(L->error, sizeof L->error, "%s", msg);
		L->failed.store(true);
	}
}

// fault reports a fault of the current fiber at file:line (none for a null
// file) and leaves it for good.
[[noreturn]] static void fault(const char *file, int line, const char *fmt, ...) {
	Fiber *f = t_cur;
	Block *b = t_block;
	char msg[1536];
	int n = where(msg, sizeof msg, file, line, f, b);
	if (n > 0 && (size_t)n < sizeof msg - 2) {
		msg[n++] = ':';
		msg[n++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg + n, sizeof msg - n, fmt, ap);
		va_end(ap);
	}
	record(b, msg);
	to_scheduler(b, f);
	__builtin_unreachable();
}

// ---- Hardware faults -----------------------------------------------------------
// A kernel that reads past a buffer (into the guard page after it), overflows
// its stack (into the guard page below it), divides an integer by zero or
// executes a trap takes a signal. On x86-64 Linux, on_signal turns that into
// a fault of the launch, as a GPU reports an illegal address: it points the
// fiber, on a fresh stack, at fault_trampoline, which records the fault and
// leaves the fiber for good. A signal taken elsewhere goes to the handler
// installed before (the Go runtime's).

#if defined(__x86_64__) && defined(__linux__)
static const int caught_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
static struct sigaction prev_actions[4];

static const char *signal_name(int sig) {
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	}
	return "SIGILL";
}

static void fault_trampoline() {
	Fiber *f = t_cur;
	Dl_info info;
	const char *obj = "?";
	uintptr_t off = (uintptr_t)f->fault_pc;
	if (dladdr(f->fault_pc, &info) != 0 && info.dli_fname != nullptr) {
		obj = info.dli_fname;
		off -= (uintptr_t)info.dli_fbase;
	}
	const char *what = "illegal address";
	char *bottom = f->stack - kStackSize;
	if ((char *)f->fault_addr < bottom && (char *)f->fault_addr >= bottom - t_stacks.page) {
		what = "stack overflow (64 KiB per thread) at";
	} else if (f->fault_sig == SIGFPE) {
		what = "arithmetic fault (integer division by zero?) at";
	} else if (f->fault_sig == SIGILL) {
		what = "illegal instruction (a trap of -fsanitize-undefined-trap-on-error?) at";
	}
	fault(nullptr, 0, "%s %p (%s), pc %s+%#lx (addr2line -Cfe %s %#lx)", what, f->fault_addr, signal_name(f->fault_sig),
	      obj, (unsigned long)off, obj, (unsigned long)off);
}

static void on_signal(int sig, siginfo_t *si, void *ctx) {
	Block *b = t_block;
	Fiber *f = t_cur;
	if (b != nullptr && f != nullptr && b->in_fiber) {
		ucontext_t *uc = (ucontext_t *)ctx;
		f->fault_sig = sig;
		f->fault_addr = si->si_addr;
		f->fault_pc = (void *)uc->uc_mcontext.gregs[REG_RIP];
		// The fiber's stack from the top, as if fault_trampoline were called
		// there: whatever the fiber had on it is abandoned.
		uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(((uintptr_t)f->stack & ~(uintptr_t)15) - 8);
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)&fault_trampoline;
		return;
	}
	for (int i = 0; i < 4; i++) {
		if (caught_signals[i] != sig) continue;
		struct sigaction *p = &prev_actions[i];
		if (p->sa_flags & SA_SIGINFO) {
			p->sa_sigaction(sig, si, ctx);
		} else if (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN) {
			// Back to the default: the faulting instruction runs again and
			// takes it.
			sigaction(sig, p, nullptr);
		} else {
			p->sa_handler(sig);
		}
	}
}

static void catch_faults() {
	static std::once_flag once;
	std::call_once(once, [] {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_signal;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		for (int i = 0; i < 4; i++) sigaction(caught_signals[i], &sa, &prev_actions[i]);
	});
}
#else
static void catch_faults() {}
#endif

// ---- Scheduling points -------------------------------------------------------

static inline void yield_to_scheduler() {
	Fiber *f = t_cur;
	to_scheduler(t_block, f);
}

static void release_barrier(Block *b) {
	for (unsigned i = 0; i < b->n; i++) {
		if (b->fibers[i].state == st_barrier) {
			b->fibers[i].state = st_runnable;
			b->fibers[i].result = b->bar_count;
		}
	}
	b->at_barrier = 0;
	b->bar_count = 0;
}

// syncthreads waits until every thread of the block that has not exited
// arrived; pred feeds __syncthreads_count/and/or. Threads that exited no
// longer count, as on the hardware, so an early return before a barrier
// works; threads waiting at different __syncthreads (by file:line) are a
// fault.
static unsigned syncthreads(const char *file, int line, int pred) {
	Fiber *f = t_cur;
	Block *b = t_block;
	if (b->at_barrier == 0) {
		b->bar_file = file;
		b->bar_line = line;
	} else if (b->bar_line != line || (b->bar_file != file && strcmp(b->bar_file, file) != 0)) {
		fault(file, line, "divergent __syncthreads: other threads wait at the one at %s:%d", b->bar_file, b->bar_line);
	}
	f->state = st_barrier;
	f->file = file;
	f->line = line;
	b->bar_count += pred != 0;
	if (++b->at_barrier == b->live) {
		release_barrier(b);
		return (unsigned)f->result;
	}
	yield_to_scheduler();
	return (unsigned)f->result;
}

// lowest is the lowest lane of a non-zero mask.
static inline unsigned lowest(unsigned m) { return (unsigned)__builtin_ctz(m); }

// complete_warp_op computes the results of the warp operation whose lanes
// (f's mask) have all arrived, and makes them runnable. It reports false
// after a fault.
static bool complete_warp_op(Block *b, Fiber *f) {
	const unsigned mask = f->mask;
	const WarpOp op = f->op;
	Fiber *lanes = &b->fibers[f->warp * 32];
	uint64_t acc = 0;
	bool first = true;
	for (unsigned m = mask; m; m &= m - 1) {
		Fiber *p = &lanes[lowest(m)];
		if (p->op != op || p->mask != mask) {
			char msg[512];
			int n = where(msg, sizeof msg, f->file, f->line, f, b);
			snprintf(msg + n, sizeof msg - n, ": %s with mask %#x while lane %u waits at %s with mask %#x (%s:%d)", op_names[op],
			         mask, p->lane, op_names[p->op], p->mask, p->file, p->line);
			record(b, msg);
			return false;
		}
		uint32_t v = (uint32_t)p->val;
		switch (op) {
		case op_ballot:
		case op_any:
		case op_all:
			if (p->val) acc |= 1ull << p->lane;
			break;
		case op_reduce_add: acc = (uint32_t)(acc + v); break;
		case op_reduce_min: acc = first || v < (uint32_t)acc ? v : acc; break;
		case op_reduce_max: acc = first || v > (uint32_t)acc ? v : acc; break;
		case op_reduce_min_signed: acc = first || (int32_t)v < (int32_t)acc ? v : acc; break;
		case op_reduce_max_signed: acc = first || (int32_t)v > (int32_t)acc ? v : acc; break;
		default: break;
		}
		first = false;
	}
	for (unsigned m = mask; m; m &= m - 1) {
		const unsigned l = lowest(m);
		Fiber *p = &lanes[l];
		uint64_t r = acc;
		switch (op) {
		case op_shfl:
		case op_shfl_up:
		case op_shfl_down:
		case op_shfl_xor: {
			const unsigned w = (unsigned)p->width;
			const unsigned base = l & ~(w - 1);
			unsigned src;
			switch (op) {
			case op_shfl: src = base + ((unsigned)p->arg & (w - 1)); break;
			case op_shfl_up: src = l - base >= (unsigned)p->arg ? l - (unsigned)p->arg : l; break;
			case op_shfl_down: src = l - base + (unsigned)p->arg < w ? l + (unsigned)p->arg : l; break;
			default:
				src = l ^ (unsigned)p->arg;
				if (src >= base + w) src = l;
				break;
			}
			if (src > 31 || !(mask >> src & 1)) {
				char msg[512];
				int n = where(msg, sizeof msg, p->file, p->line, p, b);
				snprintf(msg + n, sizeof msg - n, ": %s reads lane %u, outside the mask %#x", op_names[op], src, mask);
				record(b, msg);
				return false;
			}
			r = lanes[src].val;
			break;
		}
		case op_any: r = acc != 0; break;
		case op_all: r = acc == (uint64_t)mask; break;
		case op_match_any:
			r = 0;
			for (unsigned q = mask; q; q &= q - 1)
				if (lanes[lowest(q)].val == p->val) r |= 1ull << lowest(q);
			break;
		default: break;
		}
		p->result = r;
		p->state = st_runnable;
	}
	b->warps[f->warp].waiting &= ~mask;
	return true;
}

// warp_op is every warp-synchronous intrinsic: the lane waits until all
// lanes of mask arrived at a warp operation, which must be the same
// operation with the same mask.
static uint64_t warp_op(const char *file, int line, WarpOp op, unsigned mask, uint64_t val, int arg, int width) {
	Fiber *f = t_cur;
	Block *b = t_block;
	Warp *w = &b->warps[f->warp];
	if (!(mask >> f->lane & 1)) fault(file, line, "%s with mask %#x, which leaves out the calling lane %u", op_names[op], mask, f->lane);
	if (width <= 0 || width > 32 || (width & (width - 1)) != 0) fault(file, line, "%s with width %d, not a power of 2 up to 32", op_names[op], width);
	if (mask & ~w->present) {
		fault(file, line, "%s with mask %#x names lane %u, which the block of %u threads does not have", op_names[op], mask,
		      lowest(mask & ~w->present), b->n);
	}
	if (mask & w->exited) fault(file, line, "%s with mask %#x names lane %u, which has exited", op_names[op], mask, lowest(mask & w->exited));
	if (unsigned other = w->waiting & mask) {
		Fiber *p = &b->fibers[f->warp * 32 + lowest(other)];
		if (p->op != op || p->mask != mask) {
			fault(file, line, "%s with mask %#x while lane %u waits at %s with mask %#x (%s:%d)", op_names[op], mask, p->lane,
			      op_names[p->op], p->mask, p->file, p->line);
		}
	}
	f->op = op;
	f->mask = mask;
	f->val = val;
	f->arg = arg;
	f->width = width;
	f->file = file;
	f->line = line;
	f->state = st_warp;
	w->waiting |= 1u << f->lane;
	if ((w->waiting & mask) == mask) {
		if (!complete_warp_op(b, f)) to_scheduler(b, f);
		return f->result;
	}
	yield_to_scheduler();
	return f->result;
}

// exit_fiber ends the current thread.
[[noreturn]] static void exit_fiber() {
	Fiber *f = t_cur;
	Block *b = t_block;
	Warp *w = &b->warps[f->warp];
	f->state = st_exited;
	b->live--;
	w->exited |= 1u << f->lane;
	// A lane waiting at a warp operation whose mask names this one would
	// wait for ever.
	for (unsigned m = w->waiting; m; m &= m - 1) {
		Fiber *p = &b->fibers[f->warp * 32 + lowest(m)];
		if (p->mask >> f->lane & 1) {
			char msg[512];
			int n = where(msg, sizeof msg, p->file, p->line, p, b);
			snprintf(msg + n, sizeof msg - n, ": %s with mask %#x waits for lane %u, which has exited", op_names[p->op], p->mask, f->lane);
			record(b, msg);
			break;
		}
	}
	if (!b->failed && b->at_barrier > 0 && b->at_barrier == b->live) release_barrier(b);
	to_scheduler(b, f);
	__builtin_unreachable();
}

static void fiber_main() {
	Block *b = t_block;
	fiber_entered(b, t_cur);
	b->L->k->invoke(b->L->params.data());
	exit_fiber();
}

// ---- Blocks ------------------------------------------------------------------

static inline uint64_t splitmix(uint64_t &s) {
	uint64_t z = (s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

// deadlock reports the block's waiting threads when none can run.
static void deadlock(Block *b) {
	char msg[1536];
	int n = snprintf(msg, sizeof msg, "deadlock in block (%u,%u,%u): no thread can run;", b->idx.x, b->idx.y, b->idx.z);
	int shown = 0;
	for (unsigned i = 0; i < b->n && n > 0 && (size_t)n < sizeof msg - 128; i++) {
		Fiber *f = &b->fibers[i];
		if (f->state == st_exited) continue;
		if (shown++ == 8) {
			n += snprintf(msg + n, sizeof msg - n, " ...");
			break;
		}
		if (f->state == st_barrier) {
			n += snprintf(msg + n, sizeof msg - n, " thread (%u,%u,%u) at __syncthreads %s:%d;", f->tid.x, f->tid.y, f->tid.z, f->file, f->line);
		} else {
			n += snprintf(msg + n, sizeof msg - n, " thread (%u,%u,%u) at %s mask %#x %s:%d;", f->tid.x, f->tid.y, f->tid.z,
			              op_names[f->op], f->mask, f->file, f->line);
		}
	}
	record(b, msg);
}

// run_block runs one block's threads to completion, or to its first fault.
static bool run_block(Launch *L, uint64_t id) {
	unsigned n = L->block[0] * L->block[1] * L->block[2];
	if (!t_stacks.reserve(n)) {
		std::lock_guard<std::mutex> lock(L->mu);
		if (!L->failed.load()) {
			snprintf(L->error, sizeof L->error, "cannot map %u fiber stacks", n);
			L->failed.store(true);
		}
		return false;
	}
	if (t_fibers.size() < n) t_fibers.resize(n);
	if (t_warps.size() < (n + 31) / 32) t_warps.resize((n + 31) / 32);
	if (t_dyn_smem.size() < (size_t)L->smem + 16) t_dyn_smem.resize((size_t)L->smem + 16);
	if (t_order.size() < n) t_order.resize(n);

	Block b{};
	b.L = L;
	b.idx = uint3{(unsigned)(id % L->grid[0]), (unsigned)(id / L->grid[0] % L->grid[1]), (unsigned)(id / L->grid[0] / L->grid[1])};
	b.bdim = uint3{L->block[0], L->block[1], L->block[2]};
	b.gdim = uint3{L->grid[0], L->grid[1], L->grid[2]};
	b.n = b.live = n;
	b.fibers = t_fibers.data();
	b.warps = t_warps.data();
	for (unsigned i = 0; i < (n + 31) / 32; i++) {
		unsigned lanes = n - i * 32 < 32 ? n - i * 32 : 32;
		b.warps[i] = Warp{lanes == 32 ? ~0u : (1u << lanes) - 1, 0, 0};
	}
	b.dyn_smem = (unsigned char *)(((uintptr_t)t_dyn_smem.data() + 15) & ~(uintptr_t)15);
	// Dynamic shared memory starts as all ones bytes (NaN as floats, -1 as
	// integers), so a kernel that reads it before writing it sees values
	// it cannot mistake for data.
	memset(b.dyn_smem, 0xff, L->smem);
	for (unsigned i = 0; i < n; i++) {
		Fiber *f = &b.fibers[i];
		*f = Fiber{};
		f->tid = uint3{i % b.bdim.x, i / b.bdim.x % b.bdim.y, i / b.bdim.x / b.bdim.y};
		f->warp = i / 32;
		f->lane = i % 32;
		f->state = st_runnable;
		f->stack = t_stacks.top(i);
#if RT_EMU_ASAN
		// A fiber abandoned after a fault left its frames' redzones behind.
		__asan_unpoison_memory_region(f->stack - kStackSize, kStackSize);
#endif
		prepare(f, f->stack);
	}
	Block *saved_block = t_block;
	Fiber *saved_fiber = t_cur;
	t_block = &b;
	uint64_t rng = L->seed ^ (id * 0xd1b54a32d192ed03ull);
	unsigned *order = t_order.data();
	bool ok = true;
	while (b.live > 0) {
		for (unsigned i = 0; i < n; i++) order[i] = L->order == order_reverse ? n - 1 - i : i;
		if (L->order == order_random) {
			for (unsigned i = n - 1; i > 0; i--) {
				unsigned j = (unsigned)(splitmix(rng) % (i + 1));
				unsigned t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
		}
		bool ran = false;
		for (unsigned i = 0; i < n && !b.failed; i++) {
			Fiber *f = &b.fibers[order[i]];
			if (f->state != st_runnable) continue;
			ran = true;
			t_cur = f;
			b.switches++;
			to_fiber(&b, f);
		}
		if (b.failed) {
			ok = false;
			break;
		}
		if (!ran) {
			deadlock(&b);
			ok = false;
			break;
		}
		if (L->failed.load(std::memory_order_relaxed)) {
			ok = false;
			break;
		}
	}
	t_block = saved_block;
	t_cur = saved_fiber;
	L->switches.fetch_add(b.switches, std::memory_order_relaxed);
	return ok;
}

// ---- Parameters ----------------------------------------------------------------

template <typename T>
constexpr char kind_of() {
	using U = std::remove_cv_t<T>;
	if (std::is_pointer<U>::value) return 'p';
	if (std::is_floating_point<U>::value) return 'f';
	if (std::is_integral<U>::value || std::is_enum<U>::value) return std::is_signed<U>::value ? 'i' : 'u';
	return 'o';
}

template <typename F, F f>
struct Thunk;

// Thunk unpacks a cuLaunchKernel-style parameter array into the kernel's
// parameters, whose types it deduces from the function pointer.
template <typename... A, void (*f)(A...)>
struct Thunk<void (*)(A...), f> {
	template <size_t... I>
	static void call(void **p, std::index_sequence<I...>) {
		f(*static_cast<std::remove_cv_t<A> *>(p[I])...);
	}
	static void invoke(void **p) {
		(void)p;
		call(p, std::index_sequence_for<A...>{});
	}
	static constexpr unsigned sizes[sizeof...(A) + 1] = {(unsigned)sizeof(A)..., 0};
	static constexpr char kinds[sizeof...(A) + 1] = {kind_of<A>()..., 0};
	static constexpr KernelDesc desc(const char *name) { return KernelDesc{name, &invoke, (int)sizeof...(A), sizes, kinds}; }
};

} // namespace rt_emu

#define RT_EMU_KERNEL(name) ::rt_emu::Thunk<decltype(&name), &name>::desc(#name)

// ---- Built-in variables ------------------------------------------------------

#define threadIdx (::rt_emu::t_cur->tid)
#define blockIdx (::rt_emu::t_block->idx)
#define blockDim (::rt_emu::t_block->bdim)
#define gridDim (::rt_emu::t_block->gdim)

static inline void *rt_dynamic_shared() { return ::rt_emu::t_block->dyn_smem; }

// ---- Synchronization ---------------------------------------------------------

#define __syncthreads() ((void)::rt_emu::syncthreads(__FILE__, __LINE__, 0))
#define __syncthreads_count(p) ((int)::rt_emu::syncthreads(__FILE__, __LINE__, (p)))
#define __syncthreads_and(p) (::rt_emu::syncthreads(__FILE__, __LINE__, !(p)) == 0)
#define __syncthreads_or(p) (::rt_emu::syncthreads(__FILE__, __LINE__, (p)) != 0)

namespace rt_emu {

template <typename T>
static inline uint64_t bits_of(T v) {
	static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp shuffles move values of up to 8 bytes");
	uint64_t u = 0;
	memcpy(&u, &v, sizeof v);
	return u;
}

template <typename T>
static inline T from_bits(uint64_t u) {
	T v;
	memcpy(&v, &u, sizeof v);
	return v;
}

template <typename T>
static inline T shfl(const char *file, int line, WarpOp op, unsigned mask, T v, int arg, int width = 32) {
	return from_bits<T>(warp_op(file, line, op, mask, bits_of(v), arg, width));
}

} // namespace rt_emu

#define __syncwarp(...) ((void)::rt_emu::warp_op(__FILE__, __LINE__, ::rt_emu::op_syncwarp, rt_emu_mask_or_full(__VA_ARGS__), 0, 0, 32))
static inline unsigned rt_emu_mask_or_full(unsigned m = 0xffffffffu) { return m; }
#define __shfl_sync(mask, v, ...) ::rt_emu::shfl(__FILE__, __LINE__, ::rt_emu::op_shfl, (mask), (v), __VA_ARGS__)
#define __shfl_up_sync(mask, v, ...) ::rt_emu::shfl(__FILE__, __LINE__, ::rt_emu::op_shfl_up, (mask), (v), __VA_ARGS__)
#define __shfl_down_sync(mask, v, ...) ::rt_emu::shfl(__FILE__, __LINE__, ::rt_emu::op_shfl_down, (mask), (v), __VA_ARGS__)
#define __shfl_xor_sync(mask, v, ...) ::rt_emu::shfl(__FILE__, __LINE__, ::rt_emu::op_shfl_xor, (mask), (v), __VA_ARGS__)
#define __ballot_sync(mask, p) ((unsigned)::rt_emu::warp_op(__FILE__, __LINE__, ::rt_emu::op_ballot, (mask), (p) != 0, 0, 32))
#define __any_sync(mask, p) ((int)::rt_emu::warp_op(__FILE__, __LINE__, ::rt_emu::op_any, (mask), (p) != 0, 0, 32))
#define __all_sync(mask, p) ((int)::rt_emu::warp_op(__FILE__, __LINE__, ::rt_emu::op_all, (mask), (p) != 0, 0, 32))
#define __match_any_sync(mask, v) ((unsigned)::rt_emu::warp_op(__FILE__, __LINE__, ::rt_emu::op_match_any, (mask), ::rt_emu::bits_of(v), 0, 32))
#define __reduce_add_sync(mask, v) ((unsigned)::rt_emu::warp_op(__FILE__, __LINE__, ::rt_emu::op_reduce_add, (mask), (unsigned)(v), 0, 32))
#define __reduce_min_sync(mask, v) (::rt_emu::reduce_minmax(__FILE__, __LINE__, false, (mask), (v)))
#define __reduce_max_sync(mask, v) (::rt_emu::reduce_minmax(__FILE__, __LINE__, true, (mask), (v)))

namespace rt_emu {
static inline unsigned reduce_minmax(const char *file, int line, bool mx, unsigned mask, unsigned v) {
	return (unsigned)warp_op(file, line, mx ? op_reduce_max : op_reduce_min, mask, v, 0, 32);
}
static inline int reduce_minmax(const char *file, int line, bool mx, unsigned mask, int v) {
	return (int)(uint32_t)warp_op(file, line, mx ? op_reduce_max_signed : op_reduce_min_signed, mask, (uint32_t)v, 0, 32);
}
} // namespace rt_emu

// __activemask is the lanes of the caller's warp that have not exited: the
// emulator has no lockstep, so lanes in divergent branches count as active.
static inline unsigned __activemask() {
	const rt_emu::Warp *w = &rt_emu::t_block->warps[rt_emu::t_cur->warp];
	return w->present & ~w->exited;
}

static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __nanosleep(unsigned) {}
// clock64 counts nanoseconds, for kernels that time themselves.
static inline long long clock64() {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// ---- Faults a kernel raises ----------------------------------------------------

#define __trap() ::rt_emu::fault(__FILE__, __LINE__, "__trap()")
#define __brkpt() ::rt_emu::fault(__FILE__, __LINE__, "__brkpt()")
#undef assert
#define assert(c) ((c) ? (void)0 : ::rt_emu::fault(__FILE__, __LINE__, "assertion failed: %s", #c))

// ---- Atomics (relaxed, as CUDA's) ------------------------------------------------

#define RT_EMU_ATOMIC_INT(T)                                                                                  \
	static inline T atomicAdd(T *p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }              \
	static inline T atomicSub(T *p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }              \
	static inline T atomicExch(T *p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }            \
	static inline T atomicOr(T *p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }                \
	static inline T atomicAnd(T *p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }              \
	static inline T atomicXor(T *p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }              \
	static inline T atomicCAS(T *p, T cmp, T v) {                                                           \
		__atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                  \
		return cmp;                                                                                          \
	}                                                                                                        \
	static inline T atomicMax(T *p, T v) {                                                                   \
		T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                        \
		while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
			;                                                                                                \
		return old;                                                                                          \
	}                                                                                                        \
	static inline T atomicMin(T *p, T v) {                                                                   \
		T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                        \
		while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
			;                                                                                                \
		return old;                                                                                          \
	}

RT_EMU_ATOMIC_INT(int)
RT_EMU_ATOMIC_INT(unsigned int)
RT_EMU_ATOMIC_INT(long long)
RT_EMU_ATOMIC_INT(unsigned long long)

// atomicCAS on unsigned short exists from sm_70.
static inline unsigned short atomicCAS(unsigned short *p, unsigned short cmp, unsigned short v) {
	__atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return cmp;
}

#define RT_EMU_ATOMIC_FLOAT(T, U)                                                                                      \
	static inline T atomicAdd(T *p, T v) {                                                                            \
		U old = __atomic_load_n((U *)p, __ATOMIC_RELAXED), next;                                                      \
		do {                                                                                                          \
			next = ::rt_emu::from_bits<U>(::rt_emu::bits_of(::rt_emu::from_bits<T>(old) + v));                        \
		} while (!__atomic_compare_exchange_n((U *)p, &old, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));         \
		return ::rt_emu::from_bits<T>(old);                                                                           \
	}                                                                                                                 \
	static inline T atomicExch(T *p, T v) {                                                                           \
		return ::rt_emu::from_bits<T>(__atomic_exchange_n((U *)p, ::rt_emu::from_bits<U>(::rt_emu::bits_of(v)), __ATOMIC_RELAXED)); \
	}

RT_EMU_ATOMIC_FLOAT(float, uint32_t)
RT_EMU_ATOMIC_FLOAT(double, uint64_t)

static inline unsigned int atomicInc(unsigned int *p, unsigned int limit) {
	unsigned int old = __atomic_load_n(p, __ATOMIC_RELAXED), next;
	do {
		next = old >= limit ? 0 : old + 1;
	} while (!__atomic_compare_exchange_n(p, &old, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return old;
}

static inline unsigned int atomicDec(unsigned int *p, unsigned int limit) {
	unsigned int old = __atomic_load_n(p, __ATOMIC_RELAXED), next;
	do {
		next = (old == 0 || old > limit) ? limit : old - 1;
	} while (!__atomic_compare_exchange_n(p, &old, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return old;
}

// ---- Bits and conversions ------------------------------------------------------

static inline float __int_as_float(int x) { return rt_emu::from_bits<float>((uint32_t)x); }
static inline int __float_as_int(float x) { return (int)(uint32_t)rt_emu::bits_of(x); }
static inline float __uint_as_float(unsigned x) { return rt_emu::from_bits<float>(x); }
static inline unsigned __float_as_uint(float x) { return (uint32_t)rt_emu::bits_of(x); }
static inline double __longlong_as_double(long long x) { return rt_emu::from_bits<double>((uint64_t)x); }
static inline long long __double_as_longlong(double x) { return (long long)rt_emu::bits_of(x); }

static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
	unsigned r = 0;
	for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
	return r;
}
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
	uint64_t v = ((uint64_t)y << 32) | x;
	unsigned r = 0;
	for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (((s >> (4 * i)) & 7) * 8)) & 0xff) << (8 * i);
	return r;
}
static inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
	return (unsigned)(((((uint64_t)hi << 32) | lo) << (s & 31)) >> 32);
}
static inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned s) {
	return (unsigned)(((((uint64_t)hi << 32) | lo) << (s > 32 ? 32 : s)) >> 32);
}
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
	return (unsigned)((((uint64_t)hi << 32) | lo) >> (s & 31));
}
static inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned s) {
	return (unsigned)((((uint64_t)hi << 32) | lo) >> (s > 32 ? 32 : s));
}
static inline int __mul24(int a, int b) { return (int)((int64_t)((a << 8) >> 8) * ((b << 8) >> 8)); }
static inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
static inline int __mulhi(int a, int b) { return (int)(((int64_t)a * b) >> 32); }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
static inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
	return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline unsigned __sad(int a, int b, unsigned c) { return c + (unsigned)(a > b ? (int64_t)a - b : (int64_t)b - a); }
static inline unsigned __usad(unsigned a, unsigned b, unsigned c) { return c + (a > b ? a - b : b - a); }

// Byte-wise SIMD: __vsubss4 and friends on four signed or unsigned bytes.
static inline unsigned rt_emu_bytes4(int (*op)(int, int), unsigned a, unsigned b, bool sgn) {
	unsigned r = 0;
	for (int i = 0; i < 32; i += 8) {
		int x = sgn ? (int)(int8_t)(a >> i) : (int)(uint8_t)(a >> i);
		int y = sgn ? (int)(int8_t)(b >> i) : (int)(uint8_t)(b >> i);
		r |= ((unsigned)op(x, y) & 0xffu) << i;
	}
	return r;
}
static inline int rt_emu_sat_s8(int v) { return v < -128 ? -128 : v > 127 ? 127 : v; }
static inline int rt_emu_sat_u8(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }
static inline unsigned __vsubss4(unsigned a, unsigned b) { return rt_emu_bytes4([](int x, int y) { return rt_emu_sat_s8(x - y); }, a, b, true); }
static inline unsigned __vaddss4(unsigned a, unsigned b) { return rt_emu_bytes4([](int x, int y) { return rt_emu_sat_s8(x + y); }, a, b, true); }
static inline unsigned __vsub4(unsigned a, unsigned b) { return rt_emu_bytes4([](int x, int y) { return x - y; }, a, b, false); }
static inline unsigned __vadd4(unsigned a, unsigned b) { return rt_emu_bytes4([](int x, int y) { return x + y; }, a, b, false); }
static inline unsigned __vsubus4(unsigned a, unsigned b) { return rt_emu_bytes4([](int x, int y) { return rt_emu_sat_u8(x - y); }, a, b, false); }
static inline unsigned __vaddus4(unsigned a, unsigned b) { return rt_emu_bytes4([](int x, int y) { return rt_emu_sat_u8(x + y); }, a, b, false); }
static inline unsigned __vabsdiffu4(unsigned a, unsigned b) { return rt_emu_bytes4([](int x, int y) { return x > y ? x - y : y - x; }, a, b, false); }

static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
static inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
static inline float __int2float_rn(int x) { return (float)x; }
static inline float __uint2float_rn(unsigned x) { return (float)x; }
static inline float __ll2float_rn(long long x) { return (float)x; }
static inline float __double2float_rn(double x) { return (float)x; }

// ---- Memory access hints -----------------------------------------------------------

template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }
template <typename T> static inline T __ldca(const T *p) { return *p; }
template <typename T> static inline T __ldcs(const T *p) { return *p; }
template <typename T> static inline T __ldlu(const T *p) { return *p; }
template <typename T> static inline T __ldcv(const T *p) { return *p; }
template <typename T> static inline void __stcg(T *p, T v) { *p = v; }
template <typename T> static inline void __stcs(T *p, T v) { *p = v; }
template <typename T> static inline void __stwb(T *p, T v) { *p = v; }
template <typename T> static inline void __stwt(T *p, T v) { *p = v; }

// ---- Math ------------------------------------------------------------------------
// The fast intrinsics are the exact functions: compare with tolerances.

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
// glibc declares __expf and its kin itself, so these are macros.
#define __expf(x) expf(x)
#define __exp10f(x) exp10f(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __sincosf(x, s, c) sincosf((x), (s), (c))
#define __powf(x, y) powf((x), (y))
static inline float __fdividef(float x, float y) { return x / y; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float __fadd_rn(float x, float y) { return x + y; }
static inline float __fsub_rn(float x, float y) { return x - y; }
static inline float __fmul_rn(float x, float y) { return x * y; }
static inline float __fdiv_rn(float x, float y) { return x / y; }
static inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x != x ? 0.0f : x; }

#define RT_EMU_MINMAX(T)                                          \
	static inline T min(T a, T b) { return b < a ? b : a; } \
	static inline T max(T a, T b) { return a < b ? b : a; }
RT_EMU_MINMAX(int)
RT_EMU_MINMAX(unsigned int)
RT_EMU_MINMAX(long long)
RT_EMU_MINMAX(unsigned long long)
RT_EMU_MINMAX(long)
RT_EMU_MINMAX(unsigned long)
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
// Mixed signedness goes unsigned, as in CUDA's headers.
static inline unsigned int min(int a, unsigned int b) { return min((unsigned int)a, b); }
static inline unsigned int min(unsigned int a, int b) { return min(a, (unsigned int)b); }
static inline unsigned int max(int a, unsigned int b) { return max((unsigned int)a, b); }
static inline unsigned int max(unsigned int a, int b) { return max(a, (unsigned int)b); }
static inline float min(float a, int b) { return fminf(a, (float)b); }
static inline float min(int a, float b) { return fminf((float)a, b); }
static inline float max(float a, int b) { return fmaxf(a, (float)b); }
static inline float max(int a, float b) { return fmaxf((float)a, b); }

// ---- The object's interface to Go ----------------------------------------------------

// The table of the program's kernels, generated after its source.
extern const rt_emu::KernelDesc rt_emu_table[];
extern const int rt_emu_table_len;

#define RT_EMU_ABI 1

extern "C" {

__attribute__((visibility("default"))) int rt_emu_abi(void) { return RT_EMU_ABI; }
__attribute__((visibility("default"))) int rt_emu_kernel_count(void) { return rt_emu_table_len; }
__attribute__((visibility("default"))) const char *rt_emu_kernel_name(int i) { return rt_emu_table[i].name; }
__attribute__((visibility("default"))) int rt_emu_kernel_nparams(int i) { return rt_emu_table[i].nparams; }
__attribute__((visibility("default"))) unsigned rt_emu_kernel_param_size(int i, int j) { return rt_emu_table[i].sizes[j]; }
__attribute__((visibility("default"))) int rt_emu_kernel_param_kind(int i, int j) { return rt_emu_table[i].kinds[j]; }

// rt_emu_launch_new prepares a launch of kernel k: args are the parameter
// values, each in the low bytes of 8; dims are the grid's and the block's
// x, y, z.
__attribute__((visibility("default"))) void *rt_emu_launch_new(int k, const unsigned long long *args, int nargs, const unsigned *dims,
                                                                unsigned smem, int order, unsigned long long seed) {
	rt_emu::catch_faults();
	rt_emu::Launch *L = new rt_emu::Launch();
	L->k = &rt_emu_table[k];
	L->values.assign(args, args + nargs);
	L->params.resize(nargs + 1);
	for (int i = 0; i < nargs; i++) L->params[i] = &L->values[i];
	for (int i = 0; i < 3; i++) {
		L->grid[i] = dims[i];
		L->block[i] = dims[3 + i];
	}
	L->smem = smem;
	L->order = order;
	L->seed = seed;
	L->nblocks = (uint64_t)dims[0] * dims[1] * dims[2];
	L->error[0] = 0;
	return L;
}

// rt_emu_launch_work runs blocks of the launch until none are left or one
// faults; several threads call it at once. It returns 0, or -1 after a fault.
__attribute__((visibility("default"))) int rt_emu_launch_work(void *p) {
	rt_emu::Launch *L = (rt_emu::Launch *)p;
	for (;;) {
		if (L->failed.load(std::memory_order_relaxed)) return -1;
		uint64_t id = L->next.fetch_add(1, std::memory_order_relaxed);
		if (id >= L->nblocks) return 0;
		if (!rt_emu::run_block(L, id)) return -1;
	}
}

__attribute__((visibility("default"))) const char *rt_emu_launch_error(void *p) {
	rt_emu::Launch *L = (rt_emu::Launch *)p;
	return L->failed.load() ? L->error : nullptr;
}

__attribute__((visibility("default"))) unsigned long long rt_emu_launch_switches(void *p) {
	return ((rt_emu::Launch *)p)->switches.load();
}

__attribute__((visibility("default"))) void rt_emu_launch_free(void *p) { delete (rt_emu::Launch *)p; }

} // extern "C"
