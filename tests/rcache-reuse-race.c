/* SPDX-License-Identifier: MIT */
/*
 * Address reuse: a thread's mmap() gets the address of a registered buffer
 * that another thread is still unmapping, and reads into it through the
 * cache with io_uring READ_FIXED.
 *
 * The kernel removes the mapping, lets go of mmap_lock and only then
 * queues the UNMAP event and waits for it to be read: the mapper's mmap()
 * can take the address in between. Without strict mode the get that
 * follows finds the old region still valid and the read lands in the old
 * pinned page, leaving the new page as it was (stale). In strict mode the
 * get sees the event in flight and waits for it (uhmm.h, UHMM_MM_STRICT).
 *
 * Each iteration: map a page, read into it through the cache (a miss that
 * registers it), let the unmapper unmap it - through libc's munmap() or a
 * raw syscall(SYS_munmap), alternately - while this thread maps a page at
 * that address (MAP_FIXED_NOREPLACE) as soon as it is free, then poisons
 * the new page and reads into it through the cache: the page must hold
 * the file's bytes. The
 * relaxed cache shows the race is real here (it reports how many reads
 * went stale, and how many reuses happened while the munmap() was still
 * running); the strict cache must have none stale over 10^5 iterations
 * (times UHMM_TEST_SCALE).
 *
 * Built again as hooks-reuse-race with libuhmm_hooks linked in (HOOKED):
 * there a relaxed cache must have none stale through libc's munmap() over
 * 10^5 of them, the change being reported before it is made, while the
 * raw syscall(), which no hook sees, still shows the race.
 *
 * Another mapping of the process (the sanitizer's allocator, uhmm's own)
 * may take the freed page before the main thread does: that iteration is
 * counted as lost and left out, and at most half of them may be.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#define T_RC_URING
#include "rcache.h"

#ifndef HOOKED
#define HOOKED 0		/* tests/hooks-reuse-race.c: 1 */
#endif

#define ITERS 100000		/* strict, at scale 1 */
#define RELAXED_ITERS 20000	/* the demonstration */

static struct {
	char *target;		/* the unmapper's next page */
	unsigned long go;	/* bumped by main: unmap target */
	unsigned long done;	/* = go once munmap() returned */
	bool stop;
} u;

static void *unmapper_main(void *arg)
{
	unsigned long seen = 0;

	(void)arg;
	for (;;) {
		unsigned long go;

		while ((go = __atomic_load_n(&u.go, __ATOMIC_ACQUIRE)) == seen)
			sched_yield();
		seen = go;
		if (__atomic_load_n(&u.stop, __ATOMIC_ACQUIRE))
			return NULL;
		if (go % 2)
			REQUIRE(munmap(u.target, t_page) == 0);
		else
			REQUIRE(syscall(SYS_munmap, u.target, t_page) == 0);
		__atomic_store_n(&u.done, go, __ATOMIC_RELEASE);
	}
}

/* Per way of unmapping: [0] syscall(SYS_munmap), [1] libc's munmap(). */
struct result {
	long iters, in_window[2], stale[2], errors;
	long lost;	/* addresses another mapping took first */
};

