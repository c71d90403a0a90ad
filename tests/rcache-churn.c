/* SPDX-License-Identifier: MIT */
/*
 * Churn: no stale transfer through the cache while threads keep changing
 * the memory behind it.
 *
 * NT threads share one monitored mm; each has its own io_uring ring (a
 * ring takes submissions from one thread), its own fixed-buffer device on
 * it and its own cache over that device, with small limits so eviction
 * runs too. Each thread does READ_FIXED and WRITE_FIXED through its cache
 * on its own buffers and on buffers shared by all threads, and between
 * I/Os it changes them: munmap + mmap anywhere, mmap(MAP_FIXED) over all
 * or part, MADV_DONTNEED of all or part, mremap (move). A shared
 * buffer is used and changed under its mutex, so a change by one thread
 * has returned before another thread's next get: that get must see it,
 * although the other thread's cache still holds a region there.
 *
 * Every file byte says where it is and which generation wrote it. A read
 * poisons its target first; after the completion the target must hold
 * exactly the file's bytes of the current generation (a read into stale
 * pages leaves the poison). A write sends a new generation of a whole slot
 * and pread must then find it (a write from stale pages sends old bytes).
 * The count of I/Os is 10^5 times UHMM_TEST_SCALE, all verified; the test
 * passes only with zero stale transfers and no error.
 *
 * Address reuse is part of the churn: one thread's mmap() may get an
 * address that another thread's munmap() is still releasing (the kernel
 * frees the range, drops mmap_lock, and only then queues the UNMAP event).
 * The caches are strict (uhmm.h, UHMM_RCACHE_STRICT), which waits for
 * such an event in flight. UHMM_RCACHE_CHURN_MODE chooses:
 *   strict   (default) strict caches, threads unserialised
 *   relaxed  relaxed caches, with munmap, mremap and mmap(NULL) under one
 *            lock, so every address a thread gets was released by a
 *            munmap() that has returned: what relaxed mode promises
 *   racy     relaxed caches, unserialised: shows the race (stale
 *            transfers, and so a failure, are expected)
 */
#include <pthread.h>

#define T_RC_URING
#include "rcache.h"

#define NT 4			/* threads */
#define NOWN 4			/* buffers of each thread */
#define NSH 4			/* buffers shared by all threads */
#define BUFP 8			/* pages per buffer */
#define NSLOT 16		/* buffer-sized slots in each thread's file */
#define IOS 100000		/* at scale 1 */

struct shared {
	pthread_mutex_t lock;
	char *buf;		/* [lock] */
};

struct worker {
	pthread_t thread;
	int id;
	long target;		/* I/Os to do */
	/* Results, read by main after the join. */
	long ios, reads, writes, changes, stale, errors;
	struct uhmm_rcache_stats st;
};

static struct uhmm_mm *mm;
static size_t BUF;
static struct shared sh[NSH];

/* See the top comment: the mode. */
static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;
static bool serialize;
static unsigned int cache_flags = UHMM_RCACHE_STRICT;

static void addr_lock_take(void)
{
	if (serialize)
		pthread_mutex_lock(&addr_lock);
}

static void addr_lock_drop(void)
{
	if (serialize)
		pthread_mutex_unlock(&addr_lock);
}

