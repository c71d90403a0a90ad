/* SPDX-License-Identifier: MIT */
/*
 * Stress of the registration cache: gets and puts over thousands of
 * buffers in several caches, from several threads, while other threads
 * replace and discard the memory (so regions are invalidated) and small
 * limits make the caches evict all the time. No get may return a region
 * that was already invalid when the get began; holder counts must balance
 * (destroy returns 0, every device ends with no registration).
 *
 * Memory: NBUF buffers of 1..MAXP pages in NMAP big anonymous mappings.
 * Every page carries a stamp (a uint32 at its start) and two counters,
 * started[p] and done[p]: the id of its last change that began, and that
 * returned. Ids come from one clock, so a page's changes have increasing
 * ids. A page has one changer, which does for change n: started[p] = n;
 * the system call; done[p] = n; then writes n into the page, unless the
 * call brought the stamp along (a pre-stamped mapping moved in).
 *
 * Changers (NCHANGER, each owning half of the buffers, at one change per
 * GETS_PER_CHANGE gets): mmap(MAP_FIXED) over all or part of a buffer,
 * MADV_DONTNEED of all or part, mremap(MREMAP_FIXED) of a new pre-stamped
 * mapping over all or part (atomic replaces, never a hole: the pages can
 * be read at any time), and now and then a raw syscall(SYS_munmap) + mmap
 * of a whole buffer under the buffer's write lock (a get holds the locks
 * of its buffers for reading while it runs: no reg ever reads a hole).
 * What maps over a buffer goes through syscall(), so that ThreadSanitizer
 * does not take a replaced page for a plain write racing atomic reads.
 *
 * Devices (one per cache) "pin" by reading: reg reads, per page, done[p]
 * (dn), the clock (cb), the stamp (v) and started[p] (st), in that order,
 * and keeps them with the handle. They are lock-free (reg and dereg may
 * run in any threads at once), sometimes yield in reg (a slow pin, for
 * changes to land in), fail one reg in REG_FAIL_EVERY with -EIO (the
 * cache's error paths, under the same load), count regs and deregs, and
 * flag a dereg of an unknown, failed or dead handle.
 *
 * The check, with no false positive. A getter reads K = done[p] of each
 * page before the get: change K had returned when the get began, so the
 * get must not return a registration of the page as it was before K.
 * The registration saw the page as some change J left it:
 *   - v > 0: J = v exactly (a stamp is written only into the memory its
 *     own change created, and the page's next change removes it);
 *   - v = 0 (a change not stamped yet: new anonymous memory, or pages
 *     discarded): J <= st, since change J had begun before st was read.
 * So s = (v ? v : st) >= J, and s < K proves J < K: a stale get. K is not
 * read from the stamps in memory: a mapping moved in by mremap() shows its
 * stamp before the call has returned.
 *
 * Counted apart and printed, not failed (README "Known limits", Discards
 * (1) and (2): the kernel lets a discarding thread go before it zaps): a
 * stale page with v > 0 whose next change is an MADV_DONTNEED that had
 * begun before reg read the page (id <= cb). Nothing else can excuse one:
 * a change that began after the read opened its window after the reg's
 * read_begin, so it collided with the reg or killed the region (see
 * excused()). The test cannot tell an excused case from a missed
 * collision with a discard already running; UHMM_RCACHE_STRESS_STRICT=1
 * fails on them too.
 *
 * Negative control: the same workload, briefly, through a naive cache of
 * the test's own (a hash of registrations never invalidated). The checker
 * must find stale gets there, or it is blind and the test fails.
 *
 * Getters (NGETTER, OPS ops each times UHMM_TEST_SCALE): gets of random
 * buffers (mostly HOT ones, some just changed) in random caches, of all
 * or any part of a buffer, for read, write or both; most put at once,
 * some held for a while, some handed off to another thread to put, some
 * taken with uhmm_rcache_get_many() (now and then one buffer twice); they
 * read the stats now and then. A region must cover its request,
 * lie in the buffer, carry a live handle of exactly its range, and still
 * be registered when it is put. At the end: destroy returns -EBUSY while
 * a region is held and 0 after, the devices are empty and balanced, and
 * the stats agree with the gets and the devices. UHMM_RCACHE_STRESS_SEED
 * sets the seed (the interleaving is the scheduler's).
 */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "rcache.h"

#define NBUF 4096		/* buffers */
#define NMAP 4			/* big mappings they live in */
#define MAXP 4			/* pages per buffer, at most */
#define NCACHE 3
#define NGETTER 3
#define NCHANGER 2
#define HELD_MAX 12		/* regions a getter holds at most */
#define MANY_MAX 6		/* buffers in one get_many */
#define QCAP 64			/* the hand-off queue */
#define HOT 256			/* buffers most gets go to */
#define OPS 60000		/* per getter, at scale 1 */
#define CONTROL_DIV 10		/* the control runs OPS / CONTROL_DIV */
#define GETS_PER_CHANGE 6	/* changers keep at this ratio */
#define HIST 16			/* changes remembered per page */
#define REC_MIN (1UL << 20)	/* registrations per device and run, at least */
#define NHASH 4096		/* the naive cache's buckets */
#define RECENT 64		/* buffers just changed, remembered */
#define REG_FAIL_EVERY 64	/* a reg in so many fails with -EIO */
#define STATS_EVERY 64		/* a getter reads the stats */

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_SEQ_CST)

enum kind { K_NONE, K_INIT, K_MMAP, K_DONTNEED, K_MREMAP, K_HOLE, K_NKINDS };
static const char *const kind_name[] = {
	"none", "initial", "mmap(MAP_FIXED)", "MADV_DONTNEED",
	"mremap(MREMAP_FIXED)", "munmap+mmap",
};

/* ---- memory ---- */

struct buf {
	char *addr;
	unsigned int npages;
	unsigned int pg0;		/* its first page's index */
	int lost;			/* atomic: its address was taken */
	pthread_rwlock_t lock;		/* write: a hole is being made */
};

