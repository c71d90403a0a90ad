/* SPDX-License-Identifier: MIT */
/*
 * Stress: a randomized mix of everything that changes memory, against the
 * registration cache (io_uring fixed buffers) and a range-fault mirror,
 * with every transfer and every mirror entry checked.
 *
 *   test-stress [--seconds S] [--ops N] [--seed X] [--threads-mutate N]
 *               [--threads-io N] [--threads-prefetch N] [--threads-mirror 0|1]
 *               [--slots N] [--caches N] [--no-fork] [--no-monitor]
 *               [--hang-timeout S] [--strict] [--verbose]
 *
 * Bounded by time (default 10 s times UHMM_TEST_SCALE) and by --ops (all
 * mutations, transfers and mirror rounds together; prefetch gets are not
 * counted), whichever comes first. The seed is printed first; each thread
 * draws from its own generator seeded with seed + its index, and draws the
 * same four numbers per step whatever it then does, so a seed reproduces
 * every thread's sequence of choices (the interleaving is the scheduler's).
 *
 * The memory: a pool of slots. A slot is empty, an anonymous mmap (1..64
 * pages) or a malloc()ed chunk of 256 KiB..1 MiB (glibc serves those with
 * mmap: M_MMAP_THRESHOLD is fixed below so it keeps doing so).
 *
 * Threads:
 *   mutators  mmap, munmap (libc and raw syscall), mremap (move with
 *             MREMAP_FIXED, grow, shrink, MREMAP_DONTUNMAP), madvise
 *             DONTNEED and FREE (all or part), mmap(MAP_FIXED) over all
 *             or part, free() + malloc() of large chunks, fork() (the
 *             child writes its copy and exits), plain writes.
 *   io        READ_FIXED / WRITE_FIXED between a slot and the thread's
 *             own file, through one of the caches, three ways (get + raw
 *             prep, uhmm_uring_prep_*_fixed, uhmm_uring_*_fixed_sync). A
 *             read poisons its target first: afterwards the application
 *             must see exactly the file's bytes (a read into stale pages
 *             leaves the poison). A write sends fresh bytes: pread() must
 *             then find what the application had in the buffer.
 *   prefetch  uhmm_rcache_get + put of slots with no I/O, racing the
 *             discards of the same memory (an application that
 *             pre-registers buffers while another thread recycles them).
 *             They are what makes a discard race a registration.
 *   mirror    one interval notifier per slot, faulted (REQ_FAULT |
 *             REQ_WRITE, with PFNs) by uhmm_range_fault_lock() racing the
 *             discards, committed under the mirror lock; on its next visit,
 *             after read_begin, every committed entry must still be what
 *             /proc/self/pagemap says, and must be gone where the slot has
 *             since been unmapped, moved, mapped over or forked.
 *
 * Coordination: the application's contract, and no more.
 *   slot->lock     held for any I/O on the slot (get .. completion .. put
 *                  .. check) and for any change of it: the application
 *                  never changes a buffer it is doing I/O on. So every
 *                  change has returned before the next get of that slot:
 *                  exactly what uhmm promises to see.
 *   slot->maplock  mapping changes (munmap, mremap, MAP_FIXED, free/malloc)
 *                  take it for writing, the prefetchers and the mirror's
 *                  fault for reading: they race discards and the other
 *                  slots' changes, but never use memory that is being
 *                  unmapped (the application does not register memory it
 *                  is freeing; an unlocked getter could also arm whatever
 *                  the address was reused for, uhmm's own batch memory
 *                  included).
 *   addr_lock      every change that releases or takes address space
 *                  (mmap(NULL), munmap, mremap, free, malloc of a chunk),
 *                  and fork(). Two documented limits are avoided with it
 *                  (README.md, "Known limits"):
 *                  - "An address reused while its munmap is still in
 *                    flight": every address a slot gets was released by
 *                    an munmap that has returned (as tests/rcache-churn.c
 *                    does). Under ASan the quarantine would release chunks
 *                    from arbitrary threads at arbitrary times, so it is
 *                    off for this program (__asan_default_options).
 *                  - "Fork: what the PROTECTION windows cannot cover": no
 *                    mapping is created in a hole while fork() runs.
 *                  Also avoided, by the workload: the mirror faults with
 *                  REQ_WRITE, which README says "breaks the sharing
 *                  first", so that no read-only translation of a page
 *                  shared copy-on-write with a fork child is committed
 *                  (the other half of that limit).
 *
 * What is counted apart, as "documented-limit", not as a failure:
 *   - README "Discards" (2): a stale transfer on a slot that was discarded
 *     (since its buffer was created) or a stale mirror entry of a slot
 *     discarded since the fault began, when a REMOVE window was closed by
 *     the grace period (source->removes_expired moved) meanwhile.
 *   - README "Not seen by the kernel" (migration) and "Discards" (3)
 *     (MADV_FREE + reclaim): a mirror PFN that changed with no discard of
 *     its slot, while /proc/vmstat counted migrations, lazyfree reclaim,
 *     swap-out or THP collapse. (Pinned pages are never reclaimed or
 *     migrated here: the cache is not affected.)
 *   - README "Discards" (1): the stale mirror entries of the discard class
 *     and the stale transfers of the transfer-discard class (below),
 *     unless --strict is given. They are counted and printed apart, as
 *     "documented limit", and --strict makes them fail the run again.
 * With --no-monitor nothing is excused: uhmm promises nothing there.
 * Everything else is a failure: a stale transfer of any other class, a
 * stale or missed mirror entry of any other class, an error from uhmm, a
 * thread that made no progress for --hang-timeout seconds.
 *
 * Stale transfers are reported by the registration they used:
 *   transfer-discard  every stale page of the transfer was dropped by an
 *              MADV_DONTNEED of the slot whose madvise() call overlapped
 *              the device's reg() of that registration (the pin), a
 *              REMOVE window closed on the zap (removes_zapped) since
 *              that madvise() began, and the slot's mapping did not
 *              change since that reg() began (no mmap, munmap, mremap,
 *              MAP_FIXED, free or malloc of it). That is README
 *              "Discards" (1): that madvise()'s REMOVE window opened and
 *              closed (on the zap) before the get's read_retry, and the
 *              zap came after the pin. The registration is known from
 *              the region get returned (a wrapper of the device's ops
 *              stamps every reg and dereg on one clock, tick()); for
 *              uhmm_uring_*_fixed_sync, which does not return it, every
 *              registration that may have served the transfer (covering
 *              it, registered before it returned, live when it began)
 *              must pass, and none must have gone meanwhile. A
 *              registration made by the transfer's own get (under the
 *              slot's lock: no discard races it), a discard that began
 *              after the reg() returned (its REMOVE event must reach the
 *              region), MADV_FREE (it leaves a pinned page in place:
 *              README "Discards" (3)) and unmaps never explain one.
 *              fork() does not count against it: the cache ignores fork,
 *              as README says, and the kernel keeps pinned pages in the
 *              parent;
 *   transfers  every other stale transfer.
 * Stale mirror entries are reported by what happened since their commit:
 *   fork       a fork() started after the commit and returned, and the
 *              entry survived its PROTECTION window;
 *   unmap      the page was unmapped, moved or mapped over since (by this
 *              slot, so that call returned before the check);
 *   discard    the slot was discarded while the fault ran, and the PFN is
 *              gone: the REMOVE window closed before the zap. README
 *              "Discards" (1): a madvising thread between the decrement
 *              of mmap_changing and its mmap_read_lock() when uhmm's
 *              barrier takes the lock (preempted, or queued for
 *              mmap_lock behind another writer: an rwsem writer may
 *              steal the lock from a queued reader). This test cannot
 *              tell it from a REMOVE window that closed too early for
 *              another reason: a documented limit, a failure with
 *              --strict;
 *   after-fork the PFN changed with no event at all, no discard, and
 *              forks earlier in the run: a page left read-only by a fork
 *              that REQ_WRITE did not make writable, copied by a later
 *              CPU write;
 *   other      the same with no fork ever.
 * --no-fork leaves out fork() and with it the after-fork class. The end
 * of the run prints every class with its count and whether it failed the
 * run, then the verdict, each line with the seed.
 *
 * Self-checks (the checks do catch staleness):
 *   --no-monitor            the mm is opened UHMM_MM_NO_MONITOR, so nothing
 *                           invalidates on kernel events: the run passes
 *                           only if stale transfers or mirror entries ARE
 *                           found (every class counts, none is excused).
 *   UHMM_REMOVE_GRACE_US=0  the REMOVE window closes at dispatch (a known
 *                           bad setting): fails when a transfer goes
 *                           stale (no window ever closes on the zap, so
 *                           none is of the transfer-discard class); the
 *                           mirror's stale entries it causes are of the
 *                           discard class, a failure only with --strict.
 */
#define T_RC_URING
#include "rcache.h"

#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__)
#define S_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define S_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define S_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_ASAN 1
#endif
#endif

#ifdef S_ASAN
/* See the top comment: a freed chunk must be unmapped by its free(). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=0";
}
#endif

#define MAX_SLOTS 64
#define MAX_CACHES 8
#define MAX_THREADS 64
#define MMAP_MAXP 64			/* pages of an mmap slot */
#define CHUNK_MIN (256u << 10)		/* malloc slot sizes */
#define CHUNK_MAX (1u << 20)
#define MAXP (CHUNK_MAX / 4096 + 2 + MMAP_MAXP)	/* mirror pages */
#define FILE_SIZE (4u << 20)
#define IO_MAX CHUNK_MAX
#define DEV_SLOTS 256
#define HIST 8
#define DISC_HIST 64			/* discards remembered per slot */
#define DEREG_HIST 256			/* deregistrations per cache */
#define REPORT_MAX 10			/* details printed per kind */

/* ---- operations ---- */

enum op {
	OP_MMAP, OP_MUNMAP, OP_MUNMAP_RAW, OP_MREMAP_MOVE, OP_MREMAP_GROW,
	OP_MREMAP_SHRINK, OP_MREMAP_DONTUNMAP, OP_MREMAP_REFUSED,
	OP_DONTNEED, OP_MADV_FREE, OP_MAP_FIXED, OP_MALLOC, OP_FREE, OP_FORK,
	OP_APPWRITE,
	OP_READ, OP_WRITE, OP_IO_EMPTY,
	OP_MIR_FAULT, OP_MIR_CHECK, OP_MIR_INSERT, OP_MIR_SKIP,
	OP_PREFETCH, OP_PREFETCH_HOLD, OP_PREFETCH_EMPTY,
	OP_N
};