/*
 * ThreadSanitizer cannot see that an address one thread unmapped and
 * another mapped again was handed over by the kernel: order every unmap
 * (and move) before every later map for it, as the kernel does.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char reuse_order;
#define unmapping() __tsan_release(&reuse_order)
#define mapped() __tsan_acquire(&reuse_order)
#else
#define unmapping() ((void)0)
#define mapped() ((void)0)
#endif

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static char *new_buf(void)
{
	char *p = mmap(NULL, BUF, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	mapped();
	return p;
}

/* Change the memory at *bufp; may move the buffer. */
static void change(char **bufp, uint64_t *seed)
{
	char *buf = *bufp, *p;
	size_t lo = (rnd(seed) % BUFP) * t_page;
	size_t n = (1 + rnd(seed) % (BUFP - lo / t_page)) * t_page;

	switch (rnd(seed) % 6) {
	case 0:	/* unmap, map anywhere (maybe where another buffer was) */
		addr_lock_take();
		unmapping();
		REQUIRE(munmap(buf, BUF) == 0);
		*bufp = new_buf();
		addr_lock_drop();
		break;
	case 1:	/* map over all of it */
		lo = 0;
		n = BUF;
		/* fall through */
	case 2:	/* map over part of it */
		p = mmap(buf + lo, n, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		REQUIRE(p == buf + lo);
		break;
	case 3:	/* discard all of it */
		lo = 0;
		n = BUF;
		/* fall through */
	case 4:	/* discard part of it */
		REQUIRE(madvise(buf + lo, n, MADV_DONTNEED) == 0);
		break;
	case 5:	/* move it: grow it by a page, which moves it when the page
		 * after it is taken, and shrink it back. Never MREMAP_FIXED:
		 * a move of several mappings can fail half way and leave a
		 * hole that another thread's mmap() may take. */
		addr_lock_take();
		unmapping();
		p = mremap(buf, BUF, BUF + t_page, MREMAP_MAYMOVE);
		if (p == MAP_FAILED) {
			/* Split by a partial map: refused, nothing done. */
			REQUIRE(errno == EFAULT);
			REQUIRE(munmap(buf, BUF) == 0);
			*bufp = new_buf();
			addr_lock_drop();
			break;
		}
		REQUIRE(mremap(p, BUF + t_page, BUF, 0) == p);
		mapped();
		addr_lock_drop();
		*bufp = p;
		break;
	}
}

/* One I/O through the cache and its check; false if it was stale. */
static bool io(struct worker *w, struct uhmm_rcache *rc,
	       struct io_uring *ring, int fd, uint64_t *gen, char *buf,
	       bool read, uint64_t *seed)
{
	unsigned int slot = rnd(seed) % NSLOT;
	size_t bo = 0, len = BUF;
	uint64_t off = (uint64_t)slot * BUF;
	struct uhmm_region *region;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	bool ok;
	int ret;

	if (read) {	/* any 8-byte aligned part of the buffer */
		bo = (rnd(seed) % (BUF / 8)) * 8;
		len = (1 + rnd(seed) % ((BUF - bo) / 8)) * 8;
		off += bo;
		memset(buf + bo, 0xee, len);	/* poison */
	} else {
		t_fill(buf, off, len, gen[slot] + 1);
	}
	sqe = io_uring_get_sqe(ring);
	REQUIRE(sqe);
	if (read)
		ret = uhmm_uring_prep_read_fixed(rc, sqe, fd, buf + bo,
						 (unsigned int)len, off,
						 &region);
	else
		ret = uhmm_uring_prep_write_fixed(rc, sqe, fd, buf,
						  (unsigned int)len, off,
						  &region);
	if (ret) {
		fprintf(stderr, "thread %d: prep: %s\n", w->id,
			strerror(-ret));
		w->errors++;
		io_uring_prep_nop(sqe);
		region = NULL;
	}
	REQUIRE(io_uring_submit(ring) == 1);
	REQUIRE(io_uring_wait_cqe(ring, &cqe) == 0);
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	if (!region)
		return true;
	CHECK_EQ(uhmm_rcache_put(rc, region), 0);
	if (ret != (int)len) {
		fprintf(stderr, "thread %d: %s of %zu: %d\n", w->id,
			read ? "read" : "write", len, ret);
		w->errors++;
		return true;
	}
	w->ios++;
	if (read) {
		w->reads++;
		return t_holds(buf + bo, off, len, gen[slot]);
	}
	w->writes++;
	ok = t_file_holds(fd, off, len, gen[slot] + 1);
	if (!ok)	/* put the file right for the next checks */
		REQUIRE(pwrite(fd, buf, len, (off_t)off) == (ssize_t)len);
	gen[slot]++;
	return ok;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct uhmm_rcache_config cfg = { .max_regions = 8,
					  .flags = cache_flags };
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
	uint64_t gen[NSLOT];
	struct uhmm_uring_dev *dev;
	struct uhmm_rcache *rc;
	struct io_uring ring;
	char *own[NOWN];
	int fd;

	t_ring(&ring, 4);
	dev = t_uring_dev(&ring, 512);
	REQUIRE(uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev,
				   &cfg) == 0);
	fd = t_data_file(NSLOT * BUF, 1);
	for (int i = 0; i < NSLOT; i++)
		gen[i] = 1;
	addr_lock_take();
	for (int i = 0; i < NOWN; i++)
		own[i] = new_buf();
	addr_lock_drop();

	while (w->ios < w->target) {
		unsigned int what = rnd(&seed) % 100;
		bool shared = rnd(&seed) % 2;
		unsigned int b = rnd(&seed) % (shared ? NSH : NOWN);
		char **bufp = shared ? &sh[b].buf : &own[b];
		bool ok = true;

		if (shared)
			pthread_mutex_lock(&sh[b].lock);
		if (what < 50) {
			ok = io(w, rc, &ring, fd, gen, *bufp, true, &seed);
		} else if (what < 75) {
			ok = io(w, rc, &ring, fd, gen, *bufp, false, &seed);
		} else {
			change(bufp, &seed);
			w->changes++;
		}
		if (shared)
			pthread_mutex_unlock(&sh[b].lock);
		if (!ok && w->stale++ < 5)
			fprintf(stderr, "thread %d: STALE %s transfer on %s "
				"buffer %u, after %ld I/Os\n", w->id,
				what < 50 ? "READ_FIXED" : "WRITE_FIXED",
				shared ? "shared" : "own", b, w->ios);
	}

	REQUIRE(uhmm_rcache_stats(rc, &w->st) == 0);
	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(uhmm_uring_dev_close(dev), 0);
	io_uring_queue_exit(&ring);
	for (int i = 0; i < NOWN; i++)
		munmap(own[i], BUF);
	close(fd);
	return NULL;
}