static void run(struct uhmm_mm *mm, struct io_uring *ring,
		struct uhmm_uring_dev *dev, int fd, unsigned int flags,
		long iters, struct result *res)
{
	struct uhmm_rcache_config cfg = { .max_regions = 64, .flags = flags };
	struct uhmm_rcache *rc;
	pthread_t thread;

	memset(res, 0, sizeof(*res));
	REQUIRE(uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev,
				   &cfg) == 0);
	u.stop = false;
	u.go = u.done = 0;	/* the unmapper starts from go 0 */
	REQUIRE(pthread_create(&thread, NULL, unmapper_main, NULL) == 0);
	for (long i = 0; i < iters; i++) {
		char *x = mmap(NULL, t_page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned long go;
		bool window;
		void *p;
		int ret;

		REQUIRE(x != MAP_FAILED);
		/* Registered (a miss), and cached. */
		ret = uhmm_uring_read_fixed_sync(rc, ring, fd, x,
						 (unsigned int)t_page, 0);
		if (ret != (int)t_page) {
			fprintf(stderr, "iteration %ld: read: %d\n", i, ret);
			REQUIRE(0);
		}
		u.target = x;
		go = __atomic_add_fetch(&u.go, 1, __ATOMIC_RELEASE);

		/* Map at the address as soon as it is free; whether the
		 * munmap() had returned by then is noted, not waited for.
		 * Occupied after the munmap() returned: another mapping of
		 * the process (the sanitizer's, uhmm's own memory) took it
		 * first. It is theirs; this iteration goes on without it. */
		for (;;) {
			bool unmapped = __atomic_load_n(&u.done,
							__ATOMIC_ACQUIRE) == go;

			p = mmap(x, t_page, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS |
					 MAP_FIXED_NOREPLACE,
				 -1, 0);
			REQUIRE(p == x || (p == MAP_FAILED && errno == EEXIST));
			if (p == x || unmapped)
				break;
		}
		if (p != x) {
			res->lost++;
			continue;
		}
		window = __atomic_load_n(&u.done, __ATOMIC_ACQUIRE) != go;
		res->in_window[go % 2] += window;
		memset(p, 0xee, t_page);
		ret = uhmm_uring_read_fixed_sync(rc, ring, fd, p,
						 (unsigned int)t_page, 0);
		if (ret != (int)t_page) {
			if (res->errors++ < 5)
				fprintf(stderr, "read: %d\n", ret);
		} else if (!t_holds(p, 0, t_page, 1)) {
			res->stale[go % 2]++;
		}
		REQUIRE(munmap(p, t_page) == 0);
		while (__atomic_load_n(&u.done, __ATOMIC_ACQUIRE) != go)
			sched_yield();
	}
	res->iters = iters;
	u.stop = true;
	__atomic_add_fetch(&u.go, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(thread, NULL) == 0);
	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
}

static void report(const char *mode, const struct result *r)
{
	printf("%-8s %7ld iterations, the address reused while munmap() was "
	       "still running: %ld times through libc%s, %ld through "
	       "syscall(); stale reads: %ld through libc, %ld through "
	       "syscall(); %ld errors; %ld addresses taken by another "
	       "mapping first\n", mode, r->iters, r->in_window[1],
	       HOOKED ? " (hooked)" : "", r->in_window[0], r->stale[1],
	       r->stale[0], r->errors, r->lost);
}

int main(void)
{
	struct result relaxed, strict;
	struct uhmm_uring_dev *dev;
	struct io_uring ring;
	struct uhmm_mm *mm;
	int fd;

	mm = t_open();
	t_ring(&ring, 4);
	dev = t_uring_dev(&ring, 128);
	fd = t_data_file(t_page, 1);

	if (HOOKED) {
		/* Relaxed: the hooks alone close the race for libc's munmap;
		 * the raw syscall shows it is still there without them. */
		run(mm, &ring, dev, fd, UHMM_RCACHE_RELAXED,
		    (long)(2 * ITERS * t_scale()), &relaxed);
		report("relaxed", &relaxed);
		CHECK(relaxed.lost * 2 < relaxed.iters);
		CHECK_EQ(relaxed.stale[1], 0);
		CHECK_EQ(relaxed.errors, 0);
	} else {
		run(mm, &ring, dev, fd, UHMM_RCACHE_RELAXED,
		    (long)(RELAXED_ITERS * t_scale()), &relaxed);
		report("relaxed", &relaxed);
		CHECK(relaxed.lost * 2 < relaxed.iters);
		if (!relaxed.stale[0] && !relaxed.stale[1])
			printf("(no stale read without strict mode this time: "
			       "the threads did not interleave so here)\n");
		CHECK_EQ(relaxed.errors, 0);
		run(mm, &ring, dev, fd, UHMM_RCACHE_STRICT,
		    (long)(ITERS * t_scale()), &strict);
		report("strict", &strict);
		CHECK(strict.lost * 2 < strict.iters);
		CHECK_EQ(strict.stale[0] + strict.stale[1], 0);
		CHECK_EQ(strict.errors, 0);
	}

	CHECK_EQ(uhmm_uring_dev_close(dev), 0);
	io_uring_queue_exit(&ring);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	close(fd);
	return t_result();
}