static const char *const op_name[OP_N] = {
	[OP_MMAP] = "mmap",
	[OP_MUNMAP] = "munmap",
	[OP_MUNMAP_RAW] = "munmap-syscall",
	[OP_MREMAP_MOVE] = "mremap-move-fixed",
	[OP_MREMAP_GROW] = "mremap-grow",
	[OP_MREMAP_SHRINK] = "mremap-shrink",
	[OP_MREMAP_DONTUNMAP] = "mremap-dontunmap",
	[OP_MREMAP_REFUSED] = "mremap-refused",
	[OP_DONTNEED] = "madv-dontneed",
	[OP_MADV_FREE] = "madv-free",
	[OP_MAP_FIXED] = "mmap-fixed-over",
	[OP_MALLOC] = "malloc",
	[OP_FREE] = "free",
	[OP_FORK] = "fork",
	[OP_APPWRITE] = "app-write",
	[OP_READ] = "io-read-fixed",
	[OP_WRITE] = "io-write-fixed",
	[OP_IO_EMPTY] = "io-slot-empty",
	[OP_MIR_FAULT] = "mirror-fault",
	[OP_MIR_CHECK] = "mirror-check",
	[OP_MIR_INSERT] = "mirror-insert",
	[OP_MIR_SKIP] = "mirror-skip",
	[OP_PREFETCH] = "prefetch-get",
	[OP_PREFETCH_HOLD] = "prefetch-get-held",
	[OP_PREFETCH_EMPTY] = "prefetch-slot-empty",
};

/* ---- the mirror of a slot ---- */

enum { PG_CLEAN, PG_TOUCHED, PG_UNKNOWN };

struct smirror {
	struct uhmm_interval_notifier sub;
	pthread_mutex_t lock;
	/* [lock] (the callback's side) */
	unsigned long start, npages;
	bool valid[MAXP];
	uint64_t pfn[MAXP];
	unsigned long callbacks;
	/* Mirror thread; written under the slot's lock (insert/remove) */
	bool inserted;
	unsigned long incarnation;	/* of the slot, at insert */
	/* What happened to each page since the commit: written by mapping
	 * changes (slot lock + maplock W) and by the commit (maplock R). */
	unsigned char pg[MAXP];
	/* The commit: mirror thread only. */
	bool committed;
	unsigned long c_discards, c_expired, c_vm, c_forks, c_forks_before;
	unsigned long c_callbacks;
	unsigned long c_time_ms;
};

/* ---- slots ---- */

enum kind { K_EMPTY, K_MMAP, K_MALLOC };

struct hist {
	unsigned char op, tid;
	unsigned int ms;
};

/* A discard: pages [lo, hi), madvise() called after tick t0 and returned
 * before tick t1 (see tick()); removes_zapped before it. */
struct disc {
	unsigned long lo, hi, t0, t1, zapped0;
	bool free_;
};

struct slot {
	pthread_mutex_t lock;
	pthread_rwlock_t maplock;
	/* Written under lock + maplock W; read under either. */
	int kind;
	char *buf;
	size_t size;
	unsigned long pstart, pend;	/* the pages that hold it */
	unsigned long incarnation;	/* new buffer, new number */
	/* [lock] */
	unsigned long disc_expired0;	/* removes_expired at the first
					 * discard of this buffer, or ULONG_MAX */
	struct hist hist[HIST];
	unsigned int nhist;
	unsigned long map_tick;		/* the last change of its mapping */
	struct disc disc[DISC_HIST];	/* the last discards */
	unsigned int ndisc;
	/* atomic: discards completed */
	unsigned long discards;
	struct smirror mir;
};

/* ---- caches: one ring, one device, one cache each ---- */

/* A registration of the device (handle), stamped by the ops wrapper: its
 * reg() was called after tick t0 and returned before tick t1. */
struct reginfo {
	unsigned long addr, len, t0, t1;
	bool live;
};

/* A deregistration: [addr, addr + len), before tick t. */
struct dereg {
	unsigned long addr, len, t;
};

struct cache {
	pthread_mutex_t ring_lock;	/* the ring takes one submitter */
	struct io_uring ring;
	struct uhmm_uring_dev *dev;
	struct uhmm_rcache *rc;
	/* The ops wrapper's record (reg_rec, dereg_rec) */
	pthread_mutex_t reg_lock;
	struct reginfo reg[DEV_SLOTS];	/* by handle */
	struct dereg dereg[DEREG_HIST];	/* the last deregistrations */
	unsigned long nderegs;
};

/* ---- threads ---- */

enum role { R_MUTATE, R_IO, R_PREFETCH, R_MIRROR };
static const char *const role_name[] = { "mutate", "io", "prefetch",
					 "mirror" };

struct thr {
	pthread_t th;
	int idx;
	enum role role;
	uint64_t rng;
	unsigned long cnt[OP_N];
	/* io */
	int fd;
	unsigned char *shadow;		/* what the file holds */
	unsigned char *tmp;
	unsigned long seq;
	/* mirror */
	uint64_t *pfns;
	uint64_t *pm;
	/* watchdog: atomic */
	unsigned long long progress_ns;
	const char *doing;
};

/* ---- options ---- */

static double opt_seconds;
static long opt_ops = LONG_MAX;
static uint64_t opt_seed;
static int opt_mutate = 2, opt_io = 2, opt_prefetch = 1, opt_mirror = 1;
static int opt_slots = 16, opt_caches = 2;
static bool opt_fork = true, opt_no_monitor, opt_strict, opt_verbose;
static double opt_hang = 180;

/* ---- state ---- */

static struct uhmm_mm *mm;
static struct slot slots[MAX_SLOTS];
static struct cache caches[MAX_CACHES];
static struct thr thr[MAX_THREADS];
static int nthr;
static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;
static int pagemap_fd = -1;
static bool pfn_visible;
static size_t io_max = IO_MAX;
static unsigned long long t0_ns;

/* atomics */
static int stop;
static long ops_started;
static unsigned long g_incarnation;
static unsigned long forks_started, forks_done;
static unsigned long vm_moves;		/* sampled by main: see vm_sample */
/* results, atomic */
static unsigned long verified_reads, verified_writes;
/* Stale transfers: stale_io of the "transfers" class, disc_io of the
 * transfer-discard class (limit_io of them let pass as README "Discards"
 * (1)), doc_io closed by the grace period (README "Discards" (2)). */
static unsigned long stale_io, disc_io, limit_io, doc_io;
static unsigned long mirror_pages_checked, stale_mirror, doc_mirror;
/* Discard-class entries let pass as README "Discards" (1) (not with
 * --strict): also in stale_mir_kind[SM_DISCARD]. */
static unsigned long limit_mirror;
/* One clock for registrations, discards and mapping changes: a
 * sequentially consistent counter, so its order is the order in time. */
static unsigned long g_tick;
/* Stale mirror entries by what happened since their commit. */
enum { SM_FORK, SM_UNMAP, SM_DISCARD, SM_AFTER_FORK, SM_OTHER, SM_N };
static const char *const sm_name[SM_N] = {
	[SM_FORK] = "survived a later fork (fork)",
	[SM_UNMAP] = "survived an unmap/move/MAP_FIXED of its page (unmap)",
	[SM_DISCARD] = "PFN discarded by a racing MADV_DONTNEED/FREE "
		       "(discard)",
	[SM_AFTER_FORK] = "PFN changed with no event, no discard, after "
			  "forks earlier in the run (after-fork)",
	[SM_OTHER] = "PFN changed with no event, no discard, no fork "
		     "(other)",
};
static unsigned long stale_mir_kind[SM_N], stale_mir_commits[SM_N];
/* Stale transfers by the registration they used. */
enum { IO_OTHER, IO_DISCARD, IO_N };
static const char *const io_name[IO_N] = {
	[IO_OTHER] = "stale transfer, not of the transfer-discard class "
		     "(transfers)",
	[IO_DISCARD] = "every stale page dropped by an MADV_DONTNEED that "
		       "raced the pin of the registration used "
		       "(transfer-discard)",
};
#define D1_LABEL "documented limit (README Known limits, \"Discards\" (1))"
static unsigned long mirror_commits;
static unsigned long errors, fork_cow_bad, bad_output;
static unsigned long reported[8];

enum { REP_IO, REP_MIR, REP_ERR, REP_DOC };

static bool report_ok(int kind)
{
	return opt_verbose ||
	       __atomic_fetch_add(&reported[kind], 1, __ATOMIC_RELAXED) <
		       REPORT_MAX;
}

static unsigned long tick(void)
{
	return __atomic_add_fetch(&g_tick, 1, __ATOMIC_SEQ_CST);
}

/* README "Discards" (1) lets the run pass: not with --strict, and never
 * with --no-monitor (nothing is promised there, every class counts). */
static bool excuse_d1(void)
{
	return !opt_strict && !opt_no_monitor;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull +
	       (unsigned long long)ts.tv_nsec;
}

static unsigned int ms_now(void)
{
	return (unsigned int)((now_ns() - t0_ns) / 1000000);
}

