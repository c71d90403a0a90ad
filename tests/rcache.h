/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the registration-cache tests (tests/rcache-*.c).
 *
 * A fake device (struct t_fdev) records every reg and dereg: which range,
 * which access, whether the handle is still registered. Its dereg can be
 * made to block, to hold the cache's worker. Its counters are read under
 * its lock: dereg runs on the cache's worker thread.
 *
 * Define T_RC_URING before including this to get the io_uring helpers: a
 * ring (or a skip with the reason), data files whose bytes say where they
 * came from, and READ_FIXED/WRITE_FIXED through a raw slot.
 */
#ifndef UHMM_TEST_RCACHE_H
#define UHMM_TEST_RCACHE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "events.h"

/* ---- the fake device ---- */

#define T_FDEV_MAX 1024

struct t_freg {
	unsigned long addr, len;
	unsigned int access;
	bool live;
};

struct t_fdev {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned long regs, deregs;	/* [lock] calls */
	unsigned long bad_deregs;	/* [lock] unknown or dead handle */
	int fail_reg;			/* [lock] next reg returns this */
	long block_handle;		/* [lock] dereg of it waits... */
	bool blocked;			/* [lock] ...and says so here... */
	bool unblock;			/* [lock] ...until this is set */
	struct t_freg rec[T_FDEV_MAX];	/* [lock] by handle */
};

static inline void t_fdev_init(struct t_fdev *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->block_handle = -1;
}