int main(void)
{
	static struct worker w[NT];
	double scale = t_scale();
	long target = (long)(IOS * scale), ios = 0, stale = 0, errors = 0,
	     changes = 0;
	struct uhmm_rcache_stats tot = { 0 };

	const char *mode = getenv("UHMM_RCACHE_CHURN_MODE");

	if (!mode || !*mode)
		mode = "strict";
	if (!strcmp(mode, "relaxed") || !strcmp(mode, "racy"))
		cache_flags = UHMM_RCACHE_RELAXED;
	else
		REQUIRE(!strcmp(mode, "strict"));
	serialize = !strcmp(mode, "relaxed");
	mm = t_open();
	BUF = BUFP * t_page;
	{	/* io_uring at all? Skip here, before any thread. */
		struct io_uring ring;

		t_ring(&ring, 4);
		io_uring_queue_exit(&ring);
	}
	if (target < NT)
		target = NT;
	/* Shared state is set up before any thread or get exists. */
	for (int i = 0; i < NSH; i++) {
		pthread_mutex_init(&sh[i].lock, NULL);
		sh[i].buf = new_buf();
	}
	for (int i = 0; i < NT; i++) {
		w[i].id = i;
		w[i].target = (target + NT - 1) / NT;
		REQUIRE(pthread_create(&w[i].thread, NULL, worker_main,
				       &w[i]) == 0);
	}
	for (int i = 0; i < NT; i++) {
		REQUIRE(pthread_join(w[i].thread, NULL) == 0);
		ios += w[i].ios;
		stale += w[i].stale;
		errors += w[i].errors;
		changes += w[i].changes;
		tot.hits += w[i].st.hits;
		tot.misses += w[i].st.misses;
		tot.invalidations += w[i].st.invalidations;
		tot.evictions += w[i].st.evictions;
	}
	printf("%ld verified I/Os (scale %g, %d threads, %s mode%s), %ld "
	       "stale, %ld errors; %ld changes; cache: %lu hits, %lu misses, "
	       "%lu invalidations, %lu evictions\n", ios, scale, NT, mode,
	       serialize ? ", address reuse serialized" : "", stale,
	       errors, changes, tot.hits, tot.misses, tot.invalidations,
	       tot.evictions);
	CHECK_EQ(stale, 0);
	CHECK_EQ(errors, 0);
	CHECK(ios >= target);
	/* The churn really churned the cache. */
	CHECK(tot.invalidations > 0 && tot.evictions > 0 && tot.hits > 0);

	for (int i = 0; i < NSH; i++)
		munmap(sh[i].buf, BUF);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