static uint64_t rnd(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned long pfloor(unsigned long a)
{
	return a & ~(t_page - 1);
}

static unsigned long pceil(unsigned long a)
{
	return (a + t_page - 1) & ~(t_page - 1);
}

/*
 * The event source's counters: the only internal state this test reads
 * (tests/events.h reaches it the same way). NULL with UHMM_MM_NO_MONITOR.
 */
static struct uffd_source *src(void)
{
	return mm->source ? uffd_of(mm->source) : NULL;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static unsigned long removes_expired(void)
{
	return src() ? __atomic_load_n(&src()->removes_expired,
				       __ATOMIC_RELAXED)
		     : 0;
}

/* REMOVE windows closed on the zap (mmap_changing at zero, then the
 * mmap_lock barrier): README "Discards" (1) is such a close. */
static unsigned long removes_zapped(void)
{
	return src() ? __atomic_load_n(&src()->removes_zapped,
				       __ATOMIC_SEQ_CST)
		     : 0;
}

/* Kernel page moves that send no event: migration, lazyfree reclaim,
 * swap-out, THP collapse (README "Not seen by the kernel"). */
static unsigned long vm_read(void)
{
	static const char *const keys[] = { "pgmigrate_success",
					    "pglazyfreed", "pswpout",
					    "thp_collapse_alloc" };
	FILE *f = fopen("/proc/vmstat", "re");
	char line[128];
	unsigned long sum = 0, v;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			size_t n = strlen(keys[i]);

			if (!strncmp(line, keys[i], n) && line[n] == ' ' &&
			    sscanf(line + n, "%lu", &v) == 1)
				sum += v;
		}
	fclose(f);
	return sum;
}

static void progress(struct thr *t, const char *doing)
{
	__atomic_store_n(&t->doing, doing, __ATOMIC_RELAXED);
	__atomic_store_n(&t->progress_ns, now_ns(), __ATOMIC_RELAXED);
}

static bool stopping(void)
{
	return __atomic_load_n(&stop, __ATOMIC_RELAXED);
}

/* One counted op; false once --ops is used up. */
static bool take_op(void)
{
	if (stopping())
		return false;
	return __atomic_fetch_add(&ops_started, 1, __ATOMIC_RELAXED) <
	       opt_ops;
}

static void fail_error(struct thr *t, const char *what, int err)
{
	__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
	if (report_ok(REP_ERR))
		fprintf(stderr, "stress: ERROR %s thread %d: %s: %s (%d)\n",
			role_name[t->role], t->idx, what,
			err < 0 ? strerror(-err) : "short transfer", err);
}

static void hist_add(struct thr *t, struct slot *s, enum op op)
{
	s->hist[s->nhist++ % HIST] = (struct hist){
		(unsigned char)op, (unsigned char)t->idx, ms_now() };
}

static void hist_print(struct slot *s)
{
	unsigned int n = s->nhist < HIST ? s->nhist : HIST;

	fprintf(stderr, "  slot history (oldest first):");
	for (unsigned int i = s->nhist - n; i < s->nhist; i++) {
		struct hist *h = &s->hist[i % HIST];

		fprintf(stderr, " %s@t%u/%ums", op_name[h->op], h->tid, h->ms);
	}
	fprintf(stderr, "\n");
}

/* ---- the mirror ---- */

static bool mir_invalidate(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *r,
			   unsigned long cur_seq)
{
	struct smirror *m = (struct smirror *)((char *)sub -
					       offsetof(struct smirror, sub));
	unsigned long end, s, e;

	pthread_mutex_lock(&m->lock);
	uhmm_interval_set_seq(sub, cur_seq);
	m->callbacks++;
	end = m->start + m->npages * t_page;
	s = r->start > m->start ? r->start : m->start;
	e = r->end < end ? r->end : end;
	for (unsigned long a = s; a < e; a += t_page)
		m->valid[(a - m->start) / t_page] = false;
	pthread_mutex_unlock(&m->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops mir_ops = {
	.invalidate = mir_invalidate,
};

/* Under the slot's lock and maplock W: pages [lo, hi) of the slot's
 * mirror were unmapped (PG_TOUCHED) or may have been (PG_UNKNOWN). */
static void mir_touch(struct slot *s, unsigned long lo, unsigned long hi,
		      int how)
{
	struct smirror *m = &s->mir;
	unsigned long end;

	if (!m->inserted)
		return;
	end = m->start + m->npages * t_page;
	if (lo < m->start)
		lo = m->start;
	if (hi > end)
		hi = end;
	for (unsigned long a = lo; a < hi; a += t_page) {
		unsigned char *p = &m->pg[(a - m->start) / t_page];

		if (*p != PG_TOUCHED)
			*p = (unsigned char)how;
	}
}

/* ---- slot changes (mutators) ---- */

/* Under the slot's lock and maplock W, after a change of its mapping. */
static void slot_set(struct slot *s, int kind, char *buf, size_t size,
		     bool same)
{
	s->map_tick = tick();
	s->kind = kind;
	s->buf = buf;
	s->size = size;
	s->pstart = buf ? pfloor((unsigned long)buf) : 0;
	s->pend = buf ? pceil((unsigned long)buf + size) : 0;
	if (!same) {
		s->incarnation = __atomic_add_fetch(&g_incarnation, 1,
						    __ATOMIC_RELAXED);
		s->disc_expired0 = ULONG_MAX;
		s->ndisc = 0;
	}
}

static void fill(char *p, size_t n, uint64_t salt)
{
	uint64_t x = salt;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w = rnd(&x);

		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] = (char)rnd(&x);
}

static size_t mmap_pages(uint64_t r)
{
	return (r & 3) ? 1 + (r >> 2) % 16 : 1 + (r >> 2) % MMAP_MAXP;
}

static void create_mmap(struct thr *t, struct slot *s, uint64_t r)
{
	size_t len = mmap_pages(r) * t_page;
	char *p;

	pthread_rwlock_wrlock(&s->maplock);
	pthread_mutex_lock(&addr_lock);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pthread_mutex_unlock(&addr_lock);
	REQUIRE(p != MAP_FAILED);
	(void)madvise(p, len, MADV_NOHUGEPAGE);
	fill(p, len, r);
	slot_set(s, K_MMAP, p, len, false);
	pthread_rwlock_unlock(&s->maplock);
	hist_add(t, s, OP_MMAP);
	t->cnt[OP_MMAP]++;
}

static void create_malloc(struct thr *t, struct slot *s, uint64_t r)
{
	size_t len = CHUNK_MIN + (r >> 3) % (CHUNK_MAX - CHUNK_MIN + 1);
	char *p;

	pthread_rwlock_wrlock(&s->maplock);
	pthread_mutex_lock(&addr_lock);
	p = malloc(len);
	pthread_mutex_unlock(&addr_lock);
	REQUIRE(p);
	fill(p, len, r);
	slot_set(s, K_MALLOC, p, len, false);
	pthread_rwlock_unlock(&s->maplock);
	hist_add(t, s, OP_MALLOC);
	t->cnt[OP_MALLOC]++;
}

/* Make the slot empty: munmap (libc or raw) an mmap slot, free a chunk. */
static void destroy(struct thr *t, struct slot *s, bool raw)
{
	enum op op;

	pthread_rwlock_wrlock(&s->maplock);
	pthread_mutex_lock(&addr_lock);
	if (s->kind == K_MMAP) {
		mir_touch(s, s->pstart, s->pend, PG_TOUCHED);
		if (raw)
			REQUIRE(syscall(SYS_munmap, s->buf, s->size) == 0);
		else
			REQUIRE(munmap(s->buf, s->size) == 0);
		op = raw ? OP_MUNMAP_RAW : OP_MUNMAP;
	} else {
		free(s->buf);
		/* Unmapped by free()? Each page that is no longer mapped
		 * must lose its translation; one still mapped (the
		 * allocator kept it, or a non-slot mmap took it since) is
		 * not judged. */
		for (unsigned long a = s->pstart; a < s->pend; a += t_page) {
			unsigned char v;

			mir_touch(s, a, a + t_page,
				  mincore((void *)a, t_page, &v) &&
						  errno == ENOMEM
					  ? PG_TOUCHED
					  : PG_UNKNOWN);
		}
		op = OP_FREE;
	}
	pthread_mutex_unlock(&addr_lock);
	slot_set(s, K_EMPTY, NULL, 0, false);
	pthread_rwlock_unlock(&s->maplock);
	hist_add(t, s, op);
	t->cnt[op]++;
}

static void do_mremap(struct thr *t, struct slot *s, uint64_t r1,
		      uint64_t r2)
{
	size_t len = s->size, pages = len / t_page;
	char *old = s->buf, *p, *target;
	enum op op;

	pthread_rwlock_wrlock(&s->maplock);
	pthread_mutex_lock(&addr_lock);
	switch (r1 % 4) {
	case 0:	/* move to a fresh place, over a mapping made for it */
	case 3:	/* the same, leaving the old range mapped (and empty);
		 * then unmap that. (6.18 wants MREMAP_FIXED with
		 * MREMAP_DONTUNMAP.) */
		op = r1 % 4 ? OP_MREMAP_DONTUNMAP : OP_MREMAP_MOVE;
		target = mmap(NULL, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		REQUIRE(target != MAP_FAILED);
		p = mremap(old, len, len,
			   MREMAP_MAYMOVE | MREMAP_FIXED |
				   (op == OP_MREMAP_DONTUNMAP ? MREMAP_DONTUNMAP
							      : 0),
			   target);
		mir_touch(s, s->pstart, s->pend, PG_TOUCHED);
		if (p == MAP_FAILED) {
			/* A buffer split by MAP_FIXED over part of it may be
			 * refused, or moved only in part: drop both. */
			REQUIRE(munmap(old, len) == 0);
			REQUIRE(munmap(target, len) == 0);
			slot_set(s, K_EMPTY, NULL, 0, false);
			op = OP_MREMAP_REFUSED;
			break;
		}
		REQUIRE(p == target);
		if (op == OP_MREMAP_DONTUNMAP) {
			if (r2 & 1)
				REQUIRE(syscall(SYS_munmap, old, len) == 0);
			else
				REQUIRE(munmap(old, len) == 0);
		}
		slot_set(s, K_MMAP, p, len, false);
		break;
	case 1:	/* grow, moving if the next pages are taken */
		op = OP_MREMAP_GROW;
		if (pages >= MMAP_MAXP) {
			op = OP_MREMAP_REFUSED;
			break;
		}
		{
			size_t np = pages + 1 + r2 % (MMAP_MAXP - pages);

			p = mremap(old, len, np * t_page, MREMAP_MAYMOVE);
			if (p == MAP_FAILED) {
				op = OP_MREMAP_REFUSED;
				break;
			}
			if (p != old)
				mir_touch(s, s->pstart, s->pend, PG_TOUCHED);
			slot_set(s, K_MMAP, p, np * t_page, p == old);
		}
		break;
	case 2:	/* shrink: the tail is unmapped */
		op = OP_MREMAP_SHRINK;
		if (pages < 2) {
			op = OP_MREMAP_REFUSED;
			break;
		}
		{
			size_t np = 1 + r2 % (pages - 1);

			p = mremap(old, len, np * t_page, 0);
			if (p == MAP_FAILED) {
				op = OP_MREMAP_REFUSED;
				break;
			}
			REQUIRE(p == old);
			mir_touch(s, s->pstart + np * t_page, s->pend,
				  PG_TOUCHED);
			slot_set(s, K_MMAP, p, np * t_page, true);
		}
		break;
	}
	pthread_mutex_unlock(&addr_lock);
	pthread_rwlock_unlock(&s->maplock);
	hist_add(t, s, op);
	t->cnt[op]++;
}

/* Pages of the slot that belong to the application alone: all of an mmap
 * slot; those wholly inside a chunk (the allocator's header stays). */
static bool own_pages(struct slot *s, unsigned long *lo, unsigned long *hi)
{
	if (s->kind == K_MMAP) {
		*lo = s->pstart;
		*hi = s->pend;
	} else {
		*lo = pceil((unsigned long)s->buf);
		*hi = pfloor((unsigned long)s->buf + s->size);
	}
	return *hi > *lo;
}

/* All of [lo, hi) or a random run of its pages. */
static void pick_pages(unsigned long *lo, unsigned long *hi, uint64_t r)
{
	unsigned long n = (*hi - *lo) / t_page, first, cnt;

	if (r & 1)
		return;
	first = (r >> 1) % n;
	cnt = 1 + (r >> 20) % (n - first);
	*lo += first * t_page;
	*hi = *lo + cnt * t_page;
}

static void discard(struct thr *t, struct slot *s, uint64_t r, bool free_)
{
	unsigned long lo, hi, t0, z0;

	if (!own_pages(s, &lo, &hi))
		return;
	pick_pages(&lo, &hi, r);
	if (s->disc_expired0 == ULONG_MAX)
		s->disc_expired0 = removes_expired();
	z0 = removes_zapped();
	t0 = tick();
	REQUIRE(madvise((void *)lo, hi - lo,
			free_ ? MADV_FREE : MADV_DONTNEED) == 0);
	s->disc[s->ndisc++ % DISC_HIST] =
		(struct disc){ lo, hi, t0, tick(), z0, free_ };
	__atomic_fetch_add(&s->discards, 1, __ATOMIC_SEQ_CST);
	hist_add(t, s, free_ ? OP_MADV_FREE : OP_DONTNEED);
	t->cnt[free_ ? OP_MADV_FREE : OP_DONTNEED]++;
}

static void map_fixed(struct thr *t, struct slot *s, uint64_t r)
{
	unsigned long lo, hi;
	void *p;

	if (!own_pages(s, &lo, &hi))
		return;
	pick_pages(&lo, &hi, r);
	pthread_rwlock_wrlock(&s->maplock);
	p = mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	REQUIRE(p == (void *)lo);
	s->map_tick = tick();
	mir_touch(s, lo, hi, PG_TOUCHED);
	pthread_rwlock_unlock(&s->maplock);
	hist_add(t, s, OP_MAP_FIXED);
	t->cnt[OP_MAP_FIXED]++;
}

static uint32_t sum32(const char *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h;
}

static void do_fork(struct thr *t, struct slot *s, uint64_t r)
{
	size_t off = r % s->size, n = 1 + (r >> 24) % (s->size - off);
	uint32_t before = sum32(s->buf + off, n), after;
	int status;
	pid_t pid;

	/* addr_lock: no mapping is created in a hole meanwhile (README,
	 * "Fork: what the PROTECTION windows cannot cover"). */
	pthread_mutex_lock(&addr_lock);
	__atomic_fetch_add(&forks_started, 1, __ATOMIC_SEQ_CST);
	pid = fork();
	if (pid == 0) {
		volatile char *p = s->buf + off;

		for (size_t i = 0; i < n; i++)
			p[i] = (char)~p[i];
		_exit(0);
	}
	__atomic_fetch_add(&forks_done, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&addr_lock);
	REQUIRE(pid > 0);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	after = sum32(s->buf + off, n);
	if (before != after) {
		__atomic_fetch_add(&fork_cow_bad, 1, __ATOMIC_RELAXED);
		fprintf(stderr, "stress: the fork child's writes showed in "
			"the parent (slot %td)\n", s - slots);
	}
	hist_add(t, s, OP_FORK);
	t->cnt[OP_FORK]++;
}

static void app_write(struct thr *t, struct slot *s, uint64_t r)
{
	size_t off = (r & 1) ? 0 : (r >> 1) % s->size;
	size_t n = (r & 1) ? s->size : 1 + (r >> 32) % (s->size - off);

	fill(s->buf + off, n, r);
	hist_add(t, s, OP_APPWRITE);
	t->cnt[OP_APPWRITE]++;
}

static void mutate(struct thr *t, uint64_t r0, uint64_t r1, uint64_t r2,
		   uint64_t r3)
{
	struct slot *s = &slots[r0 % (uint64_t)opt_slots];
	unsigned int what = (unsigned int)((r0 >> 16) % 100);

	pthread_mutex_lock(&s->lock);
	if (s->kind == K_EMPTY) {
		if (r1 & 1)
			create_mmap(t, s, r2);
		else
			create_malloc(t, s, r2);
	} else if (what < 10) {
		destroy(t, s, false);
	} else if (what < 20) {
		destroy(t, s, true);
	} else if (what < 32) {
		if (s->kind == K_MMAP)
			do_mremap(t, s, r1, r2);
		else	/* a chunk: free it and take another */
			destroy(t, s, false), create_malloc(t, s, r2);
	} else if (what < 52) {
		discard(t, s, r1, false);
	} else if (what < 60) {
		discard(t, s, r1, true);
	} else if (what < 72) {
		map_fixed(t, s, r1);
	} else if (what < 82) {
		destroy(t, s, false);
		create_malloc(t, s, r2);
	} else if (what < 85 && opt_fork) {
		do_fork(t, s, r3);
	} else {
		app_write(t, s, r3);
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- I/O ---- */

/*
 * The device's ops, wrapped: every reg and dereg is stamped on tick(), so
 * that a stale transfer can be told by the registration it used (see the
 * top comment, "transfer-discard"). The cache calls reg in the getter's
 * thread, inside its read_begin .. read_retry: the pin of a registration
 * it returns happened between t0 and t1.
 */
static struct cache *cache_of(void *dev)
{
	for (int i = 0; i < opt_caches; i++)
		if (caches[i].dev == dev)
			return &caches[i];
	REQUIRE(!"a device of no cache");
	return NULL;
}

static int reg_rec(void *dev, void *addr, size_t len, unsigned int access,
		   uint64_t *handle)
{
	struct cache *c = cache_of(dev);
	unsigned long t0 = tick();
	int ret = uhmm_uring_rcache_ops()->reg(dev, addr, len, access, handle);
	unsigned long t1 = tick();

	if (ret)
		return ret;
	REQUIRE(*handle < DEV_SLOTS);
	pthread_mutex_lock(&c->reg_lock);
	c->reg[*handle] = (struct reginfo){ (unsigned long)addr, len, t0, t1,
					    true };
	pthread_mutex_unlock(&c->reg_lock);
	return 0;
}

static void dereg_rec(void *dev, uint64_t handle)
{
	struct cache *c = cache_of(dev);

	pthread_mutex_lock(&c->reg_lock);
	if (handle < DEV_SLOTS && c->reg[handle].live) {
		struct reginfo *e = &c->reg[handle];

		e->live = false;
		c->dereg[c->nderegs++ % DEREG_HIST] =
			(struct dereg){ e->addr, e->len, tick() };
	}
	pthread_mutex_unlock(&c->reg_lock);
	uhmm_uring_rcache_ops()->dereg(dev, handle);
}

static const struct uhmm_rcache_ops rec_ops = {
	.reg = reg_rec,
	.dereg = dereg_rec,
};

/*
 * Under the slot's lock: does registration e explain stale page pg of
 * slot s as README "Discards" (1)? The slot's mapping has not changed
 * since e's reg() began, and an MADV_DONTNEED of pg was in its madvise()
 * while reg() ran (began before reg() returned, returned after reg()
 * began), and a REMOVE window closed on the zap since that madvise()
 * began (its own must have, before the get that made e returned: one
 * that expired is README "Discards" (2), and with UHMM_REMOVE_GRACE_US=0
 * there are none).
 */
static bool d1_explains(const struct slot *s, const struct reginfo *e,
			unsigned long pg, const char **why)
{
	unsigned int n = s->ndisc < DISC_HIST ? s->ndisc : DISC_HIST;
	bool raced = false;

	if (s->map_tick > e->t0) {
		*why = "the slot's mapping changed since the registration";
		return false;
	}
	for (unsigned int i = s->ndisc - n; i < s->ndisc; i++) {
		const struct disc *d = &s->disc[i % DISC_HIST];

		if (d->free_ || pg < d->lo || pg >= d->hi || d->t0 > e->t1 ||
		    e->t0 > d->t1)
			continue;
		raced = true;
		if (removes_zapped() > d->zapped0)
			return true;
	}
	*why = raced ? "an MADV_DONTNEED raced the registration, but no "
		       "REMOVE window closed on the zap since it began"
		     : "no MADV_DONTNEED of a stale page raced the "
		       "registration";
	return false;
}

/*
 * Under the slot's lock, with [p, p + len) stale on the npg pages pgs[]:
 * is the transfer of the transfer-discard class? used is the registration
 * it used, or NULL if unknown (uhmm_uring_*_fixed_sync): then each one
 * that may have served it must explain it. The transfer's get ran between
 * ticks tb and ta. *why says what decided, for the report.
 */
static bool d1_transfer(const struct slot *s, struct cache *c,
			const struct reginfo *used, unsigned long p,
			size_t len, unsigned long tb, unsigned long ta,
			const unsigned long *pgs, unsigned int npg,
			const char **why)
{
	unsigned int cands = 0;
	bool ok = true;

	if (used) {
		for (unsigned int k = 0; k < npg; k++)
			if (!d1_explains(s, used, pgs[k], why))
				return false;
		*why = "its registration raced an MADV_DONTNEED of every "
		       "stale page";
		return true;
	}
	pthread_mutex_lock(&c->reg_lock);
	/* Whatever served it was live while the get ran, covered the
	 * transfer and was registered before it returned: either it still
	 * is, or a deregistration since tb covers the transfer's range. */
	if (c->nderegs > DEREG_HIST &&
	    c->dereg[c->nderegs % DEREG_HIST].t > tb) {
		*why = "unknown: too many deregistrations since";
		ok = false;
	}
	for (unsigned long i = c->nderegs > DEREG_HIST
				       ? c->nderegs - DEREG_HIST
				       : 0;
	     ok && i < c->nderegs; i++) {
		const struct dereg *d = &c->dereg[i % DEREG_HIST];

		if (d->t > tb && d->addr <= p && p + len <= d->addr + d->len) {
			*why = "unknown: a covering registration went since";
			ok = false;
		}
	}
	for (unsigned int h = 0; ok && h < DEV_SLOTS; h++) {
		const struct reginfo *e = &c->reg[h];

		if (!e->live || e->t1 > ta || e->addr > p ||
		    p + len > e->addr + e->len)
			continue;
		cands++;
		for (unsigned int k = 0; ok && k < npg; k++)
			if (!d1_explains(s, e, pgs[k], why))
				ok = false;	/* of one that may have served */
	}
	pthread_mutex_unlock(&c->reg_lock);
	if (ok && !cands) {
		*why = "unknown: no covering registration";
		ok = false;
	}
	if (ok)
		*why = "every registration that may have served it raced "
		       "an MADV_DONTNEED of every stale page";
	return ok;
}

/* The record of the registration a held region is. */
static bool reg_of(struct cache *c, const struct uhmm_region *region,
		   struct reginfo *e)
{
	bool ok;

	pthread_mutex_lock(&c->reg_lock);
	*e = c->reg[region->handle % DEV_SLOTS];
	pthread_mutex_unlock(&c->reg_lock);
	ok = region->handle < DEV_SLOTS && e->live &&
	     e->addr == (unsigned long)region->addr && e->len == region->len;
	CHECK(ok);
	return ok;
}

/* One transfer through cache c, three ways. Returns the completion's
 * result, or the get's error (then *got is false). *used is the
 * registration it used, if known (*known). */
static int transfer(struct thr *t, struct cache *c, bool read, char *p,
		    size_t len, uint64_t off, unsigned int mode, bool *got,
		    struct reginfo *used, bool *known)
{
	struct uhmm_region *region = NULL;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	*got = true;
	*known = false;
	if (mode == 2) {
		pthread_mutex_lock(&c->ring_lock);
		if (read)
			ret = uhmm_uring_read_fixed_sync(c->rc, &c->ring,
							 t->fd, p,
							 (unsigned int)len,
							 off);
		else
			ret = uhmm_uring_write_fixed_sync(c->rc, &c->ring,
							  t->fd, p,
							  (unsigned int)len,
							  off);
		pthread_mutex_unlock(&c->ring_lock);
		/* Only get's errors are negative here: a transfer that
		 * started never fails on a regular file. */
		*got = ret >= 0;
		return ret;
	}
	if (mode == 0) {
		unsigned int acc = read ? UHMM_ACCESS_WRITE : UHMM_ACCESS_READ;

		if ((off >> 3) & 1)
			acc = UHMM_ACCESS_READ | UHMM_ACCESS_WRITE;
		ret = uhmm_rcache_get(c->rc, p, len, acc, &region);
		if (ret) {
			*got = false;
			return ret;
		}
	}
	pthread_mutex_lock(&c->ring_lock);
	sqe = io_uring_get_sqe(&c->ring);
	REQUIRE(sqe);
	if (mode == 0) {
		if (read)
			io_uring_prep_read_fixed(sqe, t->fd, p,
						 (unsigned int)len, off,
						 (int)region->handle);
		else
			io_uring_prep_write_fixed(sqe, t->fd, p,
						  (unsigned int)len, off,
						  (int)region->handle);
	} else {
		ret = read ? uhmm_uring_prep_read_fixed(c->rc, sqe, t->fd, p,
							(unsigned int)len, off,
							&region)
			   : uhmm_uring_prep_write_fixed(c->rc, sqe, t->fd, p,
							 (unsigned int)len,
							 off, &region);
		if (ret) {
			*got = false;
			io_uring_prep_nop(sqe);
			region = NULL;
		}
	}
	REQUIRE(io_uring_submit(&c->ring) == 1);
	REQUIRE(io_uring_wait_cqe(&c->ring, &cqe) == 0);
	if (*got)
		ret = cqe->res;
	io_uring_cqe_seen(&c->ring, cqe);
	pthread_mutex_unlock(&c->ring_lock);
	if (region) {
		*known = reg_of(c, region, used);	/* still held */
		CHECK_EQ(uhmm_rcache_put(c->rc, region), 0);
	}
	return ret;
}

static void io_op(struct thr *t, uint64_t r0, uint64_t r1, uint64_t r2,
		  uint64_t r3)
{
	struct slot *s = &slots[r0 % (uint64_t)opt_slots];
	bool read = (r0 >> 8) & 1, got, ok, known;
	unsigned int mode = (unsigned int)((r0 >> 9) % 3);
	int ci = (int)((r0 >> 12) % (uint64_t)opt_caches);
	struct cache *c = &caches[ci];
	struct reginfo used = { 0 };
	size_t bo, len, maxl;
	unsigned long tb, ta;
	uint64_t off;
	const unsigned char poison = 0xee;
	int ret;

	pthread_mutex_lock(&s->lock);
	if (s->kind == K_EMPTY) {
		pthread_mutex_unlock(&s->lock);
		t->cnt[OP_IO_EMPTY]++;
		return;
	}
	if ((r1 & 3) == 0) {	/* the whole buffer */
		bo = 0;
		len = s->size < io_max ? s->size : io_max;
	} else {
		bo = (r1 >> 2) % s->size;
		maxl = s->size - bo < io_max ? s->size - bo : io_max;
		len = 1 + r2 % maxl;
		if (r2 & (1ull << 40))	/* often short ones */
			len = 1 + r2 % (maxl < 256 ? maxl : 256);
	}
	off = r3 % (FILE_SIZE - len + 1);
	if (read)
		memset(s->buf + bo, poison, len);
	else
		fill(s->buf + bo, len, ((uint64_t)t->idx << 48) ^ ++t->seq);
	tb = tick();
	ret = transfer(t, c, read, s->buf + bo, len, off, mode, &got, &used,
		       &known);
	ta = tick();
	if (!got || ret != (int)len) {
		fail_error(t, read ? "READ_FIXED" : "WRITE_FIXED", ret);
		if (!read)	/* the file may hold part of it */
			REQUIRE(pwrite(t->fd, t->shadow + off, len,
				       (off_t)off) == (ssize_t)len);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (read) {
		ok = !memcmp(s->buf + bo, t->shadow + off, len);
	} else {
		REQUIRE(pread(t->fd, t->tmp, len, (off_t)off) ==
			(ssize_t)len);
		ok = !memcmp(t->tmp, s->buf + bo, len);
		memcpy(t->shadow + off, s->buf + bo, len);
		if (!ok)	/* put the file right for later reads */
			REQUIRE(pwrite(t->fd, s->buf + bo, len, (off_t)off) ==
				(ssize_t)len);
	}
	hist_add(t, s, read ? OP_READ : OP_WRITE);
	if (ok) {
		__atomic_fetch_add(read ? &verified_reads : &verified_writes,
				   1, __ATOMIC_RELAXED);
		t->cnt[read ? OP_READ : OP_WRITE]++;
	} else {
		bool doc = s->disc_expired0 != ULONG_MAX &&
			   removes_expired() > s->disc_expired0;
		bool d1 = false, limit;
		size_t i = 0;
		const unsigned char *got_b = read ? (unsigned char *)s->buf + bo
						  : t->tmp;
		const unsigned char *want = read ? t->shadow + off
						 : (unsigned char *)s->buf + bo;
		unsigned long p = (unsigned long)s->buf + bo;
		unsigned long pgs[IO_MAX / 4096 + 2];
		unsigned int npg = 0;
		const char *why = "grace period";

		while (i < len && got_b[i] == want[i])
			i++;
		/* The stale pages: those where the bytes differ. */
		for (unsigned long a = pfloor(p); a < p + len; a += t_page) {
			unsigned long lo = a > p ? a : p;
			unsigned long hi = a + t_page < p + len ? a + t_page
								 : p + len;

			if (memcmp(got_b + (lo - p), want + (lo - p),
				   hi - lo)) {
				REQUIRE(npg < sizeof(pgs) / sizeof(pgs[0]));
				pgs[npg++] = a;
			}
		}
		if (!doc)
			d1 = d1_transfer(s, c, known ? &used : NULL, p, len, tb,
					 ta, pgs, npg, &why);
		limit = d1 && excuse_d1();
		if (doc) {
			__atomic_fetch_add(&doc_io, 1, __ATOMIC_RELAXED);
		} else if (d1) {
			__atomic_fetch_add(&disc_io, 1, __ATOMIC_RELAXED);
			if (limit)
				__atomic_fetch_add(&limit_io, 1,
						   __ATOMIC_RELAXED);
		} else {
			__atomic_fetch_add(&stale_io, 1, __ATOMIC_RELAXED);
		}
		if (report_ok(doc || limit ? REP_DOC : REP_IO)) {
			fprintf(stderr,
				"stress: %s %s slot %td (%s %p+%zu, %zu "
				"bytes) cache %d mode %u: byte %zu of %zu "
				"is %#x, want %#x%s\n",
				doc ? "documented-limit (REMOVE window closed "
				      "by the grace period):"
				: limit ? "documented limit (README Known "
					  "limits, \"Discards\" (1)):"
				: d1	? "STALE (transfer-discard, --strict or "
					  "--no-monitor):"
					: "STALE",
				read ? "READ_FIXED" : "WRITE_FIXED", s - slots,
				s->kind == K_MMAP ? "mmap" : "chunk", s->buf,
				bo, s->size, ci, mode, i, len, got_b[i],
				want[i],
				read && got_b[i] == poison
					? " (the poison: the read landed "
					  "elsewhere)"
					: "");
			fprintf(stderr,
				"  %u stale page(s) from %#lx; %s; class %s "
				"(%s); get between ticks %lu and %lu, slot "
				"mapping changed at tick %lu\n",
				npg, npg ? pgs[0] : 0ul,
				known ? "registration known" :
					"registration not returned",
				doc ? "grace" : d1 ? "transfer-discard"
						   : "transfers",
				why, tb, ta, s->map_tick);
			if (known)
				fprintf(stderr,
					"  registration %#lx+%lu: reg() "
					"between ticks %lu and %lu\n",
					used.addr, used.len, used.t0, used.t1);
			{
				unsigned int n = s->ndisc < DISC_HIST
							 ? s->ndisc
							 : DISC_HIST;

				fprintf(stderr, "  slot discards (oldest "
					"first, pages, ticks):");
				for (unsigned int k = s->ndisc - n;
				     k < s->ndisc; k++) {
					const struct disc *d =
						&s->disc[k % DISC_HIST];

					fprintf(stderr,
						" %s %#lx-%#lx %lu..%lu "
						"(zapped +%lu)",
						d->free_ ? "FREE" : "DONTNEED",
						d->lo, d->hi, d->t0, d->t1,
						removes_zapped() - d->zapped0);
				}
				fprintf(stderr, "\n");
			}
			hist_print(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- prefetch ---- */

static void prefetch_op(struct thr *t, uint64_t r0, uint64_t r1,
			uint64_t r2)
{
	struct slot *s = &slots[r0 % (uint64_t)opt_slots];
	struct cache *c = &caches[(r0 >> 12) % (uint64_t)opt_caches];
	unsigned int acc = 1 + (unsigned int)((r0 >> 20) % 3);
	struct uhmm_region *region;
	size_t bo, len;
	int ret;

	pthread_rwlock_rdlock(&s->maplock);
	if (s->kind == K_EMPTY) {
		pthread_rwlock_unlock(&s->maplock);
		t->cnt[OP_PREFETCH_EMPTY]++;
		return;
	}
	if (r1 & 1) {		/* whole: serves any later I/O on it */
		bo = 0;
		len = s->size < io_max ? s->size : io_max;
	} else {
		bo = (r1 >> 1) % s->size;
		len = 1 + r2 % (s->size - bo < io_max ? s->size - bo : io_max);
	}
	ret = uhmm_rcache_get(c->rc, s->buf + bo, len, acc, &region);
	if (ret) {
		fail_error(t, "prefetch get", ret);
	} else {
		if ((r2 >> 40) % 4 == 0) {	/* hold it a while */
			for (int i = 0; i < 20; i++)
				sched_yield();
			t->cnt[OP_PREFETCH_HOLD]++;
		}
		CHECK_EQ(uhmm_rcache_put(c->rc, region), 0);
		t->cnt[OP_PREFETCH]++;
	}
	pthread_rwlock_unlock(&s->maplock);
}

/* ---- the mirror thread ---- */

/* Under the slot's lock: every committed entry of its mirror is right. */
static void mir_check(struct thr *t, struct slot *s)
{
	struct smirror *m = &s->mir;
	unsigned long forks, checked = 0;
	bool hit[SM_N] = { false };

	if (!m->committed)
		return;
	/* Every change of the slot has returned (we hold its lock): a
	 * read_begin now waits for their invalidations. */
	(void)uhmm_interval_read_begin(&m->sub);
	if (pfn_visible) {
		ssize_t n = (ssize_t)(m->npages * 8);

		REQUIRE(pread(pagemap_fd, t->pm, (size_t)n,
			      (off_t)(m->start / t_page * 8)) == n);
	}
	forks = __atomic_load_n(&forks_done, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&m->lock);
	for (unsigned long i = 0; i < m->npages; i++) {
		unsigned long a = m->start + i * t_page;
		uint64_t cur = 0;
		int kind = -1;
		bool doc = false;	/* a limit the run cannot fail on */
		bool limit = false;	/* ... the discard one, see the top */

		if (!m->valid[i])
			continue;
		checked++;
		if (pfn_visible && (t->pm[i] >> 63))
			cur = t->pm[i] & ((1ull << 55) - 1);
		if (forks > m->c_forks) {
			kind = SM_FORK;
		} else if (m->pg[i] == PG_TOUCHED) {
			kind = SM_UNMAP;
		} else if (m->pg[i] == PG_UNKNOWN) {
			continue;
		} else if (pfn_visible && m->pfn[i] != cur) {
			if (__atomic_load_n(&s->discards, __ATOMIC_SEQ_CST) >
			    m->c_discards) {
				kind = SM_DISCARD;
				doc = !opt_no_monitor &&
				      removes_expired() > m->c_expired;
			} else {
				kind = m->c_forks_before ? SM_AFTER_FORK
							 : SM_OTHER;
				doc = !opt_no_monitor && vm_read() > m->c_vm;
			}
		} else {
			continue;
		}
		if (!doc) {
			__atomic_fetch_add(&stale_mir_kind[kind], 1,
					   __ATOMIC_RELAXED);
			if (!hit[kind])
				__atomic_fetch_add(&stale_mir_commits[kind], 1,
						   __ATOMIC_RELAXED);
			hit[kind] = true;
			limit = kind == SM_DISCARD && excuse_d1();
		}
		__atomic_fetch_add(doc     ? &doc_mirror
				   : limit ? &limit_mirror
					   : &stale_mirror,
				   1, __ATOMIC_RELAXED);
		if (report_ok(doc || limit ? REP_DOC : REP_MIR)) {
			fprintf(stderr,
				"stress: %s mirror entry of slot %td page %lu "
				"(%#lx) %s: committed PFN %#llx at %ums, "
				"pagemap now %#llx (entry %#llx); discards "
				"since commit %lu, REMOVE windows expired "
				"since %lu, forks since %lu\n",
				doc     ? "documented-limit"
				: limit ? "documented limit (README Known "
					  "limits, \"Discards\" (1)):"
					: "STALE",
				s - slots,
				i, a, sm_name[kind],
				(unsigned long long)m->pfn[i],
				(unsigned)m->c_time_ms,
				(unsigned long long)cur,
				(unsigned long long)t->pm[i],
				__atomic_load_n(&s->discards,
						__ATOMIC_SEQ_CST) -
					m->c_discards,
				removes_expired() - m->c_expired,
				forks - m->c_forks);
			fprintf(stderr, "  mirror callbacks since commit %lu, "
				"page's mapping registered: %d, slot is %s, "
				"checked at %ums\n",
				m->callbacks - m->c_callbacks,
				t_registered((void *)a),
				s->kind == K_MMAP ? "an mmap"
				: s->kind == K_MALLOC ? "a chunk" : "empty",
				ms_now());
			hist_print(s);
		}
	}
	pthread_mutex_unlock(&m->lock);
	__atomic_fetch_add(&mirror_pages_checked, checked, __ATOMIC_RELAXED);
	t->cnt[OP_MIR_CHECK]++;
}

static void mir_remove(struct smirror *m)
{
	if (m->inserted)
		CHECK_EQ(uhmm_interval_notifier_remove(&m->sub), 0);
	m->inserted = false;
	m->committed = false;
}

static void mirror_op(struct thr *t, uint64_t r0, uint64_t r1)
{
	struct slot *s = &slots[r0 % (uint64_t)opt_slots];
	struct smirror *m = &s->mir;
	unsigned long inc, end;
	struct uhmm_range range;
	int ret;

	pthread_mutex_lock(&s->lock);
	mir_check(t, s);
	if (s->kind == K_EMPTY) {
		mir_remove(m);
		pthread_mutex_unlock(&s->lock);
		t->cnt[OP_MIR_SKIP]++;
		return;
	}
	end = m->start + m->npages * t_page;
	if (!m->inserted || m->incarnation != s->incarnation ||
	    m->start < s->pstart || end > s->pend || (r0 >> 20) % 8 == 0) {
		unsigned long n = (s->pend - s->pstart) / t_page, first = 0;

		mir_remove(m);
		if ((r1 & 3) == 0) {	/* part of it */
			first = (r1 >> 2) % n;
			n = 1 + (r1 >> 24) % (n - first);
		}
		pthread_mutex_lock(&m->lock);
		m->start = s->pstart + first * t_page;
		m->npages = n;
		memset(m->valid, 0, sizeof(m->valid));
		pthread_mutex_unlock(&m->lock);
		ret = uhmm_interval_notifier_insert(&m->sub, mm, m->start,
						    n * t_page, &mir_ops);
		if (ret) {
			fail_error(t, "mirror insert", ret);
			pthread_mutex_unlock(&s->lock);
			return;
		}
		m->inserted = true;
		m->incarnation = s->incarnation;
		t->cnt[OP_MIR_INSERT]++;
	}
	inc = s->incarnation;
	pthread_mutex_unlock(&s->lock);

	/* Fault racing discards (and other slots' changes), not this
	 * slot's mapping changes. */
	progress(t, "mirror fault");
	pthread_rwlock_rdlock(&s->maplock);
	end = m->start + m->npages * t_page;
	if (s->incarnation != inc || m->start < s->pstart || end > s->pend) {
		pthread_rwlock_unlock(&s->maplock);
		t->cnt[OP_MIR_SKIP]++;
		return;
	}
	m->c_discards = __atomic_load_n(&s->discards, __ATOMIC_SEQ_CST);
	m->c_expired = removes_expired();
	m->c_vm = __atomic_load_n(&vm_moves, __ATOMIC_RELAXED);
	m->c_forks_before = __atomic_load_n(&forks_done, __ATOMIC_SEQ_CST);
	range = (struct uhmm_range){
		.notifier = &m->sub,
		.start = m->start,
		.end = end,
		.pfns = t->pfns,
		.default_flags = UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE,
		.flags = pfn_visible ? UHMM_RANGE_PFN : 0,
	};
	ret = uhmm_range_fault_lock(&range, &m->lock, 0);
	if (ret) {
		pthread_rwlock_unlock(&s->maplock);
		fail_error(t, "uhmm_range_fault_lock", ret);
		return;
	}
	for (unsigned long i = 0; i < m->npages; i++) {
		uint64_t f = t->pfns[i];

		if (!(f & UHMM_PFN_VALID) || !(f & UHMM_PFN_WRITE) ||
		    (f & UHMM_PFN_ERROR)) {
			if (!__atomic_fetch_add(&bad_output, 1,
						__ATOMIC_RELAXED))
				fprintf(stderr, "stress: range fault: page "
					"%lu of slot %td is %#llx after "
					"REQ_FAULT|REQ_WRITE\n", i, s - slots,
					(unsigned long long)f);
			m->valid[i] = false;
			continue;
		}
		m->valid[i] = true;
		m->pfn[i] = f & UHMM_PFN_PFN_MASK;
		m->pg[i] = PG_CLEAN;
	}
	m->c_forks = __atomic_load_n(&forks_started, __ATOMIC_SEQ_CST);
	m->c_callbacks = m->callbacks;
	m->c_time_ms = ms_now();
	pthread_mutex_unlock(&m->lock);
	pthread_rwlock_unlock(&s->maplock);
	m->committed = true;
	__atomic_fetch_add(&mirror_commits, 1, __ATOMIC_RELAXED);
	t->cnt[OP_MIR_FAULT]++;
}

/* ---- threads ---- */

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	char name[16];

	snprintf(name, sizeof(name), "st-%s%d", role_name[t->role], t->idx);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		uint64_t r0 = rnd(&t->rng), r1 = rnd(&t->rng),
			 r2 = rnd(&t->rng), r3 = rnd(&t->rng);

		progress(t, role_name[t->role]);
		if (t->role == R_PREFETCH) {
			if (stopping())
				break;
			prefetch_op(t, r0, r1, r2);
			continue;
		}
		if (!take_op())
			break;
		switch (t->role) {
		case R_MUTATE:
			mutate(t, r0, r1, r2, r3);
			break;
		case R_IO:
			io_op(t, r0, r1, r2, r3);
			break;
		default:
			mirror_op(t, r0, r1);
			break;
		}
	}
	progress(t, "done");
	return NULL;
}

static struct thr *add_thread(enum role role)
{
	struct thr *t;
	uint64_t x;

	REQUIRE(nthr < MAX_THREADS);
	t = &thr[nthr];
	t->idx = nthr++;
	t->role = role;
	x = opt_seed + (uint64_t)t->idx;
	t->rng = rnd(&x);
	return t;
}

static void setup_io(struct thr *t)
{
	char path[] = "/tmp/uhmm-stress-XXXXXX";
	uint64_t x = t->rng ^ 0xf11e;

	t->fd = mkstemp(path);
	REQUIRE(t->fd >= 0);
	unlink(path);
	t->shadow = malloc(FILE_SIZE);
	t->tmp = malloc(IO_MAX);
	REQUIRE(t->shadow && t->tmp);
	fill((char *)t->shadow, FILE_SIZE, rnd(&x));
	REQUIRE(pwrite(t->fd, t->shadow, FILE_SIZE, 0) == FILE_SIZE);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--seconds S] [--ops N] [--seed X] "
		"[--threads-mutate N] [--threads-io N] "
		"[--threads-prefetch N] [--threads-mirror 0|1] [--slots N] "
		"[--caches N] [--no-fork] [--no-monitor] "
		"[--hang-timeout S] [--strict] [--verbose]\n",
		argv0);
	exit(T_FAIL);
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 'S' },
		{ "threads-mutate", required_argument, NULL, 'm' },
		{ "threads-io", required_argument, NULL, 'i' },
		{ "threads-prefetch", required_argument, NULL, 'p' },
		{ "threads-mirror", required_argument, NULL, 'r' },
		{ "slots", required_argument, NULL, 'n' },
		{ "caches", required_argument, NULL, 'c' },
		{ "no-fork", no_argument, NULL, 'F' },
		{ "no-monitor", no_argument, NULL, 'M' },
		{ "hang-timeout", required_argument, NULL, 'h' },
		{ "strict", no_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	bool seeded = false;
	int c;

	opt_seconds = 10 * t_scale();
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': opt_seconds = atof(optarg); break;
		case 'o': opt_ops = atol(optarg); break;
		case 'S':
			opt_seed = strtoull(optarg, NULL, 0);
			seeded = true;
			break;
		case 'm': opt_mutate = atoi(optarg); break;
		case 'i': opt_io = atoi(optarg); break;
		case 'p': opt_prefetch = atoi(optarg); break;
		case 'r': opt_mirror = atoi(optarg); break;
		case 'n': opt_slots = atoi(optarg); break;
		case 'c': opt_caches = atoi(optarg); break;
		case 'F': opt_fork = false; break;
		case 'M': opt_no_monitor = true; break;
		case 'h': opt_hang = atof(optarg); break;
		case 'T': opt_strict = true; break;
		case 'v': opt_verbose = true; break;
		default: usage(argv[0]);
		}
	}
	if (optind != argc || opt_seconds <= 0 || opt_ops <= 0 ||
	    opt_slots < 1 || opt_slots > MAX_SLOTS || opt_caches < 1 ||
	    opt_caches > MAX_CACHES || opt_mutate < 0 || opt_io < 0 ||
	    opt_prefetch < 0 || opt_mirror < 0 || opt_mirror > 1 ||
	    opt_mutate + opt_io + opt_prefetch + opt_mirror > MAX_THREADS ||
	    opt_hang <= 0)
		usage(argv[0]);
	if (!seeded) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		opt_seed = (uint64_t)ts.tv_sec * 1000003u ^
			   (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
	}
}

static bool pfns_visible(void)
{
	char *p = mmap(NULL, t_page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e = 0;

	REQUIRE(p != MAP_FAILED);
	p[0] = 1;
	if (pread(pagemap_fd, &e, 8, (off_t)((unsigned long)p / t_page * 8)) !=
	    8)
		e = 0;
	munmap(p, t_page);
	return (e >> 63) && (e & ((1ull << 55) - 1));
}

/* Print every thread's state and exit: a thread made no progress. */
static void hang(int who, double secs)
{
	printf("stress: FAILED seed=%llu: thread %d (%s) made no progress "
	       "for %.0f s (in %s)\n",
	       (unsigned long long)opt_seed, who, role_name[thr[who].role],
	       secs, __atomic_load_n(&thr[who].doing, __ATOMIC_RELAXED));
	for (int i = 0; i < nthr; i++)
		printf("  thread %d %s: %s, last progress %.1f s ago\n", i,
		       role_name[thr[i].role],
		       __atomic_load_n(&thr[i].doing, __ATOMIC_RELAXED),
		       (double)(now_ns() - __atomic_load_n(
						   &thr[i].progress_ns,
						   __ATOMIC_RELAXED)) /
			       1e9);
	fflush(stdout);
	_exit(T_FAIL);
}

/* Every class of stale entries, with its count and whether it fails the
 * run. With --no-monitor none is excused (nothing is promised) and
 * finding them is what the self-check wants. */
static void print_classes(void)
{
	static const char *const cls[SM_N] = {
		[SM_FORK] = "fork", [SM_UNMAP] = "unmap",
		[SM_DISCARD] = "discard", [SM_AFTER_FORK] = "after-fork",
		[SM_OTHER] = "other",
	};
	const char *bad = opt_no_monitor ? "found (no monitor: counted, none "
					   "excused)"
					 : "FAIL";
	const char *lim = D1_LABEL ", a failure with --strict";

	printf("stress: classification of stale entries (seed=%llu):\n"
	       "  %-16s %7s %7s  %s\n",
	       (unsigned long long)opt_seed, "class", "entries", "commits",
	       "verdict");
	printf("  %-16s %7lu %7s  %s; %s\n", "transfers", stale_io, "-",
	       stale_io ? bad : "ok", io_name[IO_OTHER]);
	printf("  %-16s %7lu %7s  %s; %s\n", "transfer-discard", disc_io, "-",
	       !disc_io ? "ok" : excuse_d1() ? lim : bad,
	       io_name[IO_DISCARD]);
	for (int k = 0; k < SM_N; k++)
		printf("  %-16s %7lu %7lu  %s; %s\n", cls[k],
		       stale_mir_kind[k], stale_mir_commits[k],
		       !stale_mir_kind[k]			  ? "ok"
		       : k == SM_DISCARD && excuse_d1() ? lim
							  : bad,
		       sm_name[k]);
	printf("  %-16s %7lu %7s  documented limit (README Known limits, "
	       "\"Discards\" (2)); REMOVE window closed by the grace period "
	       "(and %lu transfers)\n",
	       "grace", doc_mirror, "-", doc_io);
}

int main(int argc, char **argv)
{
	struct uhmm_rcache_config cfg = { .max_regions = 32,
					  .max_bytes = 8u << 20 };
	unsigned long long start, end;
	unsigned long cnt[OP_N] = { 0 }, total = 0;
	struct uhmm_rcache_stats tot = { 0 };
	unsigned long callbacks = 0;
	bool failed;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parse(argc, argv);
	/* Chunks of 256 KiB and up are mmap()ed and munmap()ed by free(),
	 * whatever was freed before (no dynamic threshold). */
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
#ifdef S_TSAN
	if (opt_fork)
		printf("stress: fork disabled: ThreadSanitizer cannot fork a "
		       "threaded process\n");
	opt_fork = false;
#endif
	if (opt_no_monitor) {
		ret = uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR);
		REQUIRE(ret == 0);
		t_page = (unsigned long)sysconf(_SC_PAGESIZE);
	} else {
		mm = t_open();
	}
	REQUIRE(t_page >= 4096);
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	pfn_visible = pagemap_fd >= 0 && pfns_visible();
	{	/* io_uring at all? Skip here, before any thread. */
		struct io_uring ring;

		t_ring(&ring, 4);
		io_uring_queue_exit(&ring);
	}
	if (geteuid() != 0) {	/* pinned bytes count against MEMLOCK */
		struct rlimit rl;

		if (!getrlimit(RLIMIT_MEMLOCK, &rl) &&
		    rl.rlim_cur != RLIM_INFINITY) {
			cfg.max_bytes = rl.rlim_cur / (4 * (size_t)opt_caches);
			io_max = cfg.max_bytes / 4 > t_page ? cfg.max_bytes / 4
							    : t_page;
			if (io_max > IO_MAX)
				io_max = IO_MAX;
		}
	}
	for (int i = 0; i < opt_caches; i++) {
		struct cache *c = &caches[i];

		pthread_mutex_init(&c->ring_lock, NULL);
		pthread_mutex_init(&c->reg_lock, NULL);
		t_ring(&c->ring, 8);
		c->dev = t_uring_dev(&c->ring, DEV_SLOTS);
		REQUIRE(uhmm_rcache_create(&c->rc, mm, &rec_ops, c->dev,
					   &cfg) == 0);
	}
	for (int i = 0; i < opt_slots; i++) {
		pthread_rwlockattr_t a;

		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(
			&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_mutex_init(&slots[i].lock, NULL);
		pthread_rwlock_init(&slots[i].maplock, &a);
		pthread_rwlockattr_destroy(&a);
		pthread_mutex_init(&slots[i].mir.lock, NULL);
		slots[i].disc_expired0 = ULONG_MAX;
	}

	printf("stress: seed=%llu seconds=%g ops=%ld threads: mutate=%d "
	       "io=%d prefetch=%d mirror=%d; slots=%d caches=%d fork=%s "
	       "monitor=%s pfns=%s scale=%g%s\n",
	       (unsigned long long)opt_seed, opt_seconds,
	       opt_ops == LONG_MAX ? -1 : opt_ops, opt_mutate, opt_io,
	       opt_prefetch, opt_mirror, opt_slots, opt_caches,
	       opt_fork ? "on" : "off",
	       opt_no_monitor ? "OFF (self-check: stale transfers expected)"
			      : "on",
	       pfn_visible ? "visible" : "hidden (mirror checks unmaps and "
					 "forks only)",
	       t_scale(),
	       opt_strict ? " strict (discard and transfer-discard entries "
			    "fail)"
			  : "");

	for (int i = 0; i < opt_mutate; i++)
		add_thread(R_MUTATE);
	for (int i = 0; i < opt_io; i++)
		setup_io(add_thread(R_IO));
	for (int i = 0; i < opt_prefetch; i++)
		add_thread(R_PREFETCH);
	for (int i = 0; i < opt_mirror; i++) {
		struct thr *t = add_thread(R_MIRROR);

		t->pfns = calloc(MAXP, sizeof(*t->pfns));
		t->pm = calloc(MAXP, sizeof(*t->pm));
		REQUIRE(t->pfns && t->pm);
	}
	__atomic_store_n(&vm_moves, vm_read(), __ATOMIC_RELAXED);
	start = t0_ns = now_ns();
	for (int i = 0; i < nthr; i++) {
		progress(&thr[i], "starting");
		REQUIRE(pthread_create(&thr[i].th, NULL, thread_main,
				       &thr[i]) == 0);
	}

	/* Watch: time, ops, progress. */
	for (;;) {
		unsigned long long now;
		bool counted_left = false;

		usleep(100000);
		now = now_ns();
		__atomic_store_n(&vm_moves, vm_read(), __ATOMIC_RELAXED);
		if ((double)(now - start) / 1e9 >= opt_seconds ||
		    __atomic_load_n(&ops_started, __ATOMIC_RELAXED) >= opt_ops)
			break;
		for (int i = 0; i < nthr; i++) {
			unsigned long long p = __atomic_load_n(
				&thr[i].progress_ns, __ATOMIC_RELAXED);
			double idle = p < now ? (double)(now - p) / 1e9 : 0;

			if (thr[i].role != R_PREFETCH &&
			    strcmp(__atomic_load_n(&thr[i].doing,
						   __ATOMIC_RELAXED),
				   "done"))
				counted_left = true;
			if (idle > opt_hang &&
			    strcmp(__atomic_load_n(&thr[i].doing,
						   __ATOMIC_RELAXED),
				   "done"))
				hang(i, idle);
		}
		if (!counted_left && opt_mutate + opt_io + opt_mirror > 0)
			break;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < nthr; i++) {
		/* A bounded join: a hung thread is reported, not waited. */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)opt_hang;
		ret = pthread_timedjoin_np(thr[i].th, NULL, &ts);
		if (ret == ETIMEDOUT)
			hang(i, opt_hang);
		REQUIRE(ret == 0);
	}
	end = now_ns();

	/* A last look at every mirror, then teardown. */
	if (opt_mirror) {
		struct thr *mt = &thr[nthr - 1];

		for (int i = 0; i < opt_slots; i++) {
			pthread_mutex_lock(&slots[i].lock);
			mir_check(mt, &slots[i]);
			pthread_mutex_unlock(&slots[i].lock);
		}
	}
	for (int i = 0; i < opt_slots; i++) {
		struct slot *s = &slots[i];

		mir_remove(&s->mir);
		callbacks += s->mir.callbacks;
		if (s->kind == K_MMAP)
			munmap(s->buf, s->size);
		else if (s->kind == K_MALLOC)
			free(s->buf);
	}
	for (int i = 0; i < opt_caches; i++) {
		struct uhmm_rcache_stats st;

		REQUIRE(uhmm_rcache_stats(caches[i].rc, &st) == 0);
		tot.hits += st.hits;
		tot.misses += st.misses;
		tot.invalidations += st.invalidations;
		tot.evictions += st.evictions;
		tot.deregistrations += st.deregistrations;
		CHECK_EQ(uhmm_rcache_destroy(caches[i].rc), 0);
		CHECK_EQ(uhmm_uring_dev_close(caches[i].dev), 0);
		io_uring_queue_exit(&caches[i].ring);
	}
	for (int i = 0; i < nthr; i++) {
		for (int k = 0; k < OP_N; k++)
			cnt[k] += thr[i].cnt[k];
		if (thr[i].role == R_IO) {
			close(thr[i].fd);
			free(thr[i].shadow);
			free(thr[i].tmp);
		}
		free(thr[i].pfns);
		free(thr[i].pm);
	}

	printf("stress: %.1f s, %ld counted ops; done per kind:\n",
	       (double)(end - start) / 1e9,
	       __atomic_load_n(&ops_started, __ATOMIC_RELAXED) > opt_ops
		       ? opt_ops
		       : __atomic_load_n(&ops_started, __ATOMIC_RELAXED));
	for (int k = 0; k < OP_N; k++) {
		if (k < OP_READ)
			total += cnt[k];
		printf("  %-20s %lu\n", op_name[k], cnt[k]);
	}
	printf("stress: %lu memory changes, %lu forks\n", total,
	       __atomic_load_n(&forks_done, __ATOMIC_RELAXED));
	printf("stress: cache: %lu hits, %lu misses, %lu invalidations, %lu "
	       "evictions, %lu deregistrations\n",
	       tot.hits, tot.misses, tot.invalidations, tot.evictions,
	       tot.deregistrations);
	if (src())
		printf("stress: event source: %lu events, REMOVE windows "
		       "closed on the zap %lu, at the grace period %lu; "
		       "callback bugs %lu, arm errors %lu\n",
		       LOAD(src()->events), LOAD(src()->removes_zapped),
		       LOAD(src()->removes_expired),
		       LOAD(src()->callback_bugs), LOAD(src()->arm_errors));
	printf("stress: transfers verified: %lu reads, %lu writes; stale "
	       "transfers %lu; documented-limit %lu (grace period %lu, "
	       "\"Discards\" (1) %lu)\n",
	       verified_reads, verified_writes,
	       stale_io + disc_io - limit_io, doc_io + limit_io, doc_io,
	       limit_io);
	printf("stress: mirror: %lu commits, %lu invalidation callbacks, %lu "
	       "entries checked; stale entries %lu; documented-limit %lu "
	       "(grace period %lu, \"Discards\" (1) %lu)\n",
	       mirror_commits, callbacks, mirror_pages_checked, stale_mirror,
	       doc_mirror + limit_mirror, doc_mirror, limit_mirror);
	printf("stress: errors %lu, bad range-fault output %lu, fork child "
	       "writes seen by the parent %lu\n",
	       errors, bad_output, fork_cow_bad);

	REQUIRE(uhmm_mm_close(mm) == 0);
	if (pagemap_fd >= 0)
		close(pagemap_fd);

	print_classes();
	if (opt_no_monitor) {
		/* Self-check: with nothing invalidating, staleness must be
		 * seen; nothing is excused. Errors still count. */
		bool seen = stale_io + disc_io + stale_mirror + limit_mirror > 0;

		printf("stress: self-check (no monitor): %s: %lu stale "
		       "transfers (%lu of the transfer-discard class), %lu "
		       "stale mirror entries detected (seed=%llu)\n",
		       seen ? "PASSED" : "FAILED", stale_io + disc_io, disc_io,
		       stale_mirror + limit_mirror,
		       (unsigned long long)opt_seed);
		return seen && !t_failed ? T_PASS : T_FAIL;
	}
	failed = false;
#define VERDICT(cond, what)                                                   \
	do {                                                                   \
		if (cond) {                                                    \
			printf("stress: FAILED seed=%llu: %s\n",               \
			       (unsigned long long)opt_seed, what);            \
			failed = true;                                         \
		}                                                              \
	} while (0)
	{
		char what[300];

		snprintf(what, sizeof(what), "%lu stale transfers: %s",
			 stale_io, io_name[IO_OTHER]);
		VERDICT(stale_io, what);
		if (excuse_d1()) {
			if (disc_io)
				printf("stress: documented limit seed=%llu: "
				       "%lu stale transfers: %s - %s "
				       "(--strict fails the run on them)\n",
				       (unsigned long long)opt_seed, disc_io,
				       io_name[IO_DISCARD], D1_LABEL);
		} else {
			snprintf(what, sizeof(what),
				 "%lu stale transfers: %s (%s; failing with "
				 "--strict)", disc_io, io_name[IO_DISCARD],
				 D1_LABEL);
			VERDICT(disc_io, what);
		}
	}
	for (int k = 0; k < SM_N; k++) {
		char what[300];

		if (k == SM_DISCARD && excuse_d1()) {
			if (stale_mir_kind[k])
				printf("stress: documented limit seed=%llu: "
				       "%lu stale mirror entries (of %lu "
				       "commits): %s - %s (--strict fails the "
				       "run on them)\n",
				       (unsigned long long)opt_seed,
				       stale_mir_kind[k], stale_mir_commits[k],
				       sm_name[k], D1_LABEL);
			continue;
		}
		snprintf(what, sizeof(what),
			 "%lu stale mirror entries (of %lu commits): %s%s",
			 stale_mir_kind[k], stale_mir_commits[k], sm_name[k],
			 k == SM_DISCARD ? " (" D1_LABEL "; failing with "
					   "--strict)"
					 : "");
		VERDICT(stale_mir_kind[k], what);
	}
	VERDICT(errors, "errors from uhmm or transfers");
	VERDICT(bad_output, "range fault output");
	VERDICT(fork_cow_bad, "fork isolation");
	VERDICT(t_failed, "CHECK (see above)");
	if (!failed) {
		if (limit_io + limit_mirror)
			printf("stress: PASSED seed=%llu (with %lu stale "
			       "transfers and %lu stale mirror entries counted "
			       "as a %s)\n",
			       (unsigned long long)opt_seed, limit_io,
			       limit_mirror, D1_LABEL);
		else
			printf("stress: PASSED seed=%llu\n",
			       (unsigned long long)opt_seed);
	}
	return failed ? T_FAIL : T_PASS;
}