static struct uhmm_mm *mm;
static struct buf bufs[NBUF];
static char *maps[NMAP];
static size_t map_len[NMAP];
static unsigned int map_pg0[NMAP];
static unsigned int npages;
static unsigned int *page_buf;		/* page -> buffer */
static uint32_t *started, *done;	/* atomic, by page */
static uint64_t *hist;			/* atomic, HIST a page: id<<8 | kind */
static unsigned int *hist_n;		/* by page; its changer only */
static uint32_t change_clock;		/* atomic: last change id */
static unsigned long rec_cap;		/* handles per device */
static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;
static int recent[RECENT];		/* atomic: buffers just changed */
static unsigned int recent_n;		/* atomic: changes put there */
#define HIST_PENDING 0xffu		/* an id being taken */

static uint32_t *stamp_of(char *page)
{
	return (uint32_t *)page;
}

/* The page index of address a, or -1 outside the buffers. */
static long page_of(unsigned long a)
{
	for (int m = 0; m < NMAP; m++)
		if (a >= (unsigned long)maps[m] &&
		    a < (unsigned long)maps[m] + map_len[m])
			return map_pg0[m] +
			       (long)((a - (unsigned long)maps[m]) / t_page);
	return -1;
}

/* Kind of change id on page p (K_NONE if forgotten). */
static enum kind hist_kind(unsigned int p, uint32_t id)
{
	for (int k = 0; k < HIST; k++) {
		uint64_t e;

		while ((e = LOAD(hist[p * HIST + k])) == HIST_PENDING)
			sched_yield();
		if (e >> 8 == id)
			return (enum kind)(e & 0xff);
	}
	return K_NONE;
}

/* The first change of page p after id j that began by clock cb, if any;
 * its id in *next. */
static enum kind hist_next(unsigned int p, uint32_t j, uint32_t cb,
			   uint32_t *next)
{
	uint64_t best = 0;

	for (int k = 0; k < HIST; k++) {
		uint64_t e;

		/* Marked before its id was taken: an id <= cb is filled. */
		while ((e = LOAD(hist[p * HIST + k])) == HIST_PENDING)
			sched_yield();
		if (e >> 8 > j && e >> 8 <= cb && (!best || e < best))
			best = e;
	}
	*next = (uint32_t)(best >> 8);
	return best ? (enum kind)(best & 0xff) : K_NONE;
}

/* ---- the devices ---- */

enum { REC_FREE, REC_LIVE, REC_DEAD };

struct rec {
	unsigned long addr, len;	/* set by reg, before it returns */
	unsigned int access, npages;
	int state;			/* atomic */
	uint32_t v[MAXP], st[MAXP], dn[MAXP], cb[MAXP];
};

struct sdev {
	struct rec *recs;		/* rec_cap, by handle */
	unsigned long next;		/* atomic: handles taken */
	unsigned long regs, reg_faults, deregs, bad_deregs, errors; /* atomic */
	unsigned long injected;		/* atomic: regs failed on purpose */
	long live, max_live, live_bytes; /* atomic */
};

/* The buffers this thread holds for reading now (a get in progress). */
static __thread int tls_locked[MANY_MAX];
static __thread int tls_nlocked;

static bool locked_here(unsigned int b)
{
	for (int i = 0; i < tls_nlocked; i++)
		if (tls_locked[i] == (int)b)
			return true;
	return false;
}

/* The stamp at page a; through the kernel (a hole is -EFAULT, not a
 * crash) unless this thread holds the buffer, which then has no hole. */
static bool read_stamp(char *a, bool direct, uint32_t *v)
{
	struct iovec local = { v, sizeof(*v) }, remote = { a, sizeof(*v) };

	if (direct) {
		*v = LOAD(*stamp_of(a));
		return true;
	}
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) ==
	       (ssize_t)sizeof(*v);
}

static int dev_bad(struct sdev *d, const char *what, unsigned long a,
		   size_t len)
{
	if (ADD(d->errors, 1) <= 5)
		fprintf(stderr, "device: %s (%#lx, %zu)\n", what, a, len);
	return -EINVAL;
}

