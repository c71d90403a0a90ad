/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the public API (include/uhmm.h) under hostile
 * arguments and call orders.
 *
 * Each input is a program: a stream of op codes, each followed by the
 * bytes its arguments are drawn from (reading past the end gives zeros).
 * The ops open and close address spaces (monitored: real userfaultfd
 * events; and UHMM_MM_NO_MONITOR), insert and remove interval notifiers
 * over an arena of ARENA_PAGES real pages and holes (and over hostile
 * ranges: zero, wrapping, unaligned, huge, the vdso), open and close
 * invalidation windows, run the collision-retry protocol, fault ranges,
 * drive a registration cache over an in-memory device, and change the
 * arena for real (mmap, MAP_FIXED, munmap, mremap, MADV_DONTNEED,
 * mprotect) so that the monitored address spaces hear kernel events.
 * Callbacks run on the fuzzer's thread for explicit windows (and may then
 * call back into uhmm: refused calls, nested windows, inserts, cache
 * calls) and on uhmm's dispatcher for kernel events. An op may fork (the
 * child checks what an inherited address space answers) or make the
 * library's allocations fail during the next op (uhmm_alloc_fail_from()).
 *
 * Only calls that are legal by the header's contract are made: where it
 * says a call is undefined or would deadlock (use after remove, closing
 * from a callback is refused but read_begin() under one's own open window
 * is not, ...) the fuzzer does not go. Every return value is checked
 * against what the header documents, and more precisely where the fuzzer
 * can know the answer:
 *
 *   - a NO_MONITOR address space hears nothing but its explicit windows,
 *     so which callbacks run, what they see, what invalidate_end() and
 *     read_begin_timeout() return, and what read_retry() answers are all
 *     predicted exactly (a model of the collision state runs alongside);
 *   - read_retry() is predicted exactly on every address space from the
 *     callback's own count of set_seq calls (under the device lock);
 *   - happens-before: after arm(), a read_begin(), and an munmap/mremap/
 *     MAP_FIXED/MADV_DONTNEED of a mapped page in the range, the next
 *     read_begin() must see the collision (read_retry() true);
 *   - range fault: every output bit against what the fuzzer mapped there;
 *     the errors against the requests and the arena's state;
 *   - registration cache: a region returned covers the request with the
 *     access asked for, its handle is registered, it is not stale (no
 *     change reported to its address space since it was registered), the
 *     limits hold except for held regions, and destroy deregisters all;
 *   - nothing is left registered with the userfaultfd once everything is
 *     removed and closed;
 *   - fork: in the child every call on an inherited mm is refused with
 *     -ECHILD, each notifier had exactly one RELEASE, remove works.
 *
 * Each input is torn down completely at its end (windows closed, regions
 * put, caches destroyed, notifiers removed, address spaces closed, arena
 * unmapped), so LeakSanitizer sees every leak. Notifiers are heap objects
 * freed as soon as remove() returns 0: a callback after that is a
 * use-after-free ASan reports.
 *
 * Nothing here waits long: blocking calls are made only where they must
 * return (no window of ours open on that address space), and the timed
 * variants with a few milliseconds elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uhmm.h"
#include "core/alloc.h"
#include "prim/uapi.h"

#define ARENA_PAGES 16
#define NMM 3
#define NSUB 10
#define NWIN 3
#define NRC 2
#define NHELD 24
#define NREC 512
#define MAX_DEPTH 2
#define MAX_FAULT_PAGES 24

/* ------------------------------------------------------------------ */
/* Failing */

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz-api: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

#define FAIL(...) fail(__VA_ARGS__)

/* UHMM_FUZZ_TRACE=1: print what each op does (to replay a failure). */
static bool tracing;
/*
 * UHMM_FUZZ_KNOWN_BUGS=1: also take the paths of the open bugs kept in
 * fuzz/known/api/ (README.md); without it they are avoided, so that a run
 * finds something new rather than the same hang again.
 */
static bool known_bugs;
#define TRACE(...)                                                             \
	do {                                                                   \
		if (tracing)                                                   \
			fprintf(stderr, "  " __VA_ARGS__);                     \
	} while (0)
#define ASSERT(c)                                                              \
	do {                                                                   \
		if (!(c))                                                      \
			fail("%s:%d: %s", __FILE__, __LINE__, #c);             \
	} while (0)

/* ret must be one of the listed values (terminated by 1, never an errno
 * nor 0): the documented answers in that situation. */
#define END 1
static void expect_(int line, const char *what, int ret, ...)
{
	va_list ap;
	int ok;

	va_start(ap, ret);
	while ((ok = va_arg(ap, int)) != END) {
		if (ok == ret) {
			va_end(ap);
			return;
		}
	}
	va_end(ap);
	fail("line %d: %s returned %d (%s): not a documented answer here",
	     line, what, ret, ret < 0 ? strerror(-ret) : "?");
}
#define EXPECT(what, ret, ...) expect_(__LINE__, what, ret, __VA_ARGS__, END)

/* ------------------------------------------------------------------ */
/* Input */

static const uint8_t *in_p;
static size_t in_n;

static uint8_t u8(void)
{
	if (!in_n)
		return 0;
	in_n--;
	return *in_p++;
}

static uint16_t u16(void)
{
	return (uint16_t)(u8() | u8() << 8);
}

static uint64_t u64(void)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8() << (8 * i);
	return v;
}

/* ------------------------------------------------------------------ */
/* Process-wide setup */

static unsigned long P;		/* page size */
static unsigned long A;		/* arena base */
static unsigned long vdso;	/* AT_SYSINFO_EHDR, or 0 */
static int memfd = -1, memfd_ro = -1;
static __thread bool on_main;	/* the fuzzer's thread (reads input) */
static bool in_fork;		/* inside fork(): PROTECTION windows */
static bool any_monitored_used;	/* this input opened one */
static unsigned long alloc_fail;	/* next op: fail from the nth */
static bool in_child;		/* the fork child */
static int child_pipe = -1;	/* the child's verdict goes there */

enum kind {
	K_HOLE,
	K_ANON_RW,
	K_ANON_RO,
	K_ANON_NONE,
	K_SHM_RW,	/* MAP_SHARED memfd, read-write */
	K_SHM_RO,	/* MAP_SHARED of an O_RDONLY fd: no VM_MAYWRITE */
	K_FILE_PRIV,	/* MAP_PRIVATE memfd, read-write */
	K_NKINDS,
};

static bool readable(enum kind k)
{
	return k != K_HOLE && k != K_ANON_NONE;
}

static bool writable(enum kind k)
{
	return k == K_ANON_RW || k == K_SHM_RW || k == K_FILE_PRIV;
}

static bool is_anon(enum kind k)
{
	return k == K_ANON_RW || k == K_ANON_RO || k == K_ANON_NONE;
}

/* ------------------------------------------------------------------ */
/* State of one input */

/* The arena, [A, A + ARENA_PAGES * P): every page is ours or a hole. */
static enum kind kind[ARENA_PAGES];
static unsigned long gen[ARENA_PAGES];	/* bumped by each change */
static unsigned long gclock;

struct fmm {
	struct uhmm_mm *mm;	/* NULL: free */
	bool monitored;
	int users;		/* user references of ours (ops) */
	int rc_refs;		/* user references taken for caches */
	int nsubs;		/* notifiers inserted (hold its memory) */
	int nwin;		/* windows of ours open on it */
	bool closed;		/* our references reached 0 */
	/* Model of the collision state (exact without monitor). */
	bool colliding;
	unsigned long epoch;
	/* gen of each page at the last change reported to this mm. */
	unsigned long reported[ARENA_PAGES];
};
static struct fmm mms[NMM];

enum {
	MODE_REFUSE_NB = 1,	/* refuses non-blockable windows (legal) */
	MODE_REFUSE_ALL = 2,	/* refuses blockable ones too (a bug) */
	MODE_NESTED = 4,	/* calls back into uhmm (fuzzer thread) */
};

#define NLOG 8
struct fsub {
	struct uhmm_interval_notifier sub;
	pthread_mutex_t lock;	/* the device lock */
	int mmi;
	unsigned long start, last;	/* the range, inclusive */
	unsigned int mode;
	/* [lock] */
	unsigned long calls, setseqs, releases;
	struct {
		enum uhmm_event event;
		unsigned long start, end;
	} log[NLOG];
	unsigned long nlog;
	/* Model, fuzzer thread only. */
	bool deferred;		/* inserted while colliding (no monitor) */
	unsigned long seq_epoch; /* collision its seq belongs to */
	unsigned long unc_epoch; /* collision where that is unknown */
	bool surely_linked;	/* in the tree: a read_begin returned */
	unsigned long exp_min, exp_max; /* expected calls */
	bool have_seq;
	unsigned long seq, c0;	/* from read_begin; setseqs before it */
	bool seq_exact;		/* no set_seq during that read_begin */
};
static struct fsub *subs[NSUB];

struct fwin {
	struct uhmm_notifier_range r;
	int mmi;
	bool open;
	bool bug_exact;		/* -EPROTO predicted exactly */
	bool bug;		/* predicted -EPROTO */
	bool bug_maybe;		/* -EPROTO allowed */
};
static struct fwin wins[NWIN];

/* The windows the fuzzer thread is inside, innermost last: what its
 * callbacks must see. */
struct mwin {
	struct uhmm_mm *mm;
	unsigned long start, end;
	enum uhmm_event event;
	unsigned int flags;
};
static struct mwin wstack[16];
static int wdepth;
static int depth;	/* nesting of ops through callbacks */

/* The in-memory device: records every registration. */
struct rec {
	unsigned long addr, len;
	unsigned int access;
	bool live;
	int rci;
	unsigned long gen[ARENA_PAGES];	/* of the pages at reg */
};
static struct {
	pthread_mutex_t lock;
	struct rec rec[NREC];
	unsigned long nrec;
	int fail_next;	/* next reg returns it */
	long live;
} dev = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct frc {
	struct uhmm_rcache *rc;
	int mmi;
	size_t max_regions, max_bytes;
	int rci;
	unsigned long regs, deregs;	/* [dev.lock] this cache's */
	/* Regions returned to us: a hold count per region pointer. */
	struct {
		struct uhmm_region *r;
		int holds;
	} held[NHELD];
	int nheld;
};
static struct frc rcs[NRC];

/* mm's memory is valid: some reference of ours holds it. */
static bool mm_alive(int i)
{
	return mms[i].mm != NULL;
}

static bool mm_has_users(int i)
{
	return mms[i].mm && mms[i].users + mms[i].rc_refs > 0;
}

static struct fsub *sub_of(struct uhmm_interval_notifier *s)
{
	return (struct fsub *)((char *)s - offsetof(struct fsub, sub));
}

/* ------------------------------------------------------------------ */
/* Ranges */

static unsigned long arena_end(void)
{
	return A + ARENA_PAGES * P;
}

/* First and last arena page overlapped by [start, last]; false if none. */
static bool arena_pages(unsigned long start, unsigned long last, int *first,
			int *lastp)
{
	if (last < A || start >= arena_end())
		return false;
	*first = start < A ? 0 : (int)((start - A) / P);
	*lastp = last >= arena_end() ? ARENA_PAGES - 1 : (int)((last - A) / P);
	return true;
}

/* [start, last] within the arena (plus what it rounds to). */
static bool in_arena(unsigned long start, unsigned long last)
{
	return start >= A && last < arena_end() && start <= last;
}

/*
 * A start and a length: mostly over the arena (pages, holes, a page or
 * two around it, sometimes unaligned), else hostile.
 */
static void gen_range(unsigned long *startp, unsigned long *lenp)
{
	uint8_t k = u8();
	unsigned long start, len;

	if (k < 200) {
		int s = (int)(u8() % (ARENA_PAGES + 4)) - 2;
		unsigned long n = u8() % (ARENA_PAGES + 3);

		start = A + (unsigned long)((long)s * (long)P);
		len = n * P;
		if (k & 1) {
			start += u8() % P;
			len += u16() % P;
		}
		if (k >= 190)
			len = u64() >> (u8() & 63);	/* huge, any */
	} else {
		switch (k % 12) {
		case 0: start = 0; break;
		case 1: start = P; break;
		case 2: start = vdso ? vdso : P; break;
		case 3: start = (1UL << 47) - P; break;
		case 4: start = ULONG_MAX - P + 1; break;
		case 5: start = ULONG_MAX; break;
		case 6: start = ULONG_MAX - u8(); break;
		case 7: start = (unsigned long)u64(); break;
		case 8: start = A - P * (1 + u8()); break;
		case 9: start = vdso ? vdso - P : A; break;
		case 10: start = 1UL << 46; break;
		default: start = A + ARENA_PAGES * P; break;
		}
		switch (u8() % 10) {
		case 0: len = 0; break;
		case 1: len = 1; break;
		case 2: len = ULONG_MAX; break;
		case 3: len = ULONG_MAX - start + 1; break; /* to the top */
		case 4: len = ULONG_MAX - start + 2; break; /* one too far */
		case 5: len = (unsigned long)u64(); break;
		case 6: len = 1UL << (u8() % 64); break;
		case 7: len = 2 * P; break;
		case 8: len = P * (1 + u8() % 4); break;
		default: len = ULONG_MAX - u8(); break;
		}
	}
	*startp = start;
	*lenp = len;
}