static inline int t_fdev_reg(void *dev, void *addr, size_t len,
			     unsigned int access, uint64_t *handle)
{
	struct t_fdev *d = dev;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (d->fail_reg) {
		ret = d->fail_reg;
		d->fail_reg = 0;
	} else if (d->regs >= T_FDEV_MAX) {
		ret = -ENOSPC;
	} else {
		*handle = d->regs;
		d->rec[d->regs] = (struct t_freg){ (unsigned long)addr, len,
						   access, true };
		d->regs++;
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static inline void t_fdev_dereg(void *dev, uint64_t handle)
{
	struct t_fdev *d = dev;

	pthread_mutex_lock(&d->lock);
	if ((long)handle == d->block_handle) {
		d->blocked = true;
		pthread_cond_broadcast(&d->cond);
		while (!d->unblock)
			pthread_cond_wait(&d->cond, &d->lock);
	}
	if (handle >= d->regs || !d->rec[handle].live)
		d->bad_deregs++;
	else
		d->rec[handle].live = false;
	d->deregs++;
	pthread_mutex_unlock(&d->lock);
}

static const struct uhmm_rcache_ops t_fdev_ops = {
	.reg = t_fdev_reg,
	.dereg = t_fdev_dereg,
};

/* Is handle h registered now? */
static inline bool t_fdev_live(struct t_fdev *d, uint64_t h)
{
	bool live;

	pthread_mutex_lock(&d->lock);
	live = h < d->regs && d->rec[h].live;
	pthread_mutex_unlock(&d->lock);
	return live;
}

static inline unsigned long t_fdev_regs(struct t_fdev *d)
{
	unsigned long n;

	pthread_mutex_lock(&d->lock);
	n = d->regs;
	pthread_mutex_unlock(&d->lock);
	return n;
}

static inline unsigned long t_fdev_deregs(struct t_fdev *d)
{
	unsigned long n;

	pthread_mutex_lock(&d->lock);
	n = d->deregs;
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* Wait (no deadline of its own) until a dereg blocks on block_handle. */
static inline void t_fdev_wait_blocked(struct t_fdev *d)
{
	pthread_mutex_lock(&d->lock);
	while (!d->blocked)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

static inline void t_fdev_release(struct t_fdev *d)
{
	pthread_mutex_lock(&d->lock);
	d->unblock = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/*
 * ---- the counting device ----
 *
 * For tests with many threads and many registrations: reg adds one live
 * registration and dereg drops one, and the device keeps the most it ever
 * had at once, which is what the cache's limits are about (a real device
 * runs out of slots or MRs). Handles are numbered from 0 up to the
 * capacity given to t_cdev_init() (then reg fails with -ENOSPC), and each
 * is remembered live or not, so a test can check that what it holds is
 * still registered. dereg sleeps dereg_us first, as a real device's may
 * (an MR deregistration, a table update): the registration still counts
 * while it sleeps. reg sleeps reg_us (0 unless set after init), to give
 * invalidations time to land inside a registration. Lock-free: reg runs
 * in gets, dereg on the worker too.
 */
struct t_cdev {
	unsigned long nhandles;		/* capacity of is_live[] */
	unsigned int dereg_us;		/* each dereg sleeps this long */
	unsigned int reg_us;		/* each reg sleeps this long */
	unsigned long next;		/* atomic: handles handed out */
	long live, max_live;		/* atomic: registrations now, most */
	unsigned long bad_deregs;	/* atomic: unknown or dead handle */
	char *is_live;			/* atomic, by handle */
};

static inline void t_cdev_init(struct t_cdev *d, unsigned long nhandles,
			       unsigned int dereg_us)
{
	memset(d, 0, sizeof(*d));
	d->nhandles = nhandles;
	d->dereg_us = dereg_us;
	d->is_live = calloc(nhandles, 1);
	REQUIRE(d->is_live);
}

static inline void t_cdev_free(struct t_cdev *d)
{
	free(d->is_live);
	d->is_live = NULL;
}

static inline int t_cdev_reg(void *dev, void *addr, size_t len,
			     unsigned int access, uint64_t *handle)
{
	struct t_cdev *d = dev;
	unsigned long h = __atomic_fetch_add(&d->next, 1, __ATOMIC_RELAXED);
	long live, max;

	(void)addr;
	(void)len;
	(void)access;
	if (h >= d->nhandles)
		return -ENOSPC;
	if (d->reg_us)
		usleep(d->reg_us);
	__atomic_store_n(&d->is_live[h], 1, __ATOMIC_RELEASE);
	live = __atomic_add_fetch(&d->live, 1, __ATOMIC_SEQ_CST);
	max = __atomic_load_n(&d->max_live, __ATOMIC_RELAXED);
	while (live > max &&
	       !__atomic_compare_exchange_n(&d->max_live, &max, live, true,
					    __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
	*handle = h;
	return 0;
}

static inline void t_cdev_dereg(void *dev, uint64_t handle)
{
	struct t_cdev *d = dev;

	if (d->dereg_us)
		usleep(d->dereg_us);
	if (handle >= d->nhandles ||
	    !__atomic_exchange_n(&d->is_live[handle], 0, __ATOMIC_ACQ_REL)) {
		__atomic_fetch_add(&d->bad_deregs, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_sub_fetch(&d->live, 1, __ATOMIC_SEQ_CST);
}

static const struct uhmm_rcache_ops t_cdev_ops = {
	.reg = t_cdev_reg,
	.dereg = t_cdev_dereg,
};

static inline bool t_cdev_live(struct t_cdev *d, uint64_t h)
{
	return h < d->nhandles &&
	       __atomic_load_n(&d->is_live[h], __ATOMIC_ACQUIRE);
}

/* ---- the cache ---- */

static inline struct uhmm_rcache_stats t_rc_stats(struct uhmm_rcache *rc)
{
	struct uhmm_rcache_stats st;

	REQUIRE(uhmm_rcache_stats(rc, &st) == 0);
	return st;
}

/*
 * Poll the stats until deregistrations reaches n: up to 1000 x 10 ms.
 * A bounded wait for the worker, not a statement about time. Returns
 * whether it got there.
 */
static inline bool t_rc_wait_deregs(struct uhmm_rcache *rc, unsigned long n)
{
	for (int i = 0; i < 1000; i++) {
		if (t_rc_stats(rc).deregistrations >= n)
			return true;
		usleep(10000);
	}
	return false;
}

/* All seven counters at once, with the line of the check on a mismatch. */
#define CHECK_STATS(rc, h, m, inv, ev, dr, nr, nb)                             \
	do {                                                                   \
		struct uhmm_rcache_stats st_ = t_rc_stats(rc);                 \
		CHECK_EQ(st_.hits, h);                                         \
		CHECK_EQ(st_.misses, m);                                       \
		CHECK_EQ(st_.invalidations, inv);                              \
		CHECK_EQ(st_.evictions, ev);                                   \
		CHECK_EQ(st_.deregistrations, dr);                             \
		CHECK_EQ(st_.regions, nr);                                     \
		CHECK_EQ(st_.bytes_registered, nb);                            \
	} while (0)

/* n fresh pages, each filled with its own byte (c, c + 1, ...). */
static inline char *t_rc_map(unsigned long n, int c)
{
	char *p = t_map(n);

	for (unsigned long i = 0; i < n; i++)
		memset(p + i * t_page, c + (int)i, t_page);
	return p;
}

#ifdef T_RC_URING
#include <fcntl.h>

#include "uhmm_uring.h"

/* A ring, or a skip saying why there is none. */
static inline void t_ring(struct io_uring *ring, unsigned int entries)
{
	int ret = io_uring_queue_init(entries, ring, 0);

	if (ret == -ENOSYS || ret == -EPERM || ret == -ENOMEM)
		SKIP("io_uring is not usable here (io_uring_queue_init: %s)",
		     strerror(-ret));
	REQUIRE(ret == 0);
}

/* A fixed-buffer device on ring, or a skip if the kernel has none. */
static inline struct uhmm_uring_dev *t_uring_dev(struct io_uring *ring,
						 unsigned int slots)
{
	struct uhmm_uring_dev *dev;
	int ret = uhmm_uring_dev_open(&dev, ring, slots);

	if (ret == -EINVAL || ret == -EOPNOTSUPP)
		SKIP("no sparse fixed-buffer tables here "
		     "(uhmm_uring_dev_open: %s)", strerror(-ret));
	REQUIRE(ret == 0);
	return dev;
}

/* The 8-byte word at file offset off of data generation gen. */
static inline uint64_t t_word(uint64_t off, uint64_t gen)
{
	return (gen << 40) ^ off ^ 0x5a5a000000000000ull;
}

/* A temporary file of len bytes (a multiple of 8) of generation gen,
 * open read-write and already unlinked. */
static inline int t_data_file(size_t len, uint64_t gen)
{
	char path[] = "/tmp/uhmm-rcache-XXXXXX";
	uint64_t *w = malloc(len);
	int fd = mkstemp(path);

	REQUIRE(w && fd >= 0);
	unlink(path);
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_word(i * 8, gen);
	REQUIRE(pwrite(fd, w, len, 0) == (ssize_t)len);
	free(w);
	return fd;
}

/* Does p[0, len) hold file bytes [off, off + len) of generation gen?
 * off and len are multiples of 8; p need not be aligned. */
static inline bool t_holds(const void *p, uint64_t off, size_t len,
			   uint64_t gen)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w, want = t_word(off + i, gen);

		memcpy(&w, (const char *)p + i, 8);
		if (w != want)
			return false;
	}
	return true;
}

/* Fill p[0, len) with what file bytes [off, off + len) of gen hold. */
static inline void t_fill(void *p, uint64_t off, size_t len, uint64_t gen)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = t_word(off + i, gen);

		memcpy((char *)p + i, &w, 8);
	}
}

/* Does file fd hold generation gen at [off, off + len)? (pread) */
static inline bool t_file_holds(int fd, uint64_t off, size_t len, uint64_t gen)
{
	char *b = malloc(len);
	bool ok;

	REQUIRE(b);
	REQUIRE(pread(fd, b, len, (off_t)off) == (ssize_t)len);
	ok = t_holds(b, off, len, gen);
	free(b);
	return ok;
}

static inline bool t_all(const void *p, int c, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (((const unsigned char *)p)[i] != (unsigned char)c)
			return false;
	return true;
}

/* One READ_FIXED (read) or WRITE_FIXED through a raw slot; the result. */
static inline int t_slot_io(struct io_uring *ring, bool read, int fd,
			    void *buf, size_t len, uint64_t off, uint64_t slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	REQUIRE(sqe);
	if (read)
		io_uring_prep_read_fixed(sqe, fd, buf, (unsigned int)len, off,
					 (int)slot);
	else
		io_uring_prep_write_fixed(sqe, fd, buf, (unsigned int)len, off,
					  (int)slot);
	REQUIRE(io_uring_submit(ring) == 1);
	REQUIRE(io_uring_wait_cqe(ring, &cqe) == 0);
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}
/* Does file fd hold, at [at, at + len), file bytes [off, off + len) of
 * generation gen? (pread) */
static inline bool t_file_holds_from(int fd, uint64_t at, uint64_t off,
				     size_t len, uint64_t gen)
{
	char *b = malloc(len);
	bool ok;

	REQUIRE(b);
	REQUIRE(pread(fd, b, len, (off_t)at) == (ssize_t)len);
	ok = t_holds(b, off, len, gen);
	free(b);
	return ok;
}

/*
 * The staleness scenarios (tests/rcache-stale-*.c): one change that puts
 * new memory at a registered buffer's address, run twice.
 *
 * t_stale_device(): with the device alone (ops->reg straight on a slot, no
 * cache, no mm: nothing is watched, so no unmap blocks). After the change,
 * READ_FIXED through the slot leaves the application's new memory as it was
 * (and lands in the old pages, where the scenario still shows them), and
 * WRITE_FIXED through it sends the OLD pages' bytes to the file: the
 * scenario really does make the device stale.
 *
 * t_stale_cache(): the same change with the buffer registered through a
 * cache on a monitored mm: READ_FIXED through the cache lands in the pages
 * the application sees now, and WRITE_FIXED sends the new bytes.
 *
 * File layout (len bytes each): area 0 and 1 hold generation 1; area 2 is
 * where writes go. The buffer holds generation 7 ("old") before the change
 * and 8 ("new") after it, as the application wrote them.
 */
struct t_stale {
	const char *what;
	size_t len;				/* multiple of 8 */
	/* The buffer, mapped and writable. */
	char *(*make)(struct t_stale *s);
	/* Put new memory at buf; false if it could not be done at the same
	 * address (then the old buffer is gone and nothing is left). */
	bool (*change)(struct t_stale *s, char *buf);
	/* Undo make (and whatever change left). */
	void (*unmake)(struct t_stale *s, char *buf);
	char *oldview;	/* set by change: the old pages, still mapped */
	const char *hint;	/* why change may never succeed, for the skip */
};

#define T_STALE_TRIES 5

static inline void t_stale_region(const char *buf, size_t len,
				  unsigned long *start, unsigned long *rlen)
{
	unsigned long a = (unsigned long)buf & ~(t_page - 1);
	unsigned long e = ((unsigned long)buf + len + t_page - 1) &
			  ~(t_page - 1);

	*start = a;
	*rlen = e - a;
}

static inline void t_stale_device(struct t_stale *s)
{
	const struct uhmm_rcache_ops *ops = uhmm_uring_rcache_ops();
	size_t len = s->len;
	struct uhmm_uring_dev *dev;
	struct io_uring ring;
	unsigned long start, rlen;
	uint64_t slot = 0;
	char *buf = NULL;
	int fd, tries;

	if (!t_page)
		t_page = (unsigned long)sysconf(_SC_PAGESIZE);
	t_ring(&ring, 8);
	dev = t_uring_dev(&ring, 4);
	fd = t_data_file(3 * len, 1);
	for (tries = 0; tries < T_STALE_TRIES; tries++) {
		buf = s->make(s);
		s->oldview = NULL;
		t_stale_region(buf, len, &start, &rlen);
		REQUIRE(ops->reg(dev, (void *)start, rlen,
				 UHMM_ACCESS_READ | UHMM_ACCESS_WRITE,
				 &slot) == 0);
		/* The device works: a read through the slot lands. */
		CHECK_EQ(t_slot_io(&ring, true, fd, buf, len, 0, slot),
			 (long long)len);
		CHECK(t_holds(buf, 0, len, 1));
		t_fill(buf, 0, len, 7);
		if (s->change(s, buf))
			break;
		ops->dereg(dev, slot);
	}
	if (tries == T_STALE_TRIES)
		SKIP("%s: the new memory never came back at the same address "
		     "in %d tries%s%s", s->what, T_STALE_TRIES,
		     s->hint ? ": " : "", s->hint ? s->hint : "");
	t_fill(buf, 0, len, 8);

	/* READ_FIXED: the new memory is untouched; the old pages got it. */
	CHECK_EQ(t_slot_io(&ring, true, fd, buf, len, len, slot),
		 (long long)len);
	CHECK(t_holds(buf, 0, len, 8));
	if (s->oldview)
		CHECK(t_holds(s->oldview, len, len, 1));
	/* WRITE_FIXED: the file gets the old pages (what the read put
	 * there), not the application's bytes. */
	CHECK_EQ(t_slot_io(&ring, false, fd, buf, len, 2 * len, slot),
		 (long long)len);
	CHECK(t_file_holds_from(fd, 2 * len, len, len, 1));
	CHECK(!t_file_holds_from(fd, 2 * len, 0, len, 8));
	if (!t_failed)
		printf("%s, device alone: READ_FIXED missed the new memory%s, "
		       "WRITE_FIXED sent the old pages (stale, as expected)\n",
		       s->what, s->oldview ? " and landed in the old pages" :
		       "");
	else
		printf("%s, device alone: NOT shown stale\n", s->what);

	ops->dereg(dev, slot);
	s->unmake(s, buf);
	CHECK_EQ(uhmm_uring_dev_close(dev), 0);
	io_uring_queue_exit(&ring);
	close(fd);
}

static inline void t_stale_cache(struct uhmm_mm *mm, struct t_stale *s)
{
	size_t len = s->len;
	struct uhmm_uring_dev *dev;
	struct uhmm_rcache *rc;
	struct uhmm_rcache_stats st0, st;
	struct io_uring ring;
	char *buf = NULL;
	int fd, tries, failed = t_failed;

	t_ring(&ring, 8);
	dev = t_uring_dev(&ring, 16);
	REQUIRE(uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev,
				   NULL) == 0);
	fd = t_data_file(3 * len, 1);
	for (tries = 0; tries < T_STALE_TRIES; tries++) {
		buf = s->make(s);
		s->oldview = NULL;
		/* Registered through the cache, used both ways. */
		CHECK_EQ(uhmm_uring_read_fixed_sync(rc, &ring, fd, buf,
						    (unsigned int)len, 0),
			 (long long)len);
		CHECK(t_holds(buf, 0, len, 1));
		CHECK_EQ(uhmm_uring_write_fixed_sync(rc, &ring, fd, buf,
						     (unsigned int)len,
						     2 * len),
			 (long long)len);
		CHECK(t_file_holds_from(fd, 2 * len, 0, len, 1));
		t_fill(buf, 0, len, 7);
		st0 = t_rc_stats(rc);
		if (s->change(s, buf))
			break;
	}
	if (tries == T_STALE_TRIES)
		SKIP("%s: the new memory never came back at the same address "
		     "in %d tries%s%s", s->what, T_STALE_TRIES,
		     s->hint ? ": " : "", s->hint ? s->hint : "");
	t_fill(buf, 0, len, 8);

	/* WRITE_FIXED through the cache sends the application's bytes. */
	CHECK_EQ(uhmm_uring_write_fixed_sync(rc, &ring, fd, buf,
					     (unsigned int)len, 2 * len),
		 (long long)len);
	CHECK(t_file_holds_from(fd, 2 * len, 0, len, 8));
	/* READ_FIXED through the cache lands in the memory seen now. */
	CHECK_EQ(uhmm_uring_read_fixed_sync(rc, &ring, fd, buf,
					    (unsigned int)len, len),
		 (long long)len);
	CHECK(t_holds(buf, len, len, 1));
	if (s->oldview)
		CHECK(t_holds(s->oldview, 0, len, 7));
	/* The buffer's region(s) were invalidated and registered anew (the
	 * device may use one region for both directions, or two). */
	st = t_rc_stats(rc);
	CHECK(st.misses - st0.misses >= 1);
	CHECK(st.invalidations - st0.invalidations >= 1);
	if (t_failed == failed)
		printf("%s, through the cache: both transfers used the "
		       "current memory (%lu misses, %lu invalidations)\n",
		       s->what, st.misses, st.invalidations);

	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(uhmm_uring_dev_close(dev), 0);
	s->unmake(s, buf);
	io_uring_queue_exit(&ring);
	close(fd);
}

/*
 * The whole check: first the device alone goes stale, then through the
 * cache on a monitored mm it does not.
 */
static inline int t_stale_run(struct t_stale *s)
{
	struct uhmm_mm *mm;

	t_stale_device(s);
	mm = t_open();
	t_stale_cache(mm, s);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}

/* Map len bytes (page multiple) of private anonymous memory exactly at
 * addr, which must be free; NULL if something else took it. */
static inline char *t_map_at(void *addr, size_t len)
{
	char *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
		       0);

	if (p == MAP_FAILED)
		return NULL;
	if (p != addr) {	/* a kernel that took it as a hint */
		munmap(p, len);
		return NULL;
	}
	return p;
}

static inline char *t_stale_map(struct t_stale *s)
{
	char *p = mmap(NULL, s->len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	return p;
}

static inline void t_stale_unmap(struct t_stale *s, char *buf)
{
	munmap(buf, s->len);
	if (s->oldview)
		munmap(s->oldview, s->len);
	s->oldview = NULL;
}
#endif /* T_RC_URING */

#endif