static int sdev_reg(void *dv, void *addr, size_t len, unsigned int access,
		    uint64_t *handle)
{
	struct sdev *d = dv;
	unsigned long a = (unsigned long)addr, h;
	unsigned int np = (unsigned int)(len / t_page), b;
	long p0, pl;
	struct rec *r;
	bool direct;
	long live, max;

	if (a % t_page || len % t_page || !np || np > MAXP || !access ||
	    (access & ~(UHMM_ACCESS_READ | UHMM_ACCESS_WRITE)))
		return dev_bad(d, "reg of a bad range or access", a, len);
	p0 = page_of(a);
	pl = page_of(a + len - 1);
	if (p0 < 0 || pl != p0 + np - 1 ||
	    page_buf[p0] != page_buf[pl])
		return dev_bad(d, "reg outside one buffer", a, len);
	b = page_buf[p0];
	h = ADD(d->next, 1) - 1;
	if (h >= rec_cap)
		return dev_bad(d, "out of handles", a, len);
	r = &d->recs[h];
	if (h % REG_FAIL_EVERY == REG_FAIL_EVERY - 1) {
		/* The cache's error paths, under the same load. The handle
		 * stays REC_FREE: a dereg of it is a bad one. */
		ADD(d->injected, 1);
		return -EIO;
	}
	direct = locked_here(b);
	for (unsigned int i = 0; i < np; i++) {
		unsigned int p = (unsigned int)p0 + i;

		r->dn[i] = LOAD(done[p]);
		r->cb[i] = LOAD(change_clock);
		if (!read_stamp((char *)addr + i * t_page, direct, &r->v[i])) {
			ADD(d->reg_faults, 1);
			return -EFAULT;	/* a hole: what a pinning device does */
		}
		r->st[i] = LOAD(started[p]);
	}
	/* A device takes its time to pin: let a change land meanwhile. */
	if (h % 4 == 0)
		sched_yield();
	r->addr = a;
	r->len = len;
	r->access = access;
	r->npages = np;
	STORE(r->state, REC_LIVE);
	ADD(d->regs, 1);
	ADD(d->live_bytes, (long)len);
	live = ADD(d->live, 1);
	max = LOAD(d->max_live);
	while (live > max &&
	       !__atomic_compare_exchange_n(&d->max_live, &max, live, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	*handle = h;
	return 0;
}

static void sdev_dereg(void *dv, uint64_t handle)
{
	struct sdev *d = dv;
	int live = REC_LIVE;

	if (handle >= rec_cap || handle >= LOAD(d->next) ||
	    !__atomic_compare_exchange_n(&d->recs[handle].state, &live,
					 REC_DEAD, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		if (ADD(d->bad_deregs, 1) <= 5)
			fprintf(stderr, "device: dereg of %s handle %llu\n",
				handle < rec_cap && handle < LOAD(d->next) ?
					"a dead" : "an unknown",
				(unsigned long long)handle);
		return;
	}
	ADD(d->live_bytes, -(long)d->recs[handle].len);
	ADD(d->live, -1);
	ADD(d->deregs, 1);
}

static const struct uhmm_rcache_ops sdev_ops = {
	.reg = sdev_reg,
	.dereg = sdev_dereg,
};

static void sdev_init(struct sdev *d)
{
	memset(d, 0, sizeof(*d));
	d->recs = mmap(NULL, rec_cap * sizeof(struct rec),
		       PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	REQUIRE(d->recs != MAP_FAILED);
}

static void sdev_free(struct sdev *d)
{
	munmap(d->recs, rec_cap * sizeof(struct rec));
}

/* ---- the naive cache: never invalidated ---- */

struct nentry {
	struct uhmm_region pub;
	long refs;			/* [lock] */
	struct nentry *next;
};

struct naive {
	pthread_mutex_t lock;
	struct nentry *tab[NHASH];	/* [lock] */
	struct sdev *dev;
};

static int naive_get(struct naive *n, void *addr, size_t len,
		     unsigned int access, struct uhmm_region **rp)
{
	unsigned long start = (unsigned long)addr & ~(t_page - 1);
	unsigned long end = ((unsigned long)addr + len + t_page - 1) &
			    ~(t_page - 1);
	unsigned long h = (start / t_page * 31 + end / t_page * 7 + access) %
			  NHASH;
	struct nentry *e;
	uint64_t handle;
	int ret = 0;

	pthread_mutex_lock(&n->lock);
	for (e = n->tab[h]; e; e = e->next)
		if ((unsigned long)e->pub.addr == start &&
		    e->pub.len == end - start && e->pub.access == access)
			break;
	if (!e) {
		ret = sdev_reg(n->dev, (void *)start, end - start, access,
			       &handle);
		if (!ret) {
			e = calloc(1, sizeof(*e));
			REQUIRE(e);
			e->pub = (struct uhmm_region){ (void *)start,
						       end - start, access,
						       handle };
			e->next = n->tab[h];
			n->tab[h] = e;
		}
	}
	if (e) {
		e->refs++;
		*rp = &e->pub;
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

static int naive_put(struct naive *n, struct uhmm_region *r)
{
	struct nentry *e = (struct nentry *)((char *)r -
					     offsetof(struct nentry, pub));
	int ret = 0;

	pthread_mutex_lock(&n->lock);
	if (e->refs <= 0)
		ret = -EINVAL;
	else
		e->refs--;
	pthread_mutex_unlock(&n->lock);
	return ret;
}

static int naive_destroy(struct naive *n)
{
	for (int h = 0; h < NHASH; h++)
		for (struct nentry *e = n->tab[h]; e; e = e->next)
			if (e->refs)
				return -EBUSY;
	for (int h = 0; h < NHASH; h++) {
		struct nentry *e;

		while ((e = n->tab[h])) {
			n->tab[h] = e->next;
			sdev_dereg(n->dev, e->pub.handle);
			free(e);
		}
	}
	pthread_mutex_destroy(&n->lock);
	return 0;
}

/* ---- a run: caches, getters, changers ---- */

struct hold {
	int c, b;
	struct uhmm_region *r;
};

static struct {
	bool naive;			/* the control */
	struct sdev dev[NCACHE];
	struct uhmm_rcache *rc[NCACHE];
	struct naive nv[NCACHE];
	pthread_mutex_t qlock;
	struct hold q[QCAP];		/* [qlock] handed off */
	int nq;				/* [qlock] */
	int stop;			/* atomic: changers stop */
	unsigned long gets;		/* atomic: all getters' */
	unsigned long changes;		/* atomic: all changers' */
} run;

static bool strict_stale;	/* UHMM_RCACHE_STRESS_STRICT */

static int c_get(int c, void *a, size_t len, unsigned int acc,
		 struct uhmm_region **r)
{
	return run.naive ? naive_get(&run.nv[c], a, len, acc, r)
			 : uhmm_rcache_get(run.rc[c], a, len, acc, r);
}

static int c_put(int c, struct uhmm_region *r)
{
	return run.naive ? naive_put(&run.nv[c], r)
			 : uhmm_rcache_put(run.rc[c], r);
}

static int c_get_many(int c, size_t n, void *const *a, const size_t *len,
		      unsigned int acc, struct uhmm_region **r)
{
	if (!run.naive)
		return uhmm_rcache_get_many(run.rc[c], n, a, len, acc, r);
	for (size_t i = 0; i < n; i++) {
		int ret = naive_get(&run.nv[c], a[i], len[i], acc, &r[i]);

		if (ret) {
			while (i--)
				naive_put(&run.nv[c], r[i]);
			return ret;
		}
	}
	return 0;
}

struct getter {
	pthread_t thread;
	int id;
	uint64_t seed;
	long ops;
	struct hold held[HELD_MAX];
	int nheld;
	/* Results, read by main after the join. */
	unsigned long gets[NCACHE];	/* buffers got, get_many's each */
	unsigned long puts[NCACHE];
	unsigned long eio[NCACHE];	/* gets failed on purpose (buffers) */
	unsigned long many, handed, errors, stale, excused;
};

struct changer {
	pthread_t thread;
	int id;
	uint64_t seed;
	unsigned long n[K_NKINDS];	/* changes made, by kind */
	unsigned long lost;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fail_get(struct getter *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail_get(struct getter *g, const char *fmt, ...)
{
	va_list ap;

	if (g->errors++ >= 5)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "getter %d: ", g->id);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/*
 * Page i of registration r saw the page as left by change J, and J's
 * successor had returned when a get of r began. Is it README's discard
 * limit: the successor an MADV_DONTNEED that had begun before reg read the
 * page (id <= cb) and zapped after it?
 *
 * A successor that began after the read opened its window after the
 * reg's read_begin: it collided with the reg or killed the region, limit
 * or not. So for v = 0 there is no excuse: a page reads 0 only until its
 * change is stamped, and the next change begins after that.
 */
static bool excused(const struct rec *r, unsigned int i, unsigned int p,
		    enum kind *next_kind, uint32_t *next)
{
	*next = 0;
	*next_kind = K_NONE;
	if (!r->v[i])
		return false;
	*next_kind = hist_next(p, r->v[i], r->cb[i], next);
	return *next_kind == K_DONTNEED;
}

/*
 * A region got for [a, a + len) of buffer b with access acc, K[] the
 * done[] of b's pages before the get: the region must cover the request,
 * be live on the device, and have seen no page older than K.
 */
static void check(struct getter *g, int c, int b, const char *a, size_t len,
		  unsigned int acc, const struct uhmm_region *r,
		  const uint32_t *K)
{
	const struct buf *bf = &bufs[b];
	struct sdev *d = &run.dev[c];
	unsigned long ra = (unsigned long)r->addr;
	bool stale = false, unexcused = false;
	const struct rec *rec;
	int printed = 0;

	if (ra % t_page || ra > (unsigned long)a ||
	    ra + r->len < (unsigned long)a + len || (r->access & acc) != acc) {
		fail_get(g, "cache %d: region [%#lx, +%zu) access %u for "
			 "request [%p, +%zu) access %u", c, ra, r->len,
			 r->access, (const void *)a, len, acc);
		return;
	}
	if (ra < (unsigned long)bf->addr ||
	    ra + r->len > (unsigned long)bf->addr + bf->npages * t_page) {
		fail_get(g, "cache %d: region [%#lx, +%zu) outside buffer %d",
			 c, ra, r->len, b);
		return;
	}
	if (r->handle >= rec_cap || r->handle >= LOAD(d->next)) {
		fail_get(g, "cache %d: unknown handle %llu", c,
			 (unsigned long long)r->handle);
		return;
	}
	rec = &d->recs[r->handle];
	if (LOAD(rec->state) != REC_LIVE) {
		fail_get(g, "cache %d: handle %llu handed out after its "
			 "dereg", c, (unsigned long long)r->handle);
		return;
	}
	if (rec->addr != ra || rec->len != r->len ||
	    rec->access != r->access) {
		fail_get(g, "cache %d: region [%#lx, +%zu) access %u, but its "
			 "handle registered [%#lx, +%lu) access %u", c, ra,
			 r->len, r->access, rec->addr, rec->len, rec->access);
		return;
	}
	for (unsigned int i = 0; i < rec->npages; i++) {
		unsigned int j = (unsigned int)((ra - (unsigned long)bf->addr) /
						t_page) + i;
		unsigned int p = bf->pg0 + j;
		uint32_t s = rec->v[i] ? rec->v[i] : rec->st[i], next;
		enum kind nk;
		bool ok;

		if (s >= K[j])
			continue;
		stale = true;
		ok = excused(rec, i, p, &nk, &next);
		unexcused |= !ok;
		/* One line per get: the first page that went stale. */
		if (!printed++ &&
		    (run.naive ? g->id == 0 && g->stale + g->excused == 0
			       : g->stale + g->excused < 5 ||
					 (!ok && g->stale < 5)))
			fprintf(stderr, "%sgetter %d: %s get: cache %d buffer "
				"%d page %u: registration %llu saw stamp %u "
				"(done %u, started %u, clock before %u); "
				"change %u (%s) had returned before the get "
				"began; the change after stamp %u begun "
				"before the read: %u (%s)%s\n",
				run.naive ? "(control, as expected) " : "",
				g->id, ok ? "excused stale" : "STALE", c, b,
				j, (unsigned long long)r->handle, rec->v[i],
				rec->dn[i], rec->st[i], rec->cb[i], K[j],
				kind_name[hist_kind(p, K[j])], rec->v[i], next,
				kind_name[nk],
				ok ? " (README Known limits, Discards)" : "");
	}
	if (unexcused || (stale && strict_stale))
		g->stale++;
	else if (stale)
		g->excused++;
}

/* Put a held region, which must still be registered. */
static void put(struct getter *g, const struct hold *h)
{
	const struct rec *rec = &run.dev[h->c].recs[h->r->handle % rec_cap];
	int ret;

	if (h->r->handle >= rec_cap || LOAD(rec->state) != REC_LIVE)
		fail_get(g, "cache %d: handle %llu deregistered while held",
			 h->c, (unsigned long long)h->r->handle);
	ret = c_put(h->c, h->r);
	if (ret)
		fail_get(g, "cache %d: put: %d", h->c, ret);
	g->puts[h->c]++;
}

static void keep(struct getter *g, int c, int b, struct uhmm_region *r)
{
	if (g->nheld == HELD_MAX) {
		int k = (int)(rnd(&g->seed) % HELD_MAX);

		put(g, &g->held[k]);
		g->held[k] = g->held[--g->nheld];
	}
	g->held[g->nheld++] = (struct hold){ c, b, r };
}

static void hand_off(struct getter *g, int c, int b, struct uhmm_region *r)
{
	struct hold h = { c, b, r };
	bool queued = false;

	pthread_mutex_lock(&run.qlock);
	if (run.nq < QCAP) {
		run.q[run.nq++] = h;
		queued = true;
	}
	pthread_mutex_unlock(&run.qlock);
	if (queued)
		g->handed++;
	else
		put(g, &h);
}

/* Put one region another thread got, if any. */
static void take_handed(struct getter *g)
{
	struct hold h;
	bool got = false;

	pthread_mutex_lock(&run.qlock);
	if (run.nq) {
		int k = (int)(rnd(&g->seed) % (uint64_t)run.nq);

		h = run.q[k];
		run.q[k] = run.q[--run.nq];
		got = true;
	}
	pthread_mutex_unlock(&run.qlock);
	if (got)
		put(g, &h);
}

/*
 * A buffer: mostly one of the HOT first, else any, and now and then one
 * that a changer has just changed (racing the delivery of its events).
 */
static int pick_buf(uint64_t *seed)
{
	for (;;) {
		unsigned int what = (unsigned int)(rnd(seed) % 100);
		int b;

		if (what < 15)
			b = LOAD(recent[(LOAD(recent_n) - 1 - rnd(seed) % 4) %
					RECENT]);
		else if (what < 75)
			b = (int)(rnd(seed) % HOT);
		else
			b = (int)(rnd(seed) % NBUF);

		if (!LOAD(bufs[b].lost))
			return b;
	}
}

static unsigned int pick_access(uint64_t *seed)
{
	static const unsigned int acc[] = {
		UHMM_ACCESS_READ, UHMM_ACCESS_WRITE,
		UHMM_ACCESS_READ | UHMM_ACCESS_WRITE,
	};

	return acc[rnd(seed) % 3];
}

/* A request inside buffer b: all of it, or any part. */
static void pick_range(uint64_t *seed, int b, char **a, size_t *len)
{
	size_t blen = bufs[b].npages * t_page, off;

	if (rnd(seed) % 100 < 60) {
		*a = bufs[b].addr;
		*len = blen;
		return;
	}
	off = rnd(seed) % blen;
	*a = bufs[b].addr + off;
	*len = 1 + rnd(seed) % (blen - off);
}

/*
 * Lock buffers b[0..n) for reading (no hole can be made in them), read
 * done[] of their pages into K. False if one is lost (nothing held).
 */
static void end_get(void)
{
	for (int i = 0; i < tls_nlocked; i++)
		pthread_rwlock_unlock(&bufs[tls_locked[i]].lock);
	tls_nlocked = 0;
}

static bool begin_get(struct getter *g, const int *b, int n,
		      uint32_t (*K)[MAXP])
{
	for (int i = 0; i < n; i++) {
		const struct buf *bf = &bufs[b[i]];

		if (!locked_here((unsigned int)b[i])) {	/* once each */
			pthread_rwlock_rdlock(&bufs[b[i]].lock);
			tls_locked[tls_nlocked++] = b[i];
			if (LOAD(bufs[b[i]].lost)) {
				end_get();
				return false;
			}
		}
		for (unsigned int j = 0; j < bf->npages; j++) {
			uint32_t v;

			K[i][j] = LOAD(done[bf->pg0 + j]);
			v = LOAD(*stamp_of(bf->addr + j * t_page));
			/* The test's own bookkeeping: a stamp is written
			 * after its done[], or moved in before it. */
			if (v && v < K[i][j])
				fail_get(g, "page %u of buffer %d: stamp %u "
					 "older than done %u", j, b[i], v,
					 K[i][j]);
		}
	}
	return true;
}

static void one_get(struct getter *g)
{
	int c = (int)(rnd(&g->seed) % NCACHE), b = pick_buf(&g->seed);
	unsigned int acc = pick_access(&g->seed), what;
	uint32_t K[1][MAXP];
	struct uhmm_region *r;
	size_t len;
	char *a;
	int ret;

	pick_range(&g->seed, b, &a, &len);
	if (!begin_get(g, &b, 1, K))
		return;
	ret = c_get(c, a, len, acc, &r);
	end_get();
	g->gets[c]++;
	ADD(run.gets, 1);
	if (ret) {
		if (ret == -EIO)	/* injected */
			g->eio[c]++;
		else
			fail_get(g, "cache %d: get of buffer %d [%p, +%zu): "
				 "%d", c, b, (void *)a, len, ret);
		g->puts[c]++;	/* nothing held */
		return;
	}
	check(g, c, b, a, len, acc, r, K[0]);
	what = (unsigned int)(rnd(&g->seed) % 100);
	if (what < 70)
		put(g, &(struct hold){ c, b, r });
	else if (what < 85)
		keep(g, c, b, r);
	else
		hand_off(g, c, b, r);
}

static void many_get(struct getter *g)
{
	int c = (int)(rnd(&g->seed) % NCACHE), b[MANY_MAX];
	int n = 2 + (int)(rnd(&g->seed) % (MANY_MAX - 1));
	unsigned int acc = pick_access(&g->seed);
	struct uhmm_region *r[MANY_MAX];
	uint32_t K[MANY_MAX][MAXP];
	size_t len[MANY_MAX];
	char *a[MANY_MAX];
	int ret;

	/* In increasing order: begin_get() locks them in that order.
	 * Distinct, but now and then one buffer twice (two holds). */
	for (int i = 0; i < n; i++) {
		int k;

		if (i && rnd(&g->seed) % 100 < 5) {
			b[i] = b[rnd(&g->seed) % (uint64_t)i];
		} else {
			do {
				b[i] = pick_buf(&g->seed);
				for (k = 0; k < i && b[k] != b[i]; k++)
					;
			} while (k < i);
		}
		for (k = i; k > 0 && b[k - 1] > b[k]; k--) {
			int t = b[k];

			b[k] = b[k - 1];
			b[k - 1] = t;
		}
	}
	for (int i = 0; i < n; i++)
		pick_range(&g->seed, b[i], &a[i], &len[i]);
	if (!begin_get(g, b, n, K))
		return;
	ret = c_get_many(c, (size_t)n, (void *const *)a, len, acc, r);
	end_get();
	g->gets[c] += (unsigned long)n;
	g->many++;
	ADD(run.gets, (unsigned long)n);
	if (ret) {
		/* All or nothing: a region left held would make destroy
		 * fail, one put twice would be deregistered while held. */
		if (ret == -EIO)	/* injected */
			g->eio[c] += (unsigned long)n;
		else
			fail_get(g, "cache %d: get_many of %d: %d", c, n, ret);
		g->puts[c] += (unsigned long)n;
		return;
	}
	for (int i = 0; i < n; i++) {
		check(g, c, b[i], a[i], len[i], acc, r[i], K[i]);
		if (rnd(&g->seed) % 100 < 80)
			put(g, &(struct hold){ c, b[i], r[i] });
		else
			keep(g, c, b[i], r[i]);
	}
}

static void *getter_main(void *arg)
{
	struct getter *g = arg;

	for (long i = 0; i < g->ops; i++) {
		unsigned int what = (unsigned int)(rnd(&g->seed) % 100);

		if (what < 10)
			many_get(g);
		else
			one_get(g);
		if (what % 10 == 0)
			take_handed(g);
		if (!run.naive && i % STATS_EVERY == 0) {
			/* Stats while everything moves. */
			struct uhmm_rcache_stats st;
			int c = (int)(rnd(&g->seed) % NCACHE);

			if (uhmm_rcache_stats(run.rc[c], &st) ||
			    st.deregistrations > LOAD(run.dev[c].deregs) +
						     LOAD(run.dev[c].bad_deregs)
						     + NGETTER + 1)
				fail_get(g, "cache %d: stats: %lu "
					 "deregistrations, the device saw %lu",
					 c, st.deregistrations,
					 LOAD(run.dev[c].deregs));
		}
		if (g->nheld && rnd(&g->seed) % 100 < 15) {
			int k = (int)(rnd(&g->seed) % (uint64_t)g->nheld);

			put(g, &g->held[k]);
			g->held[k] = g->held[--g->nheld];
		}
	}
	while (g->nheld)
		put(g, &g->held[--g->nheld]);
	return NULL;
}

/* Change pages [lo, lo + n) of buffer b (of this changer) by kind k. */
static void change(struct changer *ch, int b, unsigned int lo,
		   unsigned int n, enum kind k)
{
	struct buf *bf = &bufs[b];
	char *a = bf->addr + lo * t_page;
	size_t len = n * t_page;
	unsigned int p0 = bf->pg0 + lo;
	bool stamped = false;
	uint32_t id;
	long ret;

	if (k == K_HOLE)
		pthread_rwlock_wrlock(&bf->lock);
	/* History first, marked pending: whoever sees the id sees it. */
	for (unsigned int i = 0; i < n; i++)
		STORE(hist[(p0 + i) * HIST + hist_n[p0 + i] % HIST],
		      (uint64_t)HIST_PENDING);
	id = ADD(change_clock, 1);
	for (unsigned int i = 0; i < n; i++) {
		STORE(hist[(p0 + i) * HIST + hist_n[p0 + i]++ % HIST],
		      (uint64_t)id << 8 | k);
		STORE(started[p0 + i], id);
	}
	switch (k) {
	case K_MMAP:
		ret = syscall(SYS_mmap, a, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		REQUIRE(ret == (long)a);
		break;
	case K_DONTNEED:
		REQUIRE(syscall(SYS_madvise, a, len, MADV_DONTNEED) == 0);
		break;
	case K_MREMAP: {
		char *s;

		/* libc's mmap: ThreadSanitizer forgets what was there. */
		pthread_mutex_lock(&addr_lock);
		s = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		REQUIRE(s != MAP_FAILED);
		for (unsigned int i = 0; i < n; i++)
			STORE(*stamp_of(s + i * t_page), id);
		ret = syscall(SYS_mremap, s, len, len,
			      MREMAP_MAYMOVE | MREMAP_FIXED, a);
		REQUIRE(ret == (long)a);
		pthread_mutex_unlock(&addr_lock);
		stamped = true;
		break;
	}
	case K_HOLE:
		/* Under addr_lock: no other changer's mmap(NULL) takes the
		 * hole. Anyone else's may: then the buffer is lost. */
		pthread_mutex_lock(&addr_lock);
		REQUIRE(syscall(SYS_munmap, a, len) == 0);
		ret = syscall(SYS_mmap, a, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS |
				      MAP_FIXED_NOREPLACE, -1, 0);
		if (ret != (long)a) {
			if (ret != -1)	/* taken as a hint */
				syscall(SYS_munmap, ret, len);
			STORE(bf->lost, 1);
			ch->lost++;
			stamped = true;
		}
		pthread_mutex_unlock(&addr_lock);
		break;
	default:
		REQUIRE(0);
	}
	for (unsigned int i = 0; i < n; i++)
		STORE(done[p0 + i], id);
	if (!stamped)
		for (unsigned int i = 0; i < n; i++)
			STORE(*stamp_of(a + i * t_page), id);
	if (k == K_HOLE)
		pthread_rwlock_unlock(&bf->lock);
	STORE(recent[__atomic_fetch_add(&recent_n, 1, __ATOMIC_SEQ_CST) %
		     RECENT], b);
	ch->n[k]++;
	ADD(run.changes, 1);
}

static void *changer_main(void *arg)
{
	struct changer *ch = arg;

	while (!LOAD(run.stop)) {
		unsigned int what, lo, n;
		enum kind k;
		int b;

		/* Keep pace with the gets (a ratio, not a time). */
		if (LOAD(run.changes) * GETS_PER_CHANGE > LOAD(run.gets)) {
			usleep(50);
			continue;
		}
		do
			b = pick_buf(&ch->seed);
		while (b % NCHANGER != ch->id);
		what = (unsigned int)(rnd(&ch->seed) % 100);
		k = what < 33 ? K_MMAP : what < 66 ? K_DONTNEED
				: what < 97 ? K_MREMAP : K_HOLE;
		lo = 0;
		n = bufs[b].npages;
		if (k != K_HOLE && rnd(&ch->seed) % 100 < 30) {
			lo = (unsigned int)(rnd(&ch->seed) % n);
			n = 1 + (unsigned int)(rnd(&ch->seed) % (n - lo));
		}
		change(ch, b, lo, n, k);
	}
	return NULL;
}

/* ---- setup, runs, checks ---- */

static void setup_memory(uint64_t seed)
{
	unsigned int per = NBUF / NMAP, pg = 0;
	uint32_t id;

	for (int m = 0; m < NMAP; m++) {
		unsigned int mp = 0;

		map_pg0[m] = pg;
		for (unsigned int i = 0; i < per; i++) {
			struct buf *bf = &bufs[m * per + i];

			bf->npages = 1 + (unsigned int)(rnd(&seed) % MAXP);
			bf->pg0 = pg + mp;
			mp += bf->npages;
			pthread_rwlock_init(&bf->lock, NULL);
		}
		map_len[m] = mp * t_page;
		maps[m] = mmap(NULL, map_len[m], PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		REQUIRE(maps[m] != MAP_FAILED);
		for (unsigned int i = 0; i < per; i++) {
			struct buf *bf = &bufs[m * per + i];

			bf->addr = maps[m] + (bf->pg0 - pg) * t_page;
		}
		pg += mp;
	}
	npages = pg;
	page_buf = calloc(npages, sizeof(*page_buf));
	started = calloc(npages, sizeof(*started));
	done = calloc(npages, sizeof(*done));
	hist = calloc((size_t)npages * HIST, sizeof(*hist));
	hist_n = calloc(npages, sizeof(*hist_n));
	REQUIRE(page_buf && started && done && hist && hist_n);
	id = ++change_clock;	/* the first change: the stamps below */
	for (int b = 0; b < NBUF; b++)
		for (unsigned int j = 0; j < bufs[b].npages; j++) {
			unsigned int p = bufs[b].pg0 + j;

			page_buf[p] = (unsigned int)b;
			started[p] = done[p] = id;
			hist[p * HIST] = (uint64_t)id << 8 | K_INIT;
			hist_n[p] = 1;
			*stamp_of(bufs[b].addr + j * t_page) = id;
		}
}

struct totals {
	unsigned long gets, puts, many, handed, errors, stale, excused, eio;
	unsigned long ceio[NCACHE];
	unsigned long changes[K_NKINDS], nchanges, lost;
	unsigned long cgets[NCACHE], cputs[NCACHE];
};

static void run_threads(long ops, uint64_t seed, struct totals *t)
{
	static struct getter g[NGETTER];
	static struct changer ch[NCHANGER];

	memset(t, 0, sizeof(*t));
	memset(g, 0, sizeof(g));
	memset(ch, 0, sizeof(ch));
	run.stop = 0;
	run.gets = run.changes = 0;
	run.nq = 0;
	pthread_mutex_init(&run.qlock, NULL);
	for (int i = 0; i < NCHANGER; i++) {
		ch[i].id = i;
		ch[i].seed = seed + 101 + (uint64_t)i;
		REQUIRE(pthread_create(&ch[i].thread, NULL, changer_main,
				       &ch[i]) == 0);
	}
	for (int i = 0; i < NGETTER; i++) {
		g[i].id = i;
		g[i].seed = seed + 1 + (uint64_t)i;
		g[i].ops = ops;
		REQUIRE(pthread_create(&g[i].thread, NULL, getter_main,
				       &g[i]) == 0);
	}
	for (int i = 0; i < NGETTER; i++)
		REQUIRE(pthread_join(g[i].thread, NULL) == 0);
	STORE(run.stop, 1);
	for (int i = 0; i < NCHANGER; i++)
		REQUIRE(pthread_join(ch[i].thread, NULL) == 0);
	/* What was handed off and never taken: main puts it. */
	while (run.nq)
		take_handed(&g[0]);
	pthread_mutex_destroy(&run.qlock);
	for (int i = 0; i < NGETTER; i++) {
		for (int c = 0; c < NCACHE; c++) {
			t->cgets[c] += g[i].gets[c];
			t->cputs[c] += g[i].puts[c];
			t->ceio[c] += g[i].eio[c];
			t->eio += g[i].eio[c];
			t->gets += g[i].gets[c];
			t->puts += g[i].puts[c];
		}
		t->many += g[i].many;
		t->handed += g[i].handed;
		t->errors += g[i].errors;
		t->stale += g[i].stale;
		t->excused += g[i].excused;
	}
	for (int i = 0; i < NCHANGER; i++) {
		for (int k = 0; k < K_NKINDS; k++) {
			t->changes[k] += ch[i].n[k];
			t->nchanges += ch[i].n[k];
		}
		t->lost += ch[i].lost;
	}
}

/* A device after its cache is gone: nothing registered, all balanced. */
static void check_dev_empty(const char *what, int c, struct sdev *d)
{
	if (LOAD(d->live) || LOAD(d->live_bytes) || LOAD(d->regs) !=
	    LOAD(d->deregs) || LOAD(d->bad_deregs) || LOAD(d->errors)) {
		fprintf(stderr, "%s %d: after destroy the device has %ld "
			"registrations (%ld bytes) live; %lu regs, %lu deregs, "
			"%lu bad deregs, %lu errors\n", what, c, LOAD(d->live),
			LOAD(d->live_bytes), LOAD(d->regs), LOAD(d->deregs),
			LOAD(d->bad_deregs), LOAD(d->errors));
		t_failed = 1;
	}
}

static void print_changes(const struct totals *t)
{
	printf("%lu changes (%lu mmap(MAP_FIXED), %lu MADV_DONTNEED, %lu "
	       "mremap, %lu munmap+mmap%s)", t->nchanges, t->changes[K_MMAP],
	       t->changes[K_DONTNEED], t->changes[K_MREMAP],
	       t->changes[K_HOLE], t->lost ? ", buffers lost to others' mmap" :
	       "");
	if (t->lost)
		printf(": %lu", t->lost);
}

/* The control: the checker must see the naive cache go stale. */
static void run_control(long ops, uint64_t seed)
{
	struct totals t;

	run.naive = true;
	for (int c = 0; c < NCACHE; c++) {
		sdev_init(&run.dev[c]);
		pthread_mutex_init(&run.nv[c].lock, NULL);
		run.nv[c].dev = &run.dev[c];
	}
	run_threads(ops, seed, &t);
	for (int c = 0; c < NCACHE; c++) {
		CHECK_EQ(naive_destroy(&run.nv[c]), 0);
		check_dev_empty("naive cache", c, &run.dev[c]);
		sdev_free(&run.dev[c]);
	}
	printf("control, a naive cache never invalidated: %lu gets, %lu "
	       "stale (+%lu excused), %lu errors; ", t.gets, t.stale,
	       t.excused, t.errors);
	print_changes(&t);
	printf("\n");
	CHECK_EQ(t.errors, 0);
	CHECK_EQ(t.puts, t.gets);
	if (!t.stale) {
		fprintf(stderr, "the checker found no stale get through a "
			"cache that is never invalidated: it is blind\n");
		t_failed = 1;
	}
	run.naive = false;
}

static const struct uhmm_rcache_config cache_cfg[NCACHE] = {
	/* Tight on both limits: eviction on most misses. */
	{ .max_regions = 48, .max_bytes = 96 * 4096 },
	/* Relaxed (nothing here reuses an address an munmap() in flight
	 * released), medium. */
	{ .max_regions = NBUF / 8, .flags = UHMM_RCACHE_RELAXED },
	/* Room for every buffer, several ways. */
	{ .max_regions = 4 * NBUF },
};

static void run_caches(long ops, uint64_t seed)
{
	/* Held at once, at most: held lists, a get_many, the queue. */
	const long holds = NGETTER * (HELD_MAX + MANY_MAX) + QCAP;
	struct uhmm_rcache_stats st[NCACHE];
	unsigned long hits = 0, misses = 0, ev = 0, inv = 0, dr = 0;
	struct totals t;

	for (int c = 0; c < NCACHE; c++) {
		struct uhmm_rcache_config cfg = cache_cfg[c];

		if (cfg.max_bytes)
			cfg.max_bytes = cfg.max_bytes / 4096 * t_page;
		sdev_init(&run.dev[c]);
		REQUIRE(uhmm_rcache_create(&run.rc[c], mm, &sdev_ops,
					   &run.dev[c], &cfg) == 0);
	}
	run_threads(ops, seed, &t);

	for (int c = 0; c < NCACHE; c++) {
		unsigned long ok = t.cgets[c] - t.ceio[c];
		struct sdev *d = &run.dev[c];
		struct uhmm_region *r;
		int b = 0, tries, ret;

		st[c] = t_rc_stats(run.rc[c]);
		/* Exact: misses, each a registration; approximate: hits
		 * (uhmm.h), never more than the gets. A get_many that
		 * failed may have counted the buffers before the failure. */
		CHECK(st[c].misses <= t.cgets[c]);
		CHECK(st[c].misses <= LOAD(d->regs));
		CHECK(st[c].hits + st[c].misses <= t.cgets[c]);
		if (st[c].hits + st[c].misses < ok - ok / 100) {
			fprintf(stderr, "cache %d: %lu hits + %lu misses for "
				"%lu gets that succeeded\n", c, st[c].hits,
				st[c].misses, ok);
			t_failed = 1;
		}
		CHECK(st[c].invalidations > 0);
		if (c == 0)
			CHECK(st[c].evictions > 0);
		/* Only held regions take the device past the limit (and
		 * the misses in progress, one per getter). */
		if (LOAD(d->max_live) >
		    (long)cache_cfg[c].max_regions + holds + NGETTER) {
			fprintf(stderr, "cache %d: the device had %ld "
				"registrations at once, max_regions %zu, at "
				"most %ld held\n", c, LOAD(d->max_live),
				cache_cfg[c].max_regions, holds);
			t_failed = 1;
		}
		/* Nothing held: the worker settles on what the stats say
		 * (a bounded wait for it, not a statement about time). */
		for (tries = 0; tries < 1000; tries++) {
			struct uhmm_rcache_stats s = t_rc_stats(run.rc[c]);

			if (s.regions == (unsigned long)LOAD(d->live) &&
			    s.bytes_registered ==
				    (unsigned long)LOAD(d->live_bytes))
				break;
			usleep(10000);
		}
		if (tries == 1000) {
			struct uhmm_rcache_stats s = t_rc_stats(run.rc[c]);

			fprintf(stderr, "cache %d: stats say %lu regions (%lu "
				"bytes), the device has %ld (%ld bytes)\n", c,
				s.regions, s.bytes_registered, LOAD(d->live),
				LOAD(d->live_bytes));
			t_failed = 1;
		}
		/* Held: destroy refuses. */
		while (LOAD(bufs[b].lost))
			b++;
		while ((ret = uhmm_rcache_get(run.rc[c], bufs[b].addr, t_page,
					      UHMM_ACCESS_READ, &r)) == -EIO)
			;
		CHECK_EQ(ret, 0);
		CHECK_EQ(uhmm_rcache_destroy(run.rc[c]), -EBUSY);
		CHECK_EQ(uhmm_rcache_put(run.rc[c], r), 0);
		CHECK_EQ(uhmm_rcache_destroy(run.rc[c]), 0);
		check_dev_empty("cache", c, d);
		CHECK(st[c].deregistrations <= LOAD(d->deregs));
		hits += st[c].hits;
		misses += st[c].misses;
		ev += st[c].evictions;
		inv += st[c].invalidations;
		dr += st[c].deregistrations;
		CHECK_EQ(t.cputs[c], t.cgets[c]);
		sdev_free(d);
	}
	printf("uhmm caches: %lu gets (%lu get_many, %lu handed off), %lu "
	       "hits, %lu misses, %lu evictions, %lu invalidations, %lu "
	       "deregistrations; ", t.gets, t.many, t.handed, hits, misses,
	       ev, inv, dr);
	print_changes(&t);
	printf("; %lu gets failed by the device on purpose; stale=%lu (+%lu "
	       "excused: README Known limits, Discards), errors=%lu\n",
	       t.eio, t.stale, t.excused, t.errors);
	for (int c = 0; c < NCACHE; c++)
		printf("  cache %d (max_regions %zu%s): %lu gets, %lu hits, "
		       "%lu misses, %lu evictions, %lu invalidations; device: "
		       "%lu regs (+%lu failed), at most %ld at once\n", c,
		       cache_cfg[c].max_regions,
		       cache_cfg[c].flags & UHMM_RCACHE_RELAXED ? ", relaxed"
								: "",
		       t.cgets[c], st[c].hits, st[c].misses, st[c].evictions,
		       st[c].invalidations, LOAD(run.dev[c].regs),
		       LOAD(run.dev[c].injected), LOAD(run.dev[c].max_live));
	CHECK_EQ(t.stale, 0);
	CHECK_EQ(t.errors, 0);
	CHECK(t.nchanges > 0);
}

int main(void)
{
	const char *s = getenv("UHMM_RCACHE_STRESS_SEED");
	uint64_t seed = s && *s ? strtoull(s, NULL, 0) : 0x5eed1234abcdull;
	long ops = (long)(OPS * t_scale());

	/* A get op takes 1.3 buffers on average, each at most one miss
	 * (and its retries): room for three times that. */
	rec_cap = 4UL * NGETTER * (unsigned long)ops;
	if (rec_cap < REC_MIN)
		rec_cap = REC_MIN;

	setvbuf(stdout, NULL, _IOLBF, 0);	/* in order with stderr */
	s = getenv("UHMM_RCACHE_STRESS_STRICT");
	strict_stale = s && *s == '1';
	if (!seed)
		seed = 1;
	mm = t_open();
	printf("seed %#llx, scale %g: %d getters x %ld ops, %d changers, %d "
	       "buffers of 1-%d pages, %d caches\n", (unsigned long long)seed,
	       t_scale(), NGETTER, ops, NCHANGER, NBUF, MAXP, NCACHE);
	setup_memory(seed);

	run_control(ops / CONTROL_DIV > 200 ? ops / CONTROL_DIV : 200, seed);
	run_caches(ops, seed);

	for (int m = 0; m < NMAP; m++)
		munmap(maps[m], map_len[m]);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