/* ------------------------------------------------------------------ */
/* The callback */

/*
 * The arena's system calls go to the kernel directly, or (a mem op's bit
 * 0x40) through uhmm_mmap() and friends, which report the change before
 * making it - in this thread, while callbacks may refuse, nest, ...
 */
static bool in_mem_op;
static bool via_uhmm;

static void nested_action(struct fsub *s, const struct uhmm_notifier_range *r);
static bool in_window_of(int i);

static bool fuzz_invalidate(struct uhmm_interval_notifier *sub,
			    const struct uhmm_notifier_range *range,
			    unsigned long cur_seq)
{
	struct fsub *s = sub_of(sub);
	bool blockable = uhmm_range_blockable(range);
	bool refuse = (s->mode & MODE_REFUSE_ALL) ||
		      ((s->mode & MODE_REFUSE_NB) && !blockable);

	if (range->end <= range->start)
		FAIL("callback with an empty range [%#lx, %#lx)", range->start,
		     range->end);
	/* RELEASE is over everything, top byte included, though its
	 * [0, ULONG_MAX) cannot say so. */
	if ((s->start > range->end - 1 || s->last < range->start) &&
	    range->event != UHMM_EVENT_RELEASE)
		FAIL("callback for [%#lx, %#lx] from a window [%#lx, %#lx) "
		     "that does not overlap it", s->start, s->last,
		     range->start, range->end);
	if (range->event < UHMM_EVENT_UNMAP || range->event > UHMM_EVENT_RELEASE)
		FAIL("callback with event %d", (int)range->event);
	if (range->event == UHMM_EVENT_RELEASE &&
	    (range->start != 0 || range->end != ULONG_MAX || !blockable))
		FAIL("RELEASE over [%#lx, %#lx), flags %#x", range->start,
		     range->end, range->flags);
	if (range->flags & ~UHMM_RANGE_BLOCKABLE)
		FAIL("callback range flags %#x", range->flags);
	if (!(cur_seq & 1))
		FAIL("callback with an even seq %lu", cur_seq);

	if (on_main && in_fork) {
		/* fork()'s windows, in its atfork handler (uhmm_mm_open()). */
		if (range->event != UHMM_EVENT_PROTECTION || !blockable)
			FAIL("fork window with event %d flags %#x",
			     (int)range->event, range->flags);
	} else if (on_main && in_child) {
		/* The child's RELEASE, at its first call on the mm. */
		if (range->event != UHMM_EVENT_RELEASE)
			FAIL("event %d in a fork child", (int)range->event);
	} else if (on_main && in_mem_op && via_uhmm && !depth) {
		/* uhmm_munmap() & co.: the change's own windows, before it,
		 * non-blockable, over the arena, on monitored mms. */
		if (blockable || range->event == UHMM_EVENT_RELEASE ||
		    !mms[s->mmi].monitored || range->start < A ||
		    range->end > A + ARENA_PAGES * P)
			FAIL("uhmm_*() window [%#lx, %#lx) event %d flags %#x "
			     "on mm%d", range->start, range->end,
			     (int)range->event, range->flags, s->mmi);
	} else if (on_main) {
		const struct mwin *w;

		/* Only windows the fuzzer thread opened run here. */
		if (!wdepth)
			FAIL("callback on the fuzzer thread outside any window");
		w = &wstack[wdepth - 1];
		if (range->start != w->start || range->end != w->end ||
		    range->event != w->event || range->flags != w->flags)
			FAIL("callback sees [%#lx, %#lx) event %d flags %#x, "
			     "the window is [%#lx, %#lx) event %d flags %#x",
			     range->start, range->end, (int)range->event,
			     range->flags, w->start, w->end, (int)w->event,
			     w->flags);
		if (range->mm != w->mm || w->mm != s->sub.mm)
			FAIL("callback range->mm %p, window's mm %p, sub's %p",
			     (void *)range->mm, (void *)w->mm,
			     (void *)s->sub.mm);
	} else {
		/* uhmm's threads: kernel events (always blockable) or the
		 * RELEASE of a close the dispatcher finished. */
		if (!blockable || range->event == UHMM_EVENT_PROTECTION)
			FAIL("kernel window event %d flags %#x",
			     (int)range->event, range->flags);
		if (!mms[s->mmi].monitored)
			FAIL("an mm without monitor called from another thread");
	}

	pthread_mutex_lock(&s->lock);
	if (s->releases)
		FAIL("callback (event %d) after RELEASE", (int)range->event);
	s->calls++;
	if (range->event == UHMM_EVENT_RELEASE)
		s->releases++;
	s->log[s->nlog % NLOG].event = range->event;
	s->log[s->nlog % NLOG].start = range->start;
	s->log[s->nlog % NLOG].end = range->end;
	s->nlog++;
	if (!refuse) {
		uhmm_interval_set_seq(sub, cur_seq);
		s->setseqs++;
	}
	pthread_mutex_unlock(&s->lock);

	/* Not from the windows of uhmm_munmap() & co.: the ops' oracles
	 * know a callback by the fuzzer's own windows (not yet done). */
	if (on_main && (s->mode & MODE_NESTED) && depth < MAX_DEPTH &&
	    !in_fork && !in_child && !(in_mem_op && via_uhmm))
		nested_action(s, range);
	return !refuse;
}

static const struct uhmm_interval_notifier_ops fuzz_ops = { fuzz_invalidate };
static const struct uhmm_interval_notifier_ops null_ops = { NULL };

