/* SPDX-License-Identifier: MIT */
/*
 * -EOPNOTSUPP means a mapping userfaultfd really refuses, never a race.
 *
 * Arming looks a mapping up, then registers it; another thread may unmap
 * it in between (the kernel then answers EINVAL: nothing there) and map
 * the same address again before the lookup is repeated, which then finds
 * a mapping identical to the first. Here one thread does exactly that in
 * a loop - munmap() and mmap() of one page at one address, over NPAGE
 * such pages in turn - while the main thread inserts a subscription over
 * them all, takes a snapshot of them with uhmm_range_fault_lock() and
 * removes it, 10^4 times at scale 1. Every insert and every range
 * fault must succeed: the pages are ordinary anonymous memory, whether
 * mapped at the moment or not. (The two threads are pinned to two CPUs
 * where there are two: the race needs them to run at the same time.)
 *
 * The control: mappings that do refuse still give -EOPNOTSUPP - the vdso,
 * io_uring's ring (VM_DONTEXPAND) and a MAP_DROPPABLE mapping, where the
 * kernel has them.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>

#define T_RC_URING
#include "rcache.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

#define ITERS 10000
#define NPAGE 4			/* remapped pages, a hole after each */
#define SPAN (2 * NPAGE)	/* pages subscribed */

static char *base;
static int done;		/* atomic */
static long remaps;		/* [remapper], read after the join */

/* Best effort: on one CPU the race is merely rarer. */
static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/*
 * Another thread's mmap(NULL) of one page (a sanitizer's runtime, a ring)
 * may land in the hole for an instant: that page is left to it, never
 * unmapped again, and the others go on.
 */
static bool lost[NPAGE];	/* [remapper] */
static int nlost;		/* [remapper], read after the join */

static void *remapper(void *arg)
{
	(void)arg;
	pin(1);
	for (unsigned long j = 0; !__atomic_load_n(&done, __ATOMIC_ACQUIRE) &&
				  nlost < NPAGE;
	     j = (j + 1) % NPAGE) {
		char *p = base + 2 * j * t_page, *q;

		if (lost[j])
			continue;
		REQUIRE(munmap(p, t_page) == 0);
		q = mmap(p, t_page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
			 0);
		if (q == MAP_FAILED && errno == EEXIST) {
			lost[j] = true;
			nlost++;
			continue;
		}
		REQUIRE(q == p);
		q[0] = 1;
		remaps++;
	}
	return NULL;
}

/* Insert over [addr, addr + len); the result, and nothing left inserted. */
static int try_insert(struct uhmm_mm *mm, unsigned long addr, size_t len)
{
	struct t_dev dev;
	int ret;

	memset(&dev, 0, sizeof(dev));
	ret = t_dev_insert(&dev, mm, addr, len);
	if (ret == 0)
		REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	return ret;
}

static void control(struct uhmm_mm *mm)
{
	unsigned long vdso = getauxval(AT_SYSINFO_EHDR);
	struct io_uring ring;
	char *d;

	if (vdso)
		CHECK_EQ(try_insert(mm, vdso, t_page), -EOPNOTSUPP);

	/* The SQ ring's mapping: liburing keeps its address. */
	if (io_uring_queue_init(4, &ring, 0) == 0) {
		CHECK_EQ(try_insert(mm, (unsigned long)ring.sq.ring_ptr,
				    t_page), -EOPNOTSUPP);
		io_uring_queue_exit(&ring);
	} else {
		printf("no io_uring here: its ring is not checked\n");
	}

	d = mmap(NULL, t_page, PROT_READ | PROT_WRITE,
		 MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
	if (d == MAP_FAILED) {
		printf("no MAP_DROPPABLE here (%s): not checked\n",
		       strerror(errno));
		return;
	}
	d[0] = 1;
	CHECK_EQ(try_insert(mm, (unsigned long)d, t_page), -EOPNOTSUPP);
	munmap(d, t_page);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	long iters = (long)(ITERS * t_scale());
	long insert_unsupp = 0, fault_unsupp = 0, other = 0;
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	uint64_t pfns[SPAN];
	int last_other = 0;
	pthread_t thread;

	control(mm);
	base = t_map(SPAN);
	for (int j = 0; j < NPAGE; j++)
		REQUIRE(munmap(base + (2 * j + 1) * t_page, t_page) == 0);
	pin(0);
	REQUIRE(pthread_create(&thread, NULL, remapper, NULL) == 0);
	for (long i = 0; i < iters; i++) {
		struct t_dev dev;
		struct uhmm_range range = {
			.notifier = &dev.sub,
			.start = (unsigned long)base,
			.end = (unsigned long)base + SPAN * t_page,
			.pfns = pfns,
		};
		int ret;

		memset(&dev, 0, sizeof(dev));
		ret = t_dev_insert(&dev, mm, range.start, SPAN * t_page);
		if (ret) {
			if (ret == -EOPNOTSUPP)
				insert_unsupp++;
			else
				other++, last_other = ret;
			continue;
		}
		/* A snapshot, no request: holes are ERROR, not -EFAULT. */
		ret = uhmm_range_fault_lock(&range, &lock, 0);
		if (ret == 0)
			pthread_mutex_unlock(&lock);
		else if (ret == -EOPNOTSUPP)
			fault_unsupp++;
		else
			other++, last_other = ret;
		REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(thread, NULL) == 0);

	printf("%ld iterations (scale %g), %ld remaps (%d of %d pages lost "
	       "to another mapping): -EOPNOTSUPP from %ld inserts and %ld "
	       "range faults, %ld other errors (last %d)\n", iters,
	       t_scale(), remaps, nlost, NPAGE, insert_unsupp, fault_unsupp,
	       other, last_other);
	CHECK(nlost < NPAGE);
	CHECK_EQ(insert_unsupp, 0);
	CHECK_EQ(fault_unsupp, 0);
	CHECK_EQ(other, 0);

	control(mm);
	for (int j = 0; j < SPAN; j++)	/* not a lost page: not ours */
		if (j % 2 || !lost[j / 2])
			munmap(base + j * t_page, t_page);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