static unsigned long sub_setseqs(struct fsub *s)
{
	unsigned long n;

	pthread_mutex_lock(&s->lock);
	n = s->setseqs;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static unsigned long sub_calls(struct fsub *s)
{
	unsigned long n;

	pthread_mutex_lock(&s->lock);
	n = s->calls;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ------------------------------------------------------------------ */
/* The model of windows */

/*
 * The model is exact only for an mm that hears nothing but our windows
 * and has no notifier but ours. A monitored mm has kernel windows; a
 * cache's regions are notifiers of their own, which our windows may hit
 * (making the mm collide, deferring our inserts) and its worker removes
 * when it likes. There the model only keeps what is certain: notifiers
 * a read_begin() has proven linked.
 */
static bool loose(const struct fmm *m)
{
	return m->monitored || m->rc_refs > 0;
}

static bool overlaps(const struct fsub *s, unsigned long start,
		     unsigned long end)
{
	return s->start <= end - 1 && start <= s->last;
}

static bool refuses(const struct fsub *s, bool blockable)
{
	return (s->mode & MODE_REFUSE_ALL) ||
	       ((s->mode & MODE_REFUSE_NB) && !blockable);
}

/*
 * Can a window [start, end) on mm i call s? Not if s is elsewhere, or
 * a deferred insert without monitor (deferred inserts are known and not
 * called there; with a monitor, a kernel window may have deferred any
 * insert not yet seen by a read_begin, which callers check apart).
 */
static bool window_reaches(const struct fsub *s, int i, unsigned long start,
			   unsigned long end)
{
	return s && s->mmi == i && s->sub.mm && overlaps(s, start, end) &&
	       (loose(&mms[i]) || !s->deferred);
}

/*
 * A window [start, end) opens on mm i: update the expectations of the
 * notifiers it hits. Returns the predicted result of its start: 0, or
 * -EAGAIN (non-blockable and a callback refuses). *bug: a blockable
 * callback refuses (-EPROTO at its end); *bug_maybe: one may.
 */
static int model_window_open(int i, unsigned long start, unsigned long end,
			     bool blockable, bool *bug, bool *bug_maybe)
{
	struct fmm *m = &mms[i];
	bool any = false, refusal = false;

	*bug = *bug_maybe = false;
	for (int k = 0; k < NSUB; k++) {
		struct fsub *s = subs[k];

		if (!window_reaches(s, i, start, end))
			continue;
		if (loose(m) && (m->closed || !s->surely_linked)) {
			if (refuses(s, blockable)) {
				*bug_maybe |= blockable;
				refusal = true;	/* maybe */
			}
			continue;
		}
		any = true;
		if (refuses(s, blockable)) {
			refusal = true;
			if (blockable)
				*bug = *bug_maybe = true;
		}
	}
	if (!blockable && refusal) {
		/* Called in order until the first refusal: any of the hits
		 * may or may not have been called. */
		for (int k = 0; k < NSUB; k++) {
			struct fsub *s = subs[k];

			if (!window_reaches(s, i, start, end))
				continue;
			s->exp_max++;
			s->unc_epoch = m->epoch + (m->colliding ? 0 : 1);
		}
		if (any && !m->colliding) {
			m->colliding = true;
			m->epoch++;
		}
		return -EAGAIN;
	}
	if (any && !m->colliding) {
		m->colliding = true;
		m->epoch++;
	}
	for (int k = 0; k < NSUB; k++) {
		struct fsub *s = subs[k];

		if (!window_reaches(s, i, start, end))
			continue;
		if (loose(m) && (m->closed || !s->surely_linked)) {
			s->exp_max++;
			continue;
		}
		s->exp_min++;
		s->exp_max++;
		if (!refuses(s, blockable))
			s->seq_epoch = m->epoch;
	}
	return 0;
}

/* The last of our windows on mm i closed (or an -EAGAIN start). */
static void model_windows_closed(int i)
{
	struct fmm *m = &mms[i];

	if (m->nwin)
		return;
	m->colliding = false;
	for (int k = 0; k < NSUB; k++)
		if (subs[k] && subs[k]->mmi == i)
			subs[k]->deferred = false;
}

/* Might read_begin() on s wait for a window of ours? */
static bool model_blocked(const struct fsub *s, bool *maybe)
{
	const struct fmm *m = &mms[s->mmi];

	*maybe = loose(m) ? m->nwin > 0 :
		 m->colliding && s->unc_epoch == m->epoch;
	return !loose(m) && m->colliding && s->seq_epoch == m->epoch;
}

/* Every notifier's callback count against the model. */
static void check_counts(void)
{
	for (int k = 0; k < NSUB; k++) {
		struct fsub *s = subs[k];
		unsigned long calls;

		if (!s || !s->sub.mm)
			continue;
		calls = sub_calls(s);
		if (calls < s->exp_min ||
		    (!mms[s->mmi].monitored && calls > s->exp_max))
			FAIL("notifier [%#lx, %#lx] (%s) had %lu callbacks, "
			     "expected %lu..%lu", s->start, s->last,
			     mms[s->mmi].monitored ? "monitored" : "no monitor",
			     calls, s->exp_min, s->exp_max);
	}
}

/* ------------------------------------------------------------------ */
/* Address spaces */

static void mm_forget_if_unused(int i)
{
	struct fmm *m = &mms[i];

	if (m->mm && m->users + m->rc_refs == 0 && m->nsubs == 0)
		memset(m, 0, sizeof(*m));
}

static void push_window(struct uhmm_mm *mm, unsigned long start,
			unsigned long end, enum uhmm_event event,
			unsigned int flags)
{
	ASSERT(wdepth < (int)(sizeof(wstack) / sizeof(wstack[0])));
	wstack[wdepth++] = (struct mwin){ mm, start, end, event, flags };
}

/* Does the fuzzer thread hold a window open (on any mm)? */
static bool any_window_open(void)
{
	for (int w = 0; w < NWIN; w++)
		if (wins[w].open)
			return true;
	return false;
}

/* Drop one user reference (ours or a cache's) of mm i. Not by a thread
 * that holds a window open, nor from a callback (uhmm_mm_close()). */
static void mm_drop(int i, bool cache_ref)
{
	struct fmm *m = &mms[i];
	bool last = m->users + m->rc_refs == 1;
	int ret;

	ASSERT(!any_window_open() && !wdepth);
	/* The model first: the RELEASE callbacks may look at it. */
	if (cache_ref)
		m->rc_refs--;
	else
		m->users--;
	if (last) {
		m->closed = true;
		/* The RELEASE window, here or (monitored) on the
		 * dispatcher: every notifier inserted gets one. */
		for (int k = 0; k < NSUB; k++) {
			struct fsub *s = subs[k];

			if (s && s->mmi == i && s->sub.mm) {
				if (!m->monitored)
					s->exp_min++;
				s->exp_max++;
			}
		}
		push_window(m->mm, 0, ULONG_MAX, UHMM_EVENT_RELEASE,
			    UHMM_RANGE_BLOCKABLE);
	}
	ret = uhmm_mm_close(m->mm);
	TRACE("close mm%d%s: %d\n", i, last ? " (our last)" : "", ret);
	if (last)
		wdepth--;
	EXPECT("uhmm_mm_close", ret, 0);
	if (last) {
		if (!m->monitored) {
			/* Each inserted notifier got exactly one RELEASE. */
			for (int k = 0; k < NSUB; k++) {
				struct fsub *s = subs[k];

				if (s && s->mmi == i && s->sub.mm) {
					pthread_mutex_lock(&s->lock);
					if (s->releases != 1)
						FAIL("%lu RELEASEs",
						     s->releases);
					pthread_mutex_unlock(&s->lock);
				}
			}
		}
	}
	mm_forget_if_unused(i);
}

static void op_mm_open(void)
{
	uint8_t k = u8();
	int i = k % NMM, ret;
	struct uhmm_mm *mm;
	unsigned int flags;

	if (k & 0x80) {
		/* Refused arguments. */
		EXPECT("uhmm_mm_open(NULL)",
		       uhmm_mm_open(NULL, k & 8 ? UHMM_MM_NO_MONITOR : 0),
		       -EINVAL);
		EXPECT("uhmm_mm_open(bad flags)",
		       uhmm_mm_open(&mm, (1u << (3 + u8() % 29)) |
					 (k & 8 ? UHMM_MM_NO_MONITOR : 0)),
		       -EINVAL);
		EXPECT("uhmm_mm_open(STRICT | RELAXED)",
		       uhmm_mm_open(&mm, UHMM_MM_STRICT | UHMM_MM_RELAXED |
					 (k & 8 ? UHMM_MM_NO_MONITOR : 0)),
		       -EINVAL);
		return;
	}
	if (mms[i].mm)
		return;
	flags = (k & 0x10) ? UHMM_MM_NO_MONITOR : 0;
	/* Strictness: the environment's (strict), or either flag. */
	flags |= (k & 0x60) == 0x20 ? UHMM_MM_STRICT
		 : (k & 0x60) == 0x40 ? UHMM_MM_RELAXED : 0;
	ret = uhmm_mm_open(&mm, flags);
	TRACE("open mm%d flags %u: %d\n", i, flags, ret);
	if (flags & UHMM_MM_NO_MONITOR)
		EXPECT("uhmm_mm_open(NO_MONITOR)", ret, 0, -ENOMEM);
	else
		EXPECT("uhmm_mm_open(0)", ret, 0, -ENOMEM, -EPERM, -ENOSYS,
		       -EOPNOTSUPP, -EAGAIN);
	if (ret)
		return;
	memset(&mms[i], 0, sizeof(mms[i]));
	mms[i].mm = mm;
	mms[i].monitored = !(flags & UHMM_MM_NO_MONITOR);
	mms[i].users = 1;
	/* Nothing changed before it existed counts as unreported. */
	memcpy(mms[i].reported, gen, sizeof(gen));
}

static void op_mm_get(void)
{
	int i = u8() % NMM, ret;
	struct fmm *m = &mms[i];

	if (!mm_alive(i)) {
		if (u8() & 1)
			EXPECT("uhmm_mm_get(NULL)", uhmm_mm_get(NULL), -EINVAL);
		return;
	}
	ret = uhmm_mm_get(m->mm);
	if (mm_has_users(i))
		EXPECT("uhmm_mm_get", ret, 0);
	else if (m->monitored)	/* the dispatcher may hold the last */
		EXPECT("uhmm_mm_get(closed)", ret, 0, -ESRCH);
	else
		EXPECT("uhmm_mm_get(closed)", ret, -ESRCH);
	if (!ret)
		m->users++;
}

static void op_mm_close(void)
{
	int i = u8() % NMM;
	struct fmm *m = &mms[i];

	if (!mm_alive(i)) {
		if (u8() & 1)
			EXPECT("uhmm_mm_close(NULL)", uhmm_mm_close(NULL),
			       -EINVAL);
		return;
	}
	if (m->users > 0) {
		/* Not while a window of ours is open (header). */
		if (any_window_open())
			return;
		mm_drop(i, false);
		return;
	}
	/* No reference of ours left: only where no one else can hold
	 * one (without monitor) is "no user left" certain. */
	if (!m->monitored && m->rc_refs == 0)
		EXPECT("uhmm_mm_close(closed)", uhmm_mm_close(m->mm), -ESRCH);
}

static void op_mm_sync(void)
{
	int i = u8() % NMM, ret;
	struct fmm *m = &mms[i];

	if (!mm_alive(i)) {
		EXPECT("uhmm_mm_sync(NULL)", uhmm_mm_sync(NULL), -EINVAL);
		return;
	}
	ret = uhmm_mm_sync(m->mm);
	if (mm_has_users(i))
		EXPECT("uhmm_mm_sync", ret, 0);
	else if (m->monitored)
		EXPECT("uhmm_mm_sync(closed)", ret, 0, -ESRCH);
	else
		EXPECT("uhmm_mm_sync(closed)", ret, -ESRCH);
}

/* ------------------------------------------------------------------ */
/* Notifiers */

static int free_sub_slot(void)
{
	for (int k = 0; k < NSUB; k++)
		if (!subs[k])
			return k;
	return -1;
}

static struct fsub *new_sub(void)
{
	struct fsub *s = calloc(1, sizeof(*s));

	ASSERT(s);
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

static void free_sub(struct fsub *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Errors an insert (or arm) over [start, last] may give on a monitored
 * mm, from what is mapped there. */
static bool range_has_kind(unsigned long start, unsigned long last,
			   enum kind k)
{
	int f, l;

	if (!arena_pages(start, last, &f, &l))
		return false;
	for (int p = f; p <= l; p++)
		if (kind[p] == k)
			return true;
	return false;
}

/*
 * eperm: -EPERM is documented (insert). For arm() the header lists
 * "-ECHILD, -EBUSY, -EOPNOTSUPP, -ENOMEM as for insert" - but a read-only
 * MAP_SHARED file mapping created in the range after insert makes it
 * return -EPERM too (the kernel refuses to register it, as at insert).
 * Reported as a gap in the header; accepted here only where such a
 * mapping is (the arena), so that any other -EPERM is still caught.
 */
static void check_arm_error(const char *what, int ret, unsigned long start,
			    unsigned long last, bool eperm)
{
	if (!eperm && ret == -EPERM && range_has_kind(start, last, K_SHM_RO))
		eperm = true;
	if (in_arena(start, last)) {
		/* The arena: only the read-only shared mapping is refused. */
		if (eperm && range_has_kind(start, last, K_SHM_RO))
			EXPECT(what, ret, 0, -EPERM, -ENOMEM);
		else
			EXPECT(what, ret, 0, -ENOMEM);
	} else {
		/* Anything of the process may be there: vdso, vvar,
		 * read-only shared files. */
		if (eperm)
			EXPECT(what, ret, 0, -EOPNOTSUPP, -EPERM, -ENOMEM);
		else
			EXPECT(what, ret, 0, -EOPNOTSUPP, -ENOMEM);
	}
}

static void op_insert(void)
{
	uint8_t k = u8();
	int i = u8() % NMM, slot = free_sub_slot(), ret;
	unsigned long start, len, last;
	struct fsub *s;
	struct fmm *m = &mms[i];

	gen_range(&start, &len);
	if (k & 0x80) {
		/* Refused arguments. */
		struct uhmm_interval_notifier dummy;

		memset(&dummy, 0, sizeof(dummy));
		EXPECT("insert(NULL sub)",
		       uhmm_interval_notifier_insert(NULL, m->mm, start, len,
						     &fuzz_ops), -EINVAL);
		EXPECT("insert(NULL mm)",
		       uhmm_interval_notifier_insert(&dummy, NULL, start, len,
						     &fuzz_ops), -EINVAL);
		if (mm_alive(i)) {
			EXPECT("insert(NULL ops)",
			       uhmm_interval_notifier_insert(&dummy, m->mm,
							     start, len, NULL),
			       -EINVAL);
			EXPECT("insert(no callback)",
			       uhmm_interval_notifier_insert(&dummy, m->mm,
							     start, len,
							     &null_ops),
			       -EINVAL);
		}
		EXPECT("remove(never inserted)",
		       uhmm_interval_notifier_remove(&dummy), -ENOENT);
		return;
	}
	if (!mm_alive(i) || slot < 0)
		return;
	s = new_sub();
	s->mmi = i;
	s->mode = k & 7;
	/* Before insert: a kernel event may call it back at once. */
	if (len && !__builtin_add_overflow(start, len - 1, &last)) {
		s->start = start;
		s->last = last;
	}
	ret = uhmm_interval_notifier_insert(&s->sub, m->mm, start, len,
					    &fuzz_ops);
	TRACE("insert sub%d mm%d [%#lx, +%#lx) mode %u: %d\n", slot, i, start,
	      len, s->mode, ret);
	if (len == 0 || __builtin_add_overflow(start, len - 1, &last)) {
		EXPECT("insert(bad length)", ret, -EOVERFLOW);
	} else if (m->monitored) {
		if (ret != -ESRCH || !m->closed)
			check_arm_error("insert", ret, start, last, true);
	} else if (m->closed) {
		EXPECT("insert(closed mm)", ret, -ESRCH);
	} else {
		EXPECT("insert", ret, 0, -ENOMEM);
	}
	if (ret) {
		/* Never inserted: remove and the others say so. */
		EXPECT("remove(failed insert)",
		       uhmm_interval_notifier_remove(&s->sub), -ENOENT);
		EXPECT("arm(failed insert)",
		       uhmm_interval_notifier_arm(&s->sub), -ENOENT);
		free_sub(s);
		return;
	}
	if (s->sub.mm != m->mm)
		FAIL("insert returned 0 but the notifier is not inserted");
	m->nsubs++;
	/* The model: inserted during an open window, it starts out
	 * colliding, deferred if the mm already was. */
	if (m->nwin) {
		if (m->colliding) {
			s->deferred = true;
		} else {
			m->colliding = true;
			m->epoch++;
		}
		s->seq_epoch = m->epoch;
	}
	subs[slot] = s;
}

/* May s be removed now without waiting for a window of ours? */
static bool remove_ok(const struct fsub *s)
{
	const struct fmm *m = &mms[s->mmi];

	return m->nwin == 0 || (!loose(m) && s->deferred);
}

static void do_remove(int k)
{
	struct fsub *s = subs[k];
	int i = s->mmi, ret;

	ret = uhmm_interval_notifier_remove(&s->sub);
	EXPECT("uhmm_interval_notifier_remove", ret, 0);
	/* Removed: the notifier's memory is ours again. */
	EXPECT("remove(removed)", uhmm_interval_notifier_remove(&s->sub),
	       -ENOENT);
	EXPECT("arm(removed)", uhmm_interval_notifier_arm(&s->sub), -ENOENT);
	/* No callback may be running or run: free it now (ASan sees any
	 * later access). Its count must be what the model said. */
	pthread_mutex_lock(&s->lock);
	if (s->calls < s->exp_min ||
	    (!mms[i].monitored && s->calls > s->exp_max))
		FAIL("removed notifier had %lu callbacks, expected %lu..%lu",
		     s->calls, s->exp_min, s->exp_max);
	if (s->releases > 1)
		FAIL("%lu RELEASEs", s->releases);
	pthread_mutex_unlock(&s->lock);
	subs[k] = NULL;
	free_sub(s);
	mms[i].nsubs--;
	mm_forget_if_unused(i);
}

static void op_remove(void)
{
	uint8_t k = u8();
	int slot = k % NSUB;

	if (k & 0x80) {
		EXPECT("remove(NULL)", uhmm_interval_notifier_remove(NULL),
		       -EINVAL);
		return;
	}
	if (!subs[slot] || !remove_ok(subs[slot]))
		return;
	do_remove(slot);
}

static struct fsub *pick_sub(void)
{
	int k = u8() % NSUB;

	for (int n = 0; n < NSUB; n++, k = (k + 1) % NSUB)
		if (subs[k])
			return subs[k];
	return NULL;
}

static void op_arm(void)
{
	struct fsub *s = pick_sub();
	struct fmm *m;
	int ret;

	if (!s) {
		EXPECT("arm(NULL)", uhmm_interval_notifier_arm(NULL), -EINVAL);
		return;
	}
	m = &mms[s->mmi];
	ret = uhmm_interval_notifier_arm(&s->sub);
	TRACE("arm [%#lx, %#lx]: %d\n", s->start, s->last, ret);
	if (!m->monitored)
		EXPECT("arm", ret, 0);
	else
		check_arm_error("arm", ret, s->start, s->last, false);
}

/* ------------------------------------------------------------------ */
/* The collision-retry protocol */

static void read_begin(struct fsub *s, bool timed, unsigned int ms)
{
	bool maybe, blocked = model_blocked(s, &maybe);
	unsigned long seq = 0, c0, c1;
	int ret;

	c0 = sub_setseqs(s);
	if (!timed) {
		seq = uhmm_interval_read_begin(&s->sub);
		ret = 0;
	} else {
		ret = uhmm_interval_read_begin_timeout(&s->sub, ms, &seq);
		if (blocked)
			EXPECT("read_begin_timeout (blocked)", ret, -ETIMEDOUT);
		else if (maybe || loose(&mms[s->mmi]))
			/* Monitored: a kernel window may hold it too. */
			EXPECT("read_begin_timeout", ret, 0, -ETIMEDOUT);
		else
			EXPECT("read_begin_timeout", ret, 0);
	}
	c1 = sub_setseqs(s);
	if (ret)
		return;
	if (!(seq & 1))
		FAIL("read_begin returned an even seq %lu", seq);
	s->have_seq = true;
	s->seq = seq;
	s->c0 = c0;
	s->seq_exact = c0 == c1;
	s->surely_linked = true;
}

/* May read_begin() on s block on a window of ours? */
static bool may_block(const struct fsub *s)
{
	return mms[s->mmi].nwin > 0;
}

static void op_read_begin(void)
{
	uint8_t k = u8();
	struct fsub *s = pick_sub();
	unsigned long seq;

	if (!s) {
		EXPECT("read_begin_timeout(NULL)",
		       uhmm_interval_read_begin_timeout(NULL, 1, &seq),
		       -EINVAL);
		return;
	}
	if (k & 0x80) {
		EXPECT("read_begin_timeout(NULL seq)",
		       uhmm_interval_read_begin_timeout(&s->sub, 1, NULL),
		       -EINVAL);
		return;
	}
	if (may_block(s))
		read_begin(s, true, 1 + (k & 3));
	else if (k & 1)
		read_begin(s, true, (k & 2) ? 0 : 60000);
	else
		read_begin(s, false, 0);
}

/* Under the device lock: read_retry must say whether set_seq ran. */
static void check_retry(struct fsub *s, unsigned long seq, bool fresh)
{
	bool retry, check;
	unsigned long n;

	pthread_mutex_lock(&s->lock);
	retry = uhmm_interval_read_retry(&s->sub, seq);
	check = uhmm_interval_check_retry(&s->sub, seq);
	n = s->setseqs;
	pthread_mutex_unlock(&s->lock);
	if (retry != check)
		FAIL("read_retry %d, check_retry %d under the lock", retry,
		     check);
	if (!fresh)
		return;
	if (n == s->c0 && retry)
		FAIL("read_retry true with no callback since read_begin");
	if (n != s->c0 && !retry && s->seq_exact)
		FAIL("read_retry false after %lu callbacks set the seq",
		     n - s->c0);
}

static void op_read_retry(void)
{
	uint8_t k = u8();
	struct fsub *s = pick_sub();

	if (!s)
		return;
	if (s->have_seq && !(k & 1))
		check_retry(s, s->seq, true);
	else
		check_retry(s, (unsigned long)u64(), false);
}

/* ------------------------------------------------------------------ */
/* Invalidation */

static enum uhmm_event gen_event(bool *valid)
{
	uint8_t e = u8();

	*valid = true;
	switch (e % 16) {
	case 0: *valid = false; return (enum uhmm_event)0;
	case 1: *valid = false; return UHMM_EVENT_RELEASE;
	case 2: *valid = false; return (enum uhmm_event)(6 + u8());
	default: return (enum uhmm_event)(UHMM_EVENT_UNMAP + e % 4);
	}
}

/* uhmm_mm_invalidate(mm i, start, end, event), checked. */
static void invalidate(int i, unsigned long start, unsigned long end,
		       enum uhmm_event event, bool valid)
{
	struct fmm *m = &mms[i];
	bool bug, bug_maybe;
	int ret;

	if (!valid || end <= start) {
		EXPECT("uhmm_mm_invalidate(bad)",
		       uhmm_mm_invalidate(m->mm, start, end, event), -EINVAL);
		return;
	}
	if (m->closed && !m->monitored) {
		EXPECT("uhmm_mm_invalidate(closed)",
		       uhmm_mm_invalidate(m->mm, start, end, event), -ESRCH);
		return;
	}
	m->nwin++;
	model_window_open(i, start, end, true, &bug, &bug_maybe);
	push_window(m->mm, start, end, event, UHMM_RANGE_BLOCKABLE);
	depth++;
	ret = uhmm_mm_invalidate(m->mm, start, end, event);
	TRACE("invalidate mm%d [%#lx, %#lx) event %d: %d\n", i, start, end,
	      (int)event, ret);
	depth--;
	wdepth--;
	m->nwin--;
	model_windows_closed(i);
	if (m->closed)	/* monitored: the dispatcher may hold the last */
		EXPECT("uhmm_mm_invalidate(closed)", ret, 0, -EPROTO, -ESRCH);
	else if (bug)
		EXPECT("uhmm_mm_invalidate", ret, -EPROTO);
	else if (bug_maybe)
		EXPECT("uhmm_mm_invalidate", ret, 0, -EPROTO);
	else
		EXPECT("uhmm_mm_invalidate", ret, 0);
}

static void op_invalidate(void)
{
	int i = u8() % NMM;
	unsigned long start, len;
	enum uhmm_event event;
	bool valid;

	gen_range(&start, &len);
	event = gen_event(&valid);
	if (!mm_alive(i)) {
		EXPECT("uhmm_mm_invalidate(NULL)",
		       uhmm_mm_invalidate(NULL, start, start + len, event),
		       -EINVAL);
		return;
	}
	invalidate(i, start, start + len, event, valid);
}

static void op_inv_start(void)
{
	uint8_t k = u8();
	struct fwin *w = &wins[k % NWIN];
	int i = u8() % NMM, ret;
	unsigned long start, len;
	enum uhmm_event event;
	bool valid, blockable, bug, bug_maybe;
	struct fmm *m = &mms[i];
	struct uhmm_notifier_range r;

	gen_range(&start, &len);
	event = gen_event(&valid);
	if (w->open) {
		/* Already an open window: refused whatever the mm. */
		if (mm_alive(i))
			EXPECT("invalidate_start(open range)",
			       uhmm_mm_invalidate_start(m->mm, &w->r), -EINVAL);
		return;
	}
	if (!mm_alive(i)) {
		EXPECT("invalidate_start(NULL mm)",
		       uhmm_mm_invalidate_start(NULL, &w->r), -EINVAL);
		return;
	}
	memset(&r, 0, sizeof(r));
	r.start = start;
	r.end = start + len;
	r.event = event;
	r.flags = (k & 0x10) ? UHMM_RANGE_BLOCKABLE : 0;
	if (k & 0x20) {
		r.flags |= 1u << (1 + u8() % 31);
		valid = false;
	}
	if (k & 0x40) {
		EXPECT("invalidate_start(NULL range)",
		       uhmm_mm_invalidate_start(m->mm, NULL), -EINVAL);
	}
	if (!valid || r.end <= r.start) {
		w->r = r;
		EXPECT("invalidate_start(bad)",
		       uhmm_mm_invalidate_start(m->mm, &w->r), -EINVAL);
		return;
	}
	if (m->closed && !m->monitored) {
		w->r = r;
		EXPECT("invalidate_start(closed)",
		       uhmm_mm_invalidate_start(m->mm, &w->r), -ESRCH);
		return;
	}
	/*
	 * Known bug: after our last close, the dispatcher may still hold a
	 * user (a REMOVE window does, for a while), so the window opens;
	 * the RELEASE then runs on the dispatcher and waits for it, and
	 * any wait of ours for the dispatcher (sync, read_begin, a get)
	 * never returns (known/api/release-on-dispatcher-waits-for-own-
	 * window, known/release-on-dispatcher.c).
	 */
	if (m->closed && !known_bugs)
		return;
	blockable = r.flags & UHMM_RANGE_BLOCKABLE;
	w->r = r;
	m->nwin++;
	ret = model_window_open(i, r.start, r.end, blockable, &bug, &bug_maybe);
	push_window(m->mm, r.start, r.end, r.event, r.flags);
	depth++;
	{
		int got = uhmm_mm_invalidate_start(m->mm, &w->r);

		TRACE("invalidate_start win%d mm%d [%#lx, %#lx) flags %#x: %d\n",
		      (int)(w - wins), i, r.start, r.end, r.flags, got);
		depth--;
		wdepth--;
		if (m->closed) {
			EXPECT("invalidate_start(closed)", got, 0, -EAGAIN,
			       -ESRCH);
		} else if (ret == -EAGAIN && !loose(m)) {
			EXPECT("invalidate_start(refused)", got, -EAGAIN);
		} else if (loose(m) && !blockable) {
			EXPECT("invalidate_start", got, 0, -EAGAIN);
		} else {
			EXPECT("invalidate_start", got, 0);
		}
		ret = got;
	}
	if (ret) {
		/* Closed again (-EAGAIN), or never opened (-ESRCH). */
		m->nwin--;
		model_windows_closed(i);
		if (w->r.private_ != 0)
			FAIL("refused window still marked open");
		return;
	}
	w->open = true;
	w->mmi = i;
	w->bug = bug;
	w->bug_maybe = bug_maybe;
	if (w->r.mm != m->mm)
		FAIL("invalidate_start did not set range->mm");
}

static void end_window(struct fwin *w)
{
	struct fmm *m = &mms[w->mmi];
	int ret = uhmm_mm_invalidate_end(m->mm, &w->r);

	w->open = false;
	m->nwin--;
	model_windows_closed(w->mmi);
	if (w->bug)
		EXPECT("invalidate_end", ret, -EPROTO);
	else if (w->bug_maybe)
		EXPECT("invalidate_end", ret, 0, -EPROTO);
	else
		EXPECT("invalidate_end", ret, 0);
	EXPECT("invalidate_end(twice)", uhmm_mm_invalidate_end(m->mm, &w->r),
	       -EINVAL);
}

static void op_inv_end(void)
{
	uint8_t k = u8();
	struct fwin *w = &wins[k % NWIN];
	int i = u8() % NMM;

	if (k & 0x80) {
		EXPECT("invalidate_end(NULL range)",
		       uhmm_mm_invalidate_end(mm_alive(i) ? mms[i].mm : NULL,
					      NULL), -EINVAL);
		if (w->open)
			EXPECT("invalidate_end(NULL mm)",
			       uhmm_mm_invalidate_end(NULL, &w->r), -EINVAL);
		return;
	}
	if (!w->open) {
		struct uhmm_notifier_range r;

		memset(&r, 0, sizeof(r));
		if (mm_alive(i))
			EXPECT("invalidate_end(never opened)",
			       uhmm_mm_invalidate_end(mms[i].mm, &r), -EINVAL);
		return;
	}
	if ((k & 0x40) && mm_alive(i) && i != w->mmi) {
		EXPECT("invalidate_end(other mm)",
		       uhmm_mm_invalidate_end(mms[i].mm, &w->r), -EINVAL);
		return;
	}
	end_window(w);
}

/* ------------------------------------------------------------------ */
/* Range fault */

static uint64_t gen_req(void)
{
	static const uint64_t reqs[] = {
		0, UHMM_PFN_REQ_FAULT, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE,
		UHMM_PFN_REQ_WRITE,
	};
	uint8_t k = u8();

	return reqs[k % 4] | ((k & 0x80) ? (uint64_t)u64() & ~(UHMM_PFN_VALID |
						UHMM_PFN_WRITE) : 0);
}

static void range_fault(bool lock)
{
	uint8_t k = u8();
	struct fsub *s = pick_sub();
	struct uhmm_range range;
	unsigned long npages, start, end, first;
	uint64_t *pfns, *req;
	bool bad = false, fresh, e_fault = false, e_perm = false;
	bool arena_only;
	int ret;

	memset(&range, 0, sizeof(range));
	if (!s) {
		EXPECT("range_fault(NULL)", uhmm_range_fault(NULL), -EINVAL);
		return;
	}
	/* The range: pages from the notifier's start, or from the arena,
	 * sometimes bent out of shape. */
	npages = 1 + u8() % MAX_FAULT_PAGES;
	if (k & 1)
		first = (s->start + P - 1) & ~(P - 1);
	else
		first = A + (unsigned long)((long)(u8() % (ARENA_PAGES + 2)) -
					    1) * P;
	first += (unsigned long)(u8() % 4) * P;
	start = first;
	end = start + npages * P;
	if (end < start)
		return;		/* wrapped: nothing to ask */
	switch ((k >> 1) & 7) {
	case 0: start += 1 + u8() % (P - 1); bad = true; break;
	case 1: end -= 1 + u8() % (P - 1); bad = true; break;
	default: break;
	}
	pfns = calloc(npages, sizeof(*pfns));
	req = calloc(npages, sizeof(*req));
	ASSERT(pfns && req);
	for (unsigned long p = 0; p < npages; p++)
		pfns[p] = req[p] = gen_req();
	range.notifier = &s->sub;
	range.start = start;
	range.end = end;
	range.pfns = pfns;
	range.default_flags = (k & 0x10) ? gen_req() & (UHMM_PFN_REQ_FAULT |
							UHMM_PFN_REQ_WRITE) : 0;
	range.pfn_flags_mask = (k & 0x20) ? ~0ULL :
			       (k & 0x40) ? UHMM_PFN_REQ_FAULT : 0;
	range.flags = (k & 0x80) ? UHMM_RANGE_PFN : 0;
	if (u8() == 0xff) {
		range.flags |= 1u << (1 + u8() % 31);
		bad = true;
	}
	if (start < s->start || end - 1 > s->last)
		bad = true;
	fresh = s->have_seq;
	range.notifier_seq = fresh ? s->seq : (unsigned long)u64();

	/* What the requests ask of the arena. */
	arena_only = in_arena(start & ~(P - 1), end - 1);
	for (unsigned long p = 0; p < npages && !bad; p++) {
		uint64_t r = ((req[p] & range.pfn_flags_mask) |
			      range.default_flags) &
			     (UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE);
		unsigned long a = start + p * P;
		enum kind kd;

		if (!arena_only || !(r & UHMM_PFN_REQ_FAULT))
			continue;
		kd = kind[(a - A) / P];
		if (!readable(kd))
			e_fault = true;
		else if ((r & UHMM_PFN_REQ_WRITE) && !writable(kd))
			e_perm = true;
	}

	if (lock) {
		unsigned int ms = may_block(s) ? 1 + (k & 7) : 0;

		ret = uhmm_range_fault_lock(&range, &s->lock, ms);
		if (!ret) {
			s->c0 = s->setseqs;	/* the lock held: exact */
			pthread_mutex_unlock(&s->lock);
			s->have_seq = true;
			s->seq = range.notifier_seq;
			s->seq_exact = true;
			fresh = true;
			s->surely_linked = true;
		}
	} else {
		ret = uhmm_range_fault(&range);
	}

	TRACE("range_fault%s [%#lx, %#lx) default %#llx mask %#llx flags %#x: "
	      "%d\n", lock ? "_lock" : "", start, end,
	      (unsigned long long)range.default_flags,
	      (unsigned long long)range.pfn_flags_mask, range.flags, ret);
	for (unsigned long p = 0; p < npages && tracing; p++) {
		unsigned long a = start + p * P;

		TRACE("  page %#lx kind %d req %#llx out %#llx\n", a,
		      a >= A && a < arena_end() ? (int)kind[(a - A) / P] : -1,
		      (unsigned long long)req[p], (unsigned long long)pfns[p]);
	}
	if (bad) {
		/* The lock variant waits (read_begin) before it looks, and
		 * copies the requests before that (-ENOMEM). */
		if (lock && (may_block(s) || alloc_fail))
			EXPECT("range_fault_lock(bad range)", ret, -EINVAL,
			       -ETIMEDOUT, -ENOMEM);
		else
			EXPECT("range_fault(bad range)", ret, -EINVAL);
		goto out;
	}
	/* Errors the situation allows. */
	if (ret == -EBUSY) {
		bool collided = !fresh || !s->seq_exact ||
				sub_setseqs(s) != s->c0;

		if (lock)
			FAIL("range_fault_lock returned -EBUSY");
		if (!collided && (!mms[s->mmi].monitored || arena_only))
			FAIL("range_fault -EBUSY without a collision");
		goto out;
	}
	if (ret == -ETIMEDOUT) {
		if (!lock || !may_block(s))
			FAIL("range_fault%s -ETIMEDOUT", lock ? "_lock" : "");
		goto out;
	}
	if (arena_only) {
		/* Holes and PROT_NONE before anything else, in address
		 * order: either answer may come first. */
		if (ret == -ENOMEM)
			goto out;
		if (e_fault || e_perm) {
			if (!(ret == -EFAULT && e_fault) &&
			    !(ret == -EPERM && e_perm) &&
			    !(ret == -EPERM && mms[s->mmi].monitored &&
			      range_has_kind(start, end - 1, K_SHM_RO)))
				FAIL("range_fault returned %d, expected -EFAULT "
				     "(%d) or -EPERM (%d)", ret, e_fault,
				     e_perm);
			goto out;
		}
		/* Arming a read-only shared mapping that appeared in the
		 * range after insert: -EPERM, which the header documents
		 * only for write requests (the same gap as for arm()). */
		if (ret == -EPERM && mms[s->mmi].monitored &&
		    range_has_kind(start, end - 1, K_SHM_RO))
			goto out;
		EXPECT("range_fault", ret, 0);
	} else {
		EXPECT("range_fault", ret, 0, -EFAULT, -EPERM, -ENOMEM,
		       -EOPNOTSUPP);
		if (ret)
			goto out;
	}

	/* Every output page against the request and the arena. */
	for (unsigned long p = 0; p < npages; p++) {
		uint64_t o = pfns[p];
		uint64_t r = ((req[p] & range.pfn_flags_mask) |
			      range.default_flags) &
			     (UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE);
		unsigned long a = start + p * P;

		if ((o & UHMM_PFN_WRITE) && !(o & UHMM_PFN_VALID))
			FAIL("page %#lx: WRITE without VALID (%#llx)", a,
			     (unsigned long long)o);
		if ((o & UHMM_PFN_ERROR) && (o & UHMM_PFN_VALID))
			FAIL("page %#lx: ERROR and VALID (%#llx)", a,
			     (unsigned long long)o);
		if ((r & UHMM_PFN_REQ_FAULT) && !(o & UHMM_PFN_VALID))
			FAIL("page %#lx: requested a fault, not VALID (%#llx)",
			     a, (unsigned long long)o);
		if (r == (UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE) &&
		    !(o & UHMM_PFN_WRITE))
			FAIL("page %#lx: requested a write fault, not WRITE "
			     "(%#llx)", a, (unsigned long long)o);
		if (!(range.flags & UHMM_RANGE_PFN) && (o & UHMM_PFN_PFN_MASK))
			FAIL("page %#lx: a PFN without UHMM_RANGE_PFN (%#llx)",
			     a, (unsigned long long)o);
		if ((o & ~(UHMM_PFN_VALID | UHMM_PFN_WRITE | UHMM_PFN_ERROR |
			   UHMM_PFN_ORDER_MASK | UHMM_PFN_PFN_MASK)))
			FAIL("page %#lx: unknown bits (%#llx)", a,
			     (unsigned long long)o);
		if (a >= A && a < arena_end()) {
			enum kind kd = kind[(a - A) / P];

			if (!readable(kd) && o != UHMM_PFN_ERROR)
				FAIL("page %#lx (kind %d): %#llx, expected "
				     "ERROR", a, kd, (unsigned long long)o);
			if (readable(kd) && (o & UHMM_PFN_ERROR))
				FAIL("page %#lx (kind %d): ERROR", a, kd);
			if (!writable(kd) && (o & UHMM_PFN_WRITE))
				FAIL("page %#lx (kind %d): WRITE", a, kd);
			if (uhmm_pfn_to_map_order(o))
				FAIL("page %#lx: order %u", a,
				     uhmm_pfn_to_map_order(o));
		}
	}
out:
	free(pfns);
	free(req);
}

static void op_range_fault(void)
{
	range_fault(false);
}

static void op_range_fault_lock(void)
{
	range_fault(true);
}

/* ------------------------------------------------------------------ */
/* The arena: real memory changes */

/* Report [p, p + n) pages as changing to every mm without monitor that
 * has users (as an allocator does before it unmaps). */
static void report(int p, int n, enum uhmm_event event)
{
	for (int i = 0; i < NMM; i++) {
		if (!mms[i].mm || mms[i].monitored || !mm_has_users(i))
			continue;
		invalidate(i, A + (unsigned long)p * P,
			   A + (unsigned long)(p + n) * P, event, true);
	}
}

/* Pages [p, p + n) changed (their old contents are gone for a device). */
static void changed(int p, int n, bool reported)
{
	for (int q = p; q < p + n; q++) {
		gen[q] = ++gclock;
		for (int i = 0; i < NMM; i++) {
			if (!mms[i].mm)
				continue;
			if (mms[i].monitored || reported)
				mms[i].reported[q] = gen[q];
		}
	}
}

static bool all_kind(int p, int n, bool (*pred)(enum kind))
{
	for (int q = p; q < p + n; q++)
		if (!pred(kind[q]))
			return false;
	return true;
}

static bool is_hole(enum kind k)
{
	return k == K_HOLE;
}

static bool is_mapped(enum kind k)
{
	return k != K_HOLE;
}

static bool any_mapped(int p, int n)
{
	for (int q = p; q < p + n; q++)
		if (kind[q] != K_HOLE)
			return true;
	return false;
}


static void *arena_mmap(void *a, size_t len, int prot, int flags, int fd,
			off_t off)
{
	return via_uhmm ? uhmm_mmap(a, len, prot, flags, fd, off)
			: mmap(a, len, prot, flags, fd, off);
}

static int arena_munmap(void *a, size_t len)
{
	return via_uhmm ? uhmm_munmap(a, len) : munmap(a, len);
}

static int arena_madvise(void *a, size_t len, int advice)
{
	return via_uhmm ? uhmm_madvise(a, len, advice)
			: madvise(a, len, advice);
}

static void *arena_mremap(void *a, size_t len, size_t new_len, int flags,
			  void *to)
{
	return via_uhmm ? uhmm_mremap(a, len, new_len, flags, to)
			: mremap(a, len, new_len, flags, to);
}

static int arena_mprotect(void *a, size_t len, int prot)
{
	return via_uhmm ? uhmm_mprotect(a, len, prot) : mprotect(a, len, prot);
}

static void *map_kind(int p, int n, enum kind kd, bool noreplace)
{
	unsigned long addr = A + (unsigned long)p * P, len = (unsigned long)n * P;
	int flags = noreplace ? MAP_FIXED_NOREPLACE : MAP_FIXED;
	int prot, fd = -1;

	switch (kd) {
	case K_ANON_RW: prot = PROT_READ | PROT_WRITE; break;
	case K_ANON_RO: prot = PROT_READ; break;
	case K_ANON_NONE: prot = PROT_NONE; break;
	case K_SHM_RW: prot = PROT_READ | PROT_WRITE; fd = memfd; break;
	case K_SHM_RO: prot = PROT_READ; fd = memfd_ro; break;
	default: prot = PROT_READ | PROT_WRITE; fd = memfd; break;
	}
	if (fd < 0)
		flags |= MAP_PRIVATE | MAP_ANONYMOUS;
	else
		flags |= kd == K_FILE_PRIV ? MAP_PRIVATE : MAP_SHARED;
	return arena_mmap((void *)addr, len, prot, flags, fd,
			  fd < 0 ? 0 : (off_t)((unsigned long)p * P));
}

/* Mem op arguments: pages [p, p + n) of the arena. */
static void gen_pages(int *p, int *n)
{
	*p = u8() % ARENA_PAGES;
	*n = 1 + u8() % 3;
	if (*p + *n > ARENA_PAGES)
		*n = ARENA_PAGES - *p;
}

static bool mem_mmap(int p, int n, enum kind kd, bool rep)
{
	bool hole = all_kind(p, n, is_hole);
	void *addr;

	/* A hole too: a region of a mm without monitor may cover it. */
	if (rep)
		report(p, n, UHMM_EVENT_UNMAP);
	addr = map_kind(p, n, kd, hole);
	TRACE("mmap pages %d+%d kind %d\n", p, n, kd);
	if (addr == MAP_FAILED)
		FAIL("mmap of arena pages %d+%d (kind %d): %s", p, n, kd,
		     strerror(errno));
	ASSERT((unsigned long)addr == A + (unsigned long)p * P);
	for (int q = p; q < p + n; q++)
		kind[q] = kd;
	changed(p, n, rep);
	return true;
}

static bool mem_munmap(int p, int n, bool rep)
{
	if (!any_mapped(p, n))
		return false;
	if (rep)
		report(p, n, UHMM_EVENT_UNMAP);
	if (arena_munmap((void *)(A + (unsigned long)p * P),
			 (unsigned long)n * P))
		FAIL("munmap: %s", strerror(errno));
	for (int q = p; q < p + n; q++)
		kind[q] = K_HOLE;
	changed(p, n, rep);
	return true;
}

static bool mem_dontneed(int p, int n, bool rep)
{
	if (!all_kind(p, n, is_mapped))
		return false;
	if (rep)
		report(p, n, UHMM_EVENT_CLEAR);
	if (arena_madvise((void *)(A + (unsigned long)p * P),
			  (unsigned long)n * P, MADV_DONTNEED))
		FAIL("madvise(DONTNEED) of kinds %d..: %s", kind[p],
		     strerror(errno));
	changed(p, n, rep);
	return true;
}

/* Move page p to page q (q may be mapped: it is replaced). */
static bool mem_mremap(int p, int q, bool rep)
{
	void *to;

	if (p == q || kind[p] == K_HOLE)
		return false;
	if (rep) {
		report(p, 1, UHMM_EVENT_REMAP);
		if (kind[q] != K_HOLE)
			report(q, 1, UHMM_EVENT_UNMAP);
	}
	to = arena_mremap((void *)(A + (unsigned long)p * P), P, P,
			  MREMAP_MAYMOVE | MREMAP_FIXED,
			  (void *)(A + (unsigned long)q * P));
	if (to == MAP_FAILED)
		FAIL("mremap page %d -> %d (kind %d): %s", p, q, kind[p],
		     strerror(errno));
	kind[q] = kind[p];
	kind[p] = K_HOLE;
	changed(p, 1, rep);
	changed(q, 1, rep);
	return true;
}

static void mem_touch(int p, int n)
{
	for (int q = p; q < p + n; q++) {
		volatile char *c = (volatile char *)(A + (unsigned long)q * P);

		if (writable(kind[q]))
			*c = (char)(*c + 1);
		else if (readable(kind[q]))
			(void)*c;
	}
}

static void mem_mprotect(int p, int n, enum kind to)
{
	int prot = to == K_ANON_RW ? PROT_READ | PROT_WRITE :
		   to == K_ANON_RO ? PROT_READ : PROT_NONE;

	if (!all_kind(p, n, is_anon))
		return;
	if (arena_mprotect((void *)(A + (unsigned long)p * P),
			   (unsigned long)n * P, prot))
		FAIL("mprotect: %s", strerror(errno));
	for (int q = p; q < p + n; q++)
		kind[q] = to;
}

static void op_mem(void)
{
	uint8_t k = u8();
	bool rep = k & 0x80;
	int p, n;

	gen_pages(&p, &n);
	if (in_mem_op)
		return;
	via_uhmm = k & 0x40;
	TRACE("mem op %d pages %d+%d%s%s\n", k % 8, p, n,
	      rep ? " reported" : "", via_uhmm ? " via uhmm_*()" : "");
	in_mem_op = true;
	switch (k % 8) {
	case 0:
	case 1:
		mem_mmap(p, n, (enum kind)(1 + u8() % (K_NKINDS - 1)), rep);
		break;
	case 2:
		mem_munmap(p, n, rep);
		break;
	case 3:
		mem_dontneed(p, n, rep);
		break;
	case 4:
		mem_mremap(p, u8() % ARENA_PAGES, rep);
		break;
	case 5:
		mem_mprotect(p, n, (enum kind)(K_ANON_RW + u8() % 3));
		break;
	default:
		mem_touch(p, n);
		break;
	}
	in_mem_op = false;
	via_uhmm = false;
}

/*
 * Happens-before: once an munmap (mremap, MAP_FIXED, MADV_DONTNEED) of a
 * watched page has returned, a read_begin() that starts afterwards sees
 * its invalidation.
 */
static void op_happens_before(void)
{
	uint8_t k = u8();
	struct fsub *s = pick_sub();
	unsigned long seq, c1;
	int f, l, p, ret;
	bool done = false;

	if (!s || !mms[s->mmi].monitored || !mm_has_users(s->mmi) ||
	    mms[s->mmi].nwin || (s->mode & MODE_REFUSE_ALL) ||
	    !arena_pages(s->start, s->last, &f, &l))
		return;
	p = f + (int)(u8() % (unsigned int)(l - f + 1));
	if (kind[p] == K_HOLE)
		return;
	ret = uhmm_interval_notifier_arm(&s->sub);
	check_arm_error("arm", ret, s->start, s->last, false);
	if (ret)
		return;
	read_begin(s, false, 0);
	seq = s->seq;
	c1 = sub_setseqs(s);
	switch (k % 4) {
	case 0: done = mem_munmap(p, 1, false); break;
	case 1: done = mem_dontneed(p, 1, false); break;
	case 2: done = mem_mmap(p, 1, (enum kind)(1 + u8() % (K_NKINDS - 1)),
				false); break;
	default: done = mem_mremap(p, u8() % ARENA_PAGES, false); break;
	}
	TRACE("happens-before: page %d op %d: %d\n", p, k % 4, done);
	if (!done)
		return;
	(void)uhmm_interval_read_begin(&s->sub);
	pthread_mutex_lock(&s->lock);
	if (!uhmm_interval_read_retry(&s->sub, seq) || s->setseqs == c1)
		FAIL("page %d (op %d) changed under notifier [%#lx, %#lx] "
		     "after arm and read_begin, and the next read_begin did "
		     "not see it (%lu callbacks)", p, k % 4, s->start, s->last,
		     s->setseqs - c1);
	pthread_mutex_unlock(&s->lock);
	s->have_seq = false;
}

/* ------------------------------------------------------------------ */
/* fork() */

void __sanitizer_print_stack_trace(void);

/* A child stuck for 10 s says where, then dies (the parent reports). */
static void child_alarm(int sig)
{
	static const char msg[] = "fuzz-api: fork child stuck for 10 s, in:\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(4);
	__sanitizer_print_stack_trace();
	_exit(3);
}

/*
 * Registered before uhmm's own handlers (a constructor that runs first;
 * child handlers run in the order registered), so the alarm covers
 * uhmm's child handler too.
 */
static void child_arm_alarm(void)
{
	if (!in_fork)
		return;
	signal(SIGALRM, child_alarm);
	alarm(10);
}

__attribute__((constructor(101))) static void fuzz_atfork(void)
{
	pthread_atfork(NULL, NULL, child_arm_alarm);
}

/* In the child: every call on an inherited mm is refused with -ECHILD,
 * after one RELEASE to its notifiers; remove still works. */
static void child_checks(void)
{
	unsigned long seq;

	in_child = true;
	for (int i = 0; i < NMM; i++) {
		struct fmm *m = &mms[i];
		struct uhmm_interval_notifier dummy;

		if (!m->mm)
			continue;
		memset(&dummy, 0, sizeof(dummy));
		EXPECT("child: get", uhmm_mm_get(m->mm), -ECHILD);
		EXPECT("child: close", uhmm_mm_close(m->mm), -ECHILD);
		EXPECT("child: sync", uhmm_mm_sync(m->mm), -ECHILD);
		EXPECT("child: invalidate",
		       uhmm_mm_invalidate(m->mm, A, A + P, UHMM_EVENT_UNMAP),
		       -ECHILD);
		EXPECT("child: insert",
		       uhmm_interval_notifier_insert(&dummy, m->mm, A, P,
						     &fuzz_ops), -ECHILD);
	}
	for (int c = 0; c < NRC; c++) {
		struct uhmm_region *r;

		if (rcs[c].rc)
			EXPECT("child: rcache_get",
			       uhmm_rcache_get(rcs[c].rc, (void *)A, P,
					       UHMM_ACCESS_READ, &r), -ECHILD);
	}
	for (int k = 0; k < NSUB; k++) {
		struct fsub *s = subs[k];
		struct uhmm_range range;
		uint64_t pfn = 0;

		if (!s)
			continue;
		memset(&range, 0, sizeof(range));
		range.notifier = &s->sub;
		range.start = (s->start + P - 1) & ~(P - 1);
		range.end = range.start + P;
		range.pfns = &pfn;
		/* Never waits in the child. */
		EXPECT("child: read_begin_timeout",
		       uhmm_interval_read_begin_timeout(&s->sub, 1000, &seq), 0);
		EXPECT("child: arm", uhmm_interval_notifier_arm(&s->sub),
		       -ECHILD);
		if (range.start >= s->start && range.end - 1 <= s->last &&
		    range.end > range.start)
			EXPECT("child: range_fault", uhmm_range_fault(&range),
			       -ECHILD);
		pthread_mutex_lock(&s->lock);
		if (s->releases != 1)
			FAIL("child: notifier [%#lx, %#lx] had %lu RELEASEs",
			     s->start, s->last, s->releases);
		pthread_mutex_unlock(&s->lock);
		EXPECT("child: remove", uhmm_interval_notifier_remove(&s->sub),
		       0);
	}
	/* Passed: say so, then go (the exit itself may be slow). */
	if (write(child_pipe, "", 1) != 1)
		_exit(1);
	_exit(0);
}

/*
 * Children that said they passed but may still be exiting: an exit of a
 * process the size of an ASan one was seen to take over 20 s on a loaded
 * machine (in exit_mmap(), runnable, hardly any CPU), so they are reaped
 * later rather than waited for.
 */
static pid_t exiting[64];
static int nexiting;

static void reap_children(bool all)
{
	for (int i = 0; i < nexiting;) {
		int status;
		pid_t r = waitpid(exiting[i], &status, all ? 0 : WNOHANG);

		if (r == 0) {
			i++;
			continue;
		}
		ASSERT(r == exiting[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			FAIL("a fork child exited with status %#x", status);
		exiting[i] = exiting[--nexiting];
	}
}

/* The child's progress so far: faults plus CPU ticks (0 if unknown);
 * *runnable: it waits for a CPU (state R). */
static unsigned long child_progress(pid_t pid, bool *runnable)
{
	char path[64], buf[1024], *p, state = '?';
	unsigned long minflt = 0, utime = 0, stime = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* After the command name: state ppid pgrp session tty tpgid flags
	 * minflt cminflt majflt cmajflt utime stime */
	*runnable = false;
	if (!p || !(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %lu %*u %*u %*u %lu %lu",
		   &state, &minflt, &utime, &stime) != 4)
		return 0;
	*runnable = state == 'R';
	return minflt + utime + stime;
}

static void op_fork(void)
{
	int status = 0, pipefd[2];
	struct pollfd pf;
	char verdict = 1;
	pid_t pid;

	/* A fork costs milliseconds here (ASan's address space): rare. */
	if (u8() != 0x5f)
		return;
	/* Not with windows of ours open (the windows of fork() would
	 * then be held up by them: legal, but the model gives up). */
	for (int i = 0; i < NMM; i++)
		if (mms[i].nwin)
			return;
	if (nexiting == (int)(sizeof(exiting) / sizeof(exiting[0])))
		reap_children(true);
	/* fork()'s windows hit notifiers any number of times. */
	for (int k = 0; k < NSUB; k++)
		if (subs[k])
			subs[k]->exp_max = ULONG_MAX / 2;
	/*
	 * Quiesce uhmm's dispatcher first: it allocates and frees while it
	 * dispatches, and uhmm's child handler frees memory too
	 * (source/fork.c, forget()): with an allocator that is not
	 * fork-safe, a child forked while another thread held the
	 * allocator's lock could spin.
	 */
	if (any_monitored_used) {
		struct uhmm_mm *mm;

		if (uhmm_mm_open(&mm, 0) == 0) {
			EXPECT("uhmm_mm_sync", uhmm_mm_sync(mm), 0);
			EXPECT("uhmm_mm_close", uhmm_mm_close(mm), 0);
		}
	}
	ASSERT(pipe2(pipefd, O_CLOEXEC) == 0);
	fflush(stderr);
	in_fork = true;
	pid = fork();
	if (pid == 0) {
		in_fork = false;
		close(pipefd[0]);
		child_pipe = pipefd[1];
		child_checks();
	}
	in_fork = false;
	ASSERT(pid > 0);
	close(pipefd[1]);
	/* Bounded: a child that hangs is a failure, not a hang. The
	 * child writes its verdict just before _exit(). */
	pf = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
	/* On a loaded machine a child was seen to wait 20 s and more to
	 * be scheduled: wait while it makes progress (libFuzzer's -timeout
	 * bounds that), call it hung after 20 s without any. */
	for (unsigned long last = 0, still = 0; still < 4;) {
		unsigned long now;
		bool runnable;

		if (poll(&pf, 1, 5000))
			break;
		now = child_progress(pid, &runnable);
		still = now == last && !runnable ? still + 1 : 0;
		last = now;
	}
	if (pf.revents && read(pipefd[0], &verdict, 1) != 1) {
		/* Died without a verdict: its failure is printed above. */
		waitpid(pid, &status, 0);
		FAIL("the fork child failed (status %#x)", status);
	}
	if (!pf.revents) {
		/* Where? The kernel stack, then the child's deadly-signal
		 * handler (libFuzzer's, inherited) on SIGABRT. */
		static const char *const files[] = { "stat", "stack" };
		char path[64], buf[256];
		FILE *f;

		for (size_t n = 0; n < sizeof(files) / sizeof(*files); n++) {
			snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid,
				 files[n]);
			if (!(f = fopen(path, "r")))
				continue;
			while (fgets(buf, sizeof(buf), f))
				fprintf(stderr, "fuzz-api: hung child %s: %s",
					files[n], buf);
			fclose(f);
		}
		kill(pid, SIGABRT);
		nanosleep(&(struct timespec){ 2, 0 }, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		FAIL("the fork child hung (20 s) before its verdict");
	}
	close(pipefd[0]);
	TRACE("fork: child %d verdict %d\n", (int)pid, verdict);
	if (verdict)
		FAIL("the fork child failed");
	exiting[nexiting++] = pid;
	reap_children(false);
}

/* ------------------------------------------------------------------ */
/* The registration cache and its device */

static int dev_reg(void *d, void *addr, size_t len, unsigned int access,
		   uint64_t *handle)
{
	struct frc *c = d;
	unsigned long a = (unsigned long)addr;
	struct rec *r;
	int ret = 0, f, l;

	if (!on_main)
		FAIL("reg on another thread");
	pthread_mutex_lock(&dev.lock);
	if (dev.fail_next) {
		ret = dev.fail_next;
		dev.fail_next = 0;
		goto out;
	}
	if (dev.nrec == NREC) {
		ret = -ENOSPC;
		goto out;
	}
	if (!len || a & (P - 1) || len & (P - 1) || !access ||
	    (access & ~(UHMM_ACCESS_READ | UHMM_ACCESS_WRITE)))
		FAIL("reg(%#lx, %zu, %#x)", a, len, access);
	r = &dev.rec[dev.nrec];
	*r = (struct rec){ .addr = a, .len = len, .access = access,
			   .live = true, .rci = c->rci };
	if (arena_pages(a, a + len - 1, &f, &l))
		for (int p = f; p <= l; p++)
			r->gen[p] = gen[p];
	*handle = dev.nrec++;
	dev.live++;
	c->regs++;
out:
	pthread_mutex_unlock(&dev.lock);
	return ret;
}

static void dev_dereg(void *d, uint64_t handle)
{
	struct frc *c = d;

	pthread_mutex_lock(&dev.lock);
	if (handle >= dev.nrec || !dev.rec[handle].live ||
	    dev.rec[handle].rci != c->rci)
		FAIL("dereg of handle %llu: not registered",
		     (unsigned long long)handle);
	dev.rec[handle].live = false;
	dev.live--;
	c->deregs++;
	pthread_mutex_unlock(&dev.lock);
}

static const struct uhmm_rcache_ops dev_ops = { dev_reg, dev_dereg };
static const struct uhmm_rcache_ops dev_ops_noreg = { NULL, dev_dereg };
static const struct uhmm_rcache_ops dev_ops_nodereg = { dev_reg, NULL };

/* The reference taken for a cache is no longer needed: drop it, or,
 * where close may not be called (in a callback, or holding a window),
 * keep it as one of ours, dropped later. */
static void cache_ref_done(int i)
{
	if (wdepth || any_window_open()) {
		mms[i].rc_refs--;
		mms[i].users++;
		return;
	}
	mm_drop(i, true);
}

static void op_rc_create(void)
{
	uint8_t k = u8();
	int c = k % NRC, i = u8() % NMM, ret;
	struct frc *f = &rcs[c];
	struct uhmm_rcache_config cfg = { 0 };
	struct uhmm_rcache *rc;

	cfg.max_regions = u8() % 6;
	cfg.max_bytes = (unsigned long)(u8() % 8) * P;
	/* Strictness: the mm's, or either flag. */
	cfg.flags = (k & 0x30) == 0x10 ? UHMM_RCACHE_STRICT
		    : (k & 0x30) == 0x20 ? UHMM_RCACHE_RELAXED : 0;
	if (k & 0x80) {
		struct uhmm_mm *mm = mm_alive(i) ? mms[i].mm : NULL;
		struct uhmm_rcache_config bad = cfg;

		EXPECT("rcache_create(NULL rcp)",
		       uhmm_rcache_create(NULL, mm, &dev_ops, f, &cfg), -EINVAL);
		EXPECT("rcache_create(NULL mm)",
		       uhmm_rcache_create(&rc, NULL, &dev_ops, f, &cfg),
		       -EINVAL);
		if (mm) {
			EXPECT("rcache_create(NULL ops)",
			       uhmm_rcache_create(&rc, mm, NULL, f, &cfg),
			       -EINVAL);
			EXPECT("rcache_create(no reg)",
			       uhmm_rcache_create(&rc, mm, &dev_ops_noreg, f,
						  &cfg), -EINVAL);
			EXPECT("rcache_create(no dereg)",
			       uhmm_rcache_create(&rc, mm, &dev_ops_nodereg, f,
						  &cfg), -EINVAL);
			bad.flags = 1u << (2 + u8() % 30);
			EXPECT("rcache_create(bad flags)",
			       uhmm_rcache_create(&rc, mm, &dev_ops, f, &bad),
			       -EINVAL);
			bad.flags = UHMM_RCACHE_STRICT | UHMM_RCACHE_RELAXED;
			EXPECT("rcache_create(STRICT | RELAXED)",
			       uhmm_rcache_create(&rc, mm, &dev_ops, f, &bad),
			       -EINVAL);
		}
		return;
	}
	if (f->rc || !mm_has_users(i))
		return;
	/* "mm must stay open until destroy": the cache's own reference. */
	EXPECT("uhmm_mm_get", uhmm_mm_get(mms[i].mm), 0);
	mms[i].rc_refs++;
	memset(f, 0, sizeof(*f));
	f->rci = c;
	f->mmi = i;
	f->max_regions = cfg.max_regions ? cfg.max_regions
					 : UHMM_RCACHE_DEFAULT_REGIONS;
	f->max_bytes = cfg.max_bytes ? cfg.max_bytes : UHMM_RCACHE_DEFAULT_BYTES;
	ret = uhmm_rcache_create(&rc, mms[i].mm, &dev_ops, f,
				 (k & 0x40) ? NULL : &cfg);
	if (k & 0x40) {
		f->max_regions = UHMM_RCACHE_DEFAULT_REGIONS;
		f->max_bytes = UHMM_RCACHE_DEFAULT_BYTES;
	}
	EXPECT("rcache_create", ret, 0, -ENOMEM, -EAGAIN);
	if (ret) {
		cache_ref_done(i);
		return;
	}
	f->rc = rc;
}

static int held_find(struct frc *f, struct uhmm_region *r)
{
	for (int h = 0; h < f->nheld; h++)
		if (f->held[h].r == r)
			return h;
	return -1;
}

/* The limits: after a get that registered, either they hold or every
 * registration is a region we hold. */
static void check_limits(struct frc *f)
{
	unsigned long n = 0, bytes = 0, unheld = 0;

	pthread_mutex_lock(&dev.lock);
	for (unsigned long h = 0; h < dev.nrec; h++) {
		struct rec *r = &dev.rec[h];
		bool held = false;

		if (!r->live || r->rci != f->rci)
			continue;
		n++;
		bytes += r->len;
		for (int j = 0; j < f->nheld; j++)
			if (f->held[j].holds && f->held[j].r->handle == h)
				held = true;
		if (!held)
			unheld++;
	}
	pthread_mutex_unlock(&dev.lock);
	if (unheld && (n > f->max_regions || bytes > f->max_bytes))
		FAIL("cache over its limits (%lu regions, %lu bytes; max %zu, "
		     "%zu) with %lu registrations no one holds", n, bytes,
		     f->max_regions, f->max_bytes, unheld);
}

static void op_rc_get(void)
{
	uint8_t k = u8();
	struct frc *f = &rcs[k % NRC];
	unsigned long start, len, end, regs0;
	unsigned int access = 1 + u8() % 3;
	struct uhmm_region *r = NULL;
	struct fmm *m;
	bool bad = false;
	int ret, h, inj;

	gen_range(&start, &len);
	if (!f->rc) {
		EXPECT("rcache_get(NULL)",
		       uhmm_rcache_get(NULL, (void *)start, len, access, &r),
		       -EINVAL);
		return;
	}
	m = &mms[f->mmi];
	/* A miss waits for windows on its notifiers: none of ours open
	 * (from a callback a miss is refused before it waits). */
	if (m->nwin && !wdepth)
		return;
	if (k & 0x80) {
		switch (u8() % 4) {
		case 0: access = 0; break;
		case 1: access = 1u << (2 + u8() % 30); break;
		case 2: start = 0; break;
		default:
			EXPECT("rcache_get(NULL regionp)",
			       uhmm_rcache_get(f->rc, (void *)start, len,
					       access, NULL), -EINVAL);
			return;
		}
	}
	if (!start || !len || !access || (access & ~3u) ||
	    __builtin_add_overflow(start, len, &end) || end > ~(P - 1))
		bad = true;
	if (u8() == 0x55)
		dev.fail_next = -(int)(1 + u8() % 120);
	inj = dev.fail_next;
	pthread_mutex_lock(&dev.lock);
	regs0 = f->regs;
	pthread_mutex_unlock(&dev.lock);
	ret = uhmm_rcache_get(f->rc, (void *)start, len, access, &r);
	TRACE("rcache_get rc%d [%#lx, +%#lx) %u: %d\n", f->rci, start, len,
	      access, ret);
	if (bad) {
		EXPECT("rcache_get(bad)", ret, -EINVAL);
		dev.fail_next = 0;
		return;
	}
	if (wdepth) {
		/* In a callback: a hit, or the miss refused. */
		dev.fail_next = 0;
		pthread_mutex_lock(&dev.lock);
		if (f->regs != regs0)
			FAIL("rcache_get registered from a callback");
		pthread_mutex_unlock(&dev.lock);
		if (ret) {
			EXPECT("rcache_get(in callback)", ret, -EDEADLK);
			return;
		}
	} else if (inj && !dev.fail_next) {
		/* reg failed as told: get passes its error on. */
		EXPECT("rcache_get(reg failed)", ret, inj);
		return;
	}
	if (ret) {
		dev.fail_next = 0;
		if (m->monitored) {
			if (in_arena(start & ~(P - 1), end - 1) &&
			    !range_has_kind(start, end - 1, K_SHM_RO))
				EXPECT("rcache_get", ret, -EFAULT, -ENOMEM,
				       -ENOSPC);
			else
				EXPECT("rcache_get", ret, -EFAULT, -ENOMEM,
				       -EPERM, -EOPNOTSUPP, -ENOSPC);
		} else {
			EXPECT("rcache_get", ret, -ENOMEM, -ENOSPC);
		}
		return;
	}
	dev.fail_next = 0;
	/* The region covers the request with the access asked for. */
	if ((unsigned long)r->addr > start ||
	    (unsigned long)r->addr + r->len < end || (r->access & access) != access ||
	    ((unsigned long)r->addr & (P - 1)) || (r->len & (P - 1)))
		FAIL("rcache_get(%#lx, %lu, %#x) returned [%p, +%zu) %#x",
		     start, len, access, r->addr, r->len, r->access);
	pthread_mutex_lock(&dev.lock);
	if (r->handle >= dev.nrec || !dev.rec[r->handle].live ||
	    dev.rec[r->handle].rci != f->rci ||
	    dev.rec[r->handle].addr != (unsigned long)r->addr ||
	    dev.rec[r->handle].len != r->len)
		FAIL("rcache_get returned handle %llu, not a registration of "
		     "[%p, +%zu)", (unsigned long long)r->handle, r->addr,
		     r->len);
	/* Not stale: nothing reported to this mm changed since reg. */
	{
		int fp, lp;
		struct rec *rc = &dev.rec[r->handle];

		if (arena_pages((unsigned long)r->addr,
				(unsigned long)r->addr + r->len - 1, &fp, &lp))
			for (int p = fp; p <= lp; p++)
				if (m->reported[p] > rc->gen[p])
					FAIL("rcache_get returned a stale "
					     "region: page %d changed (gen "
					     "%lu, reported %lu) since its reg "
					     "(gen %lu)", p, gen[p],
					     m->reported[p], rc->gen[p]);
	}
	pthread_mutex_unlock(&dev.lock);
	h = held_find(f, r);
	if (h < 0) {
		if (f->nheld == NHELD) {
			/* No room to remember it: give it back. */
			EXPECT("rcache_put", uhmm_rcache_put(f->rc, r), 0);
			return;
		}
		h = f->nheld++;
		f->held[h].r = r;
		f->held[h].holds = 0;
	}
	f->held[h].holds++;
	pthread_mutex_lock(&dev.lock);
	ret = f->regs != regs0;
	pthread_mutex_unlock(&dev.lock);
	if (ret)
		check_limits(f);
}

static void op_rc_put(void)
{
	uint8_t k = u8();
	struct frc *f = &rcs[k % NRC], *o = &rcs[(k + 1) % NRC];
	int h;

	if (!f->rc) {
		EXPECT("rcache_put(NULL)", uhmm_rcache_put(NULL, NULL), -EINVAL);
		return;
	}
	if (!f->nheld) {
		EXPECT("rcache_put(NULL region)", uhmm_rcache_put(f->rc, NULL),
		       -EINVAL);
		return;
	}
	h = u8() % f->nheld;
	if ((k & 0x80) && o->rc && o != f) {
		/* Another cache's region (memory lives until destroy). */
		EXPECT("rcache_put(other cache)",
		       uhmm_rcache_put(o->rc, f->held[h].r), -EINVAL);
		return;
	}
	if (f->held[h].holds == 0) {
		/* Put too many times: not held. */
		EXPECT("rcache_put(not held)", uhmm_rcache_put(f->rc,
							       f->held[h].r),
		       -EINVAL);
		return;
	}
	EXPECT("rcache_put", uhmm_rcache_put(f->rc, f->held[h].r), 0);
	f->held[h].holds--;
}

static void rc_destroy(struct frc *f)
{
	int ret = uhmm_rcache_destroy(f->rc), i;

	EXPECT("rcache_destroy", ret, 0);
	pthread_mutex_lock(&dev.lock);
	if (f->regs != f->deregs)
		FAIL("destroyed cache left %lu of %lu registrations",
		     f->regs - f->deregs, f->regs);
	pthread_mutex_unlock(&dev.lock);
	i = f->mmi;
	memset(f, 0, sizeof(*f));
	cache_ref_done(i);
}

static void op_rc_destroy(void)
{
	uint8_t k = u8();
	struct frc *f = &rcs[k % NRC];
	int holds = 0;

	if (!f->rc) {
		EXPECT("rcache_destroy(NULL)", uhmm_rcache_destroy(NULL),
		       -EINVAL);
		return;
	}
	if (wdepth) {
		/* It removes notifiers: refused from a callback. */
		EXPECT("rcache_destroy(in callback)", uhmm_rcache_destroy(f->rc),
		       -EDEADLK);
		return;
	}
	if (mms[f->mmi].nwin)
		return;		/* it removes notifiers: would wait */
	for (int h = 0; h < f->nheld; h++)
		holds += f->held[h].holds;
	if (holds) {
		EXPECT("rcache_destroy(held)", uhmm_rcache_destroy(f->rc),
		       -EBUSY);
		return;
	}
	rc_destroy(f);
}

static void op_rc_stats(void)
{
	uint8_t k = u8();
	struct frc *f = &rcs[k % NRC];
	struct uhmm_rcache_stats st;

	if (!f->rc) {
		EXPECT("rcache_stats(NULL)", uhmm_rcache_stats(NULL, &st),
		       -EINVAL);
		return;
	}
	if (k & 0x80) {
		EXPECT("rcache_stats(NULL stats)", uhmm_rcache_stats(f->rc, NULL),
		       -EINVAL);
		return;
	}
	/* Known bug: under a window of ours, stats can wait forever for
	 * the worker, which waits in remove() for that window
	 * (known/api/rcache-stats-deadlock-under-own-window). */
	if ((mms[f->mmi].nwin || in_window_of(f->mmi)) && !known_bugs)
		return;
	EXPECT("rcache_stats", uhmm_rcache_stats(f->rc, &st), 0);
	pthread_mutex_lock(&dev.lock);
	/* The worker may be retiring one right now: it deregisters under
	 * the cache's lock, so the device has at most what stats said. */
	if ((long)st.regions < 0 || st.misses > f->regs ||
	    st.deregistrations > f->deregs)
		FAIL("stats: %lu regions, %lu misses, %lu deregistrations; "
		     "device: %lu regs, %lu deregs", st.regions, st.misses,
		     st.deregistrations, f->regs, f->deregs);
	pthread_mutex_unlock(&dev.lock);
}

/* ------------------------------------------------------------------ */
/* Callbacks that call back */

/* Is the fuzzer thread inside a window of mm i (a callback of it)? */
static bool in_window_of(int i)
{
	for (int d = 0; d < wdepth; d++)
		if (wstack[d].mm == mms[i].mm)
			return true;
	return false;
}

static void nested_action(struct fsub *s, const struct uhmm_notifier_range *r)
{
	uint8_t k = u8();
	int i = u8() % NMM;

	(void)r;
	depth++;
	switch (k % 11) {
	case 0:
		/* Refused from a callback: -EDEADLK, nothing changes. */
		EXPECT("remove(in callback)",
		       uhmm_interval_notifier_remove(&s->sub), -EDEADLK);
		break;
	case 1:
		if (mm_alive(i))
			EXPECT("close(in callback)", uhmm_mm_close(mms[i].mm),
			       -EDEADLK);
		break;
	case 2:
		if (mm_alive(i)) {
			int ret = uhmm_mm_sync(mms[i].mm);

			if (mm_has_users(i))
				EXPECT("sync(in callback)", ret, -EDEADLK);
			else
				EXPECT("sync(in callback, closed)", ret,
				       -EDEADLK, -ESRCH);
		}
		break;
	case 3:
		op_invalidate();
		break;
	case 4:
		op_insert();
		break;
	case 5: {
		/* read_begin on another mm's notifier: allowed. */
		struct fsub *o = pick_sub();

		if (o && o->mmi != s->mmi && o->sub.mm != s->sub.mm)
			read_begin(o, true, 1);
		break;
	}
	case 6:
		op_rc_put();
		break;
	case 7:
		op_mem();
		break;
	case 8:
		/* From a callback a miss is refused (-EDEADLK: it may
		 * remove notifiers), a hit works (regress/api/rcache-get-
		 * in-callback-corrupted-tree: the miss used to go ahead). */
		op_rc_get();
		break;
	case 9:
		op_rc_destroy();	/* refused: -EDEADLK */
		break;
	default: {
		/* Another notifier of any mm: refused too. */
		struct fsub *o = pick_sub();

		if (o)
			EXPECT("remove(other, in callback)",
			       uhmm_interval_notifier_remove(&o->sub),
			       -EDEADLK);
		break;
	}
	}
	depth--;
}

/* ------------------------------------------------------------------ */
/* Teardown and the end-of-input checks */

/* Is anything of the process still registered with a userfaultfd? */
static void check_nothing_registered(void)
{
	struct page_region r;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = 0,
		.end = 1UL << 47,
		.vec = (unsigned long)&r,
		.vec_len = 1,
		.category_mask = PAGE_IS_WPALLOWED,
		.return_mask = PAGE_IS_WPALLOWED,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	long n;

	ASSERT(fd >= 0);
	n = ioctl(fd, PAGEMAP_SCAN, &arg);
	close(fd);
	if (n < 0)
		return;		/* no PAGEMAP_SCAN: cannot tell */
	if (n > 0)
		FAIL("[%#llx, %#llx) is still registered with a userfaultfd "
		     "after every notifier was removed and every mm closed",
		     (unsigned long long)r.start, (unsigned long long)r.end);
}


static bool anything_left(void)
{
	for (int w = 0; w < NWIN; w++)
		if (wins[w].open)
			return true;
	for (int c = 0; c < NRC; c++)
		if (rcs[c].rc)
			return true;
	for (int k = 0; k < NSUB; k++)
		if (subs[k])
			return true;
	for (int i = 0; i < NMM; i++)
		if (mms[i].mm)
			return true;
	return false;
}

static void teardown(void)
{
	int rounds = 0;

again:
	ASSERT(rounds++ < 100);
	/* Windows first: removes and closes may wait for them. */
	for (int w = 0; w < NWIN; w++)
		if (wins[w].open)
			end_window(&wins[w]);
	for (int c = 0; c < NRC; c++) {
		struct frc *f = &rcs[c];

		if (!f->rc)
			continue;
		for (int h = 0; h < f->nheld; h++)
			while (f->held[h].holds) {
				EXPECT("rcache_put", uhmm_rcache_put(f->rc,
							f->held[h].r), 0);
				f->held[h].holds--;
			}
		rc_destroy(f);
	}
	check_counts();
	for (int k = 0; k < NSUB; k++)
		if (subs[k])
			do_remove(k);
	for (int i = 0; i < NMM; i++)
		while (mms[i].mm && mms[i].users)
			mm_drop(i, false);
	if (anything_left())
		goto again;
	if (any_monitored_used) {
		/* Let the dispatcher finish what it read (re-arming,
		 * disarming moved mappings) before looking. */
		struct uhmm_mm *mm;

		if (uhmm_mm_open(&mm, 0) == 0) {
			EXPECT("uhmm_mm_sync", uhmm_mm_sync(mm), 0);
			EXPECT("uhmm_mm_close", uhmm_mm_close(mm), 0);
		}
		check_nothing_registered();
	}
	for (int p = 0; p < ARENA_PAGES; p++) {
		if (kind[p] != K_HOLE &&
		    munmap((void *)(A + (unsigned long)p * P), P))
			FAIL("munmap: %s", strerror(errno));
		kind[p] = K_HOLE;
	}
	ASSERT(dev.live == 0);
	reap_children(false);
}

/* ------------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const unsigned long bases[] = { 0x5a0000000000UL,
					       0x4b0000000000UL,
					       0x3c0000000000UL };
	char path[64];

	(void)argc;
	(void)argv;
	P = (unsigned long)sysconf(_SC_PAGESIZE);
	vdso = getauxval(AT_SYSINFO_EHDR);
	/* A fixed arena far below where mmap(NULL) puts anything, so that
	 * its holes stay holes: nothing else ever maps there. */
	for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]) && !A; b++) {
		void *p = mmap((void *)bases[b], ARENA_PAGES * P, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS |
				       MAP_FIXED_NOREPLACE, -1, 0);

		if (p == (void *)bases[b])
			A = bases[b];
		if (p != MAP_FAILED)
			munmap(p, ARENA_PAGES * P);
	}
	ASSERT(A);
	memfd = memfd_create("fuzz-api", MFD_CLOEXEC);
	ASSERT(memfd >= 0);
	ASSERT(ftruncate(memfd, (off_t)(ARENA_PAGES * P)) == 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	memfd_ro = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT(memfd_ro >= 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	in_p = data;
	in_n = size;
	tracing = getenv("UHMM_FUZZ_TRACE") != NULL;
	known_bugs = getenv("UHMM_FUZZ_KNOWN_BUGS") != NULL;
	on_main = true;
	memset(mms, 0, sizeof(mms));
	memset(subs, 0, sizeof(subs));
	memset(wins, 0, sizeof(wins));
	memset(rcs, 0, sizeof(rcs));
	memset(kind, 0, sizeof(kind));
	pthread_mutex_lock(&dev.lock);
	dev.nrec = 0;
	dev.live = 0;
	dev.fail_next = 0;
	pthread_mutex_unlock(&dev.lock);
	wdepth = depth = 0;
	any_monitored_used = false;
	in_mem_op = false;

	alloc_fail = 0;
	while (in_n) {
		uint8_t op = u8();

		TRACE("op %d\n", op % 20);
		if (alloc_fail)
			uhmm_alloc_fail_from(alloc_fail);
		switch (op % 20) {
		case 0: op_mm_open(); break;
		case 1: op_mm_get(); break;
		case 2: op_mm_close(); break;
		case 3: op_mm_sync(); break;
		case 4: case 5: op_insert(); break;
		case 6: op_remove(); break;
		case 7: op_arm(); break;
		case 8: op_read_begin(); break;
		case 9: op_read_retry(); break;
		case 10: op_invalidate(); break;
		case 11: op_inv_start(); break;
		case 12: op_inv_end(); break;
		case 13: op_range_fault(); break;
		case 14: op_range_fault_lock(); break;
		case 15: op_mem(); break;
		case 16: op_happens_before(); break;
		case 17: op_rc_create(); op_rc_stats(); break;
		case 18: op_rc_get(); break;
		default:
			switch (op / 20 % 5) {
			case 0: op_rc_put(); break;
			case 1: op_rc_destroy(); break;
			case 2: op_rc_stats(); break;
			case 4: op_fork(); break;
			default:
				/* The library's allocations on this thread
				 * fail from the nth on, during the next op:
				 * every call that allocates documents
				 * -ENOMEM. */
				alloc_fail = 1 + u8() % 8;
				continue;
			}
			break;
		}
		if (alloc_fail) {
			uhmm_alloc_fail_from(0);
			alloc_fail = 0;
		}
		for (int i = 0; i < NMM; i++)
			if (mms[i].mm && mms[i].monitored)
				any_monitored_used = true;
		check_counts();
	}
	uhmm_alloc_fail_from(0);
	teardown();
	return 0;
}
