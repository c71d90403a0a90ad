/* SPDX-License-Identifier: MIT */
/*
 * libuhmm_fabric against libfabric's import-monitor contract, with this
 * program in libfabric's place: it defines fi_open(), so the adapter's
 * fi_import() hands the monitor to it, and it calls start, subscribe,
 * valid, unsubscribe and stop as libfabric does - under one global
 * mm_lock, which its notify() takes too - in the two flavours:
 *
 *   1.17  notify() uncaches; nothing is ever unsubscribed;
 *   2.1   notify() also unsubscribes each entry it uncaches, from inside
 *         notify(), on the notifying thread, under mm_lock.
 *
 * It checks: a second import is -EBUSY; the adapter never calls notify()
 * with mm_lock held (mm_lock is an error-checking mutex: a relock by its
 * owner is counted, not a deadlock); valid() is false from the moment an
 * munmap(), a raw munmap syscall or an madvise(MADV_DONTNEED) of the
 * range returned - never true after it - and every change is notified;
 * subscribe refuses memory already unmapped; a full table evicts the
 * oldest and notifies it; in both flavours, cycles of ten times the table
 * never run out of ranges; a thread that holds mm_lock and keeps
 * subscribing and validating while another thread unmaps (so notify()
 * waits for mm_lock on uhmm's dispatcher) never waits for it; close is
 * -EBUSY while started. A control first shows what the adapter's check
 * adds: a flag cleared by the callback alone (the stats' "notified"
 * count, read right after munmap returned) lags the munmap.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_ext.h>

#include "test.h"
#include "uhmm_fabric.h"

#define MAX_RANGES 8
#define BUF_PAGES 4

static struct fid_mem_monitor *monitor;	/* what fi_import() handed us */
static pthread_mutex_t mm_lock;		/* libfabric's */
static bool flavour_21;			/* atomic: notify() unsubscribes */
static unsigned long notify_calls, notify_relocks;	/* [atomic] */
/* notify() calls overlapping [watch_start, watch_end): a test's own range,
 * apart from notifications of earlier tests' ranges still in flight. */
static uintptr_t watch_start, watch_end;	/* [mm_lock] */
static unsigned long watch_calls;		/* [mm_lock] */

/* libfabric's cache, as far as notify() needs it: the subscribed keys. */
#define CACHE_MAX 4096
static struct {
	const void *addr;
	size_t len;
} cache[CACHE_MAX];			/* [mm_lock] len 0: free */

static size_t page;

static void cache_add(const void *addr, size_t len)
{
	for (int i = 0; i < CACHE_MAX; i++) {
		if (!cache[i].len) {
			cache[i].addr = addr;
			cache[i].len = len;
			return;
		}
	}
	REQUIRE(!"fake cache full");
}

static void lock_mm(void)
{
	int ret = pthread_mutex_lock(&mm_lock);

	if (ret == EDEADLK)
		__atomic_fetch_add(&notify_relocks, 1, __ATOMIC_RELAXED);
	REQUIRE(ret == 0 || ret == EDEADLK);
}

/* libfabric's ofi_monitor_notify(): uncache what overlaps. */
static void fake_notify(struct fid_mem_monitor *mon, const void *addr,
			size_t len)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;

	CHECK(mon == monitor);
	if (pthread_mutex_lock(&mm_lock) == EDEADLK) {
		/* The adapter called us under mm_lock: a deadlock in the
		 * real libfabric. Counted; the test fails on it. */
		__atomic_fetch_add(&notify_relocks, 1, __ATOMIC_RELAXED);
		return;
	}
	if (s < watch_end && watch_start < e)
		watch_calls++;
	for (int i = 0; i < CACHE_MAX; i++) {
		uintptr_t cs = (uintptr_t)cache[i].addr;

		if (!cache[i].len || cs >= e || s >= cs + cache[i].len)
			continue;
		if (__atomic_load_n(&flavour_21, __ATOMIC_RELAXED))
			monitor->export_ops->unsubscribe(monitor, cache[i].addr,
							 cache[i].len);
		cache[i].len = 0;
	}
	/* Counted last: a waiter that sees it sees the unsubscribes too. */
	__atomic_fetch_add(&notify_calls, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mm_lock);
}

static struct fi_ops_mem_notify notify_ops = {
	.size = sizeof(struct fi_ops_mem_notify),
	.notify = fake_notify,
};

static int fid_close_ok(struct fid *fid)
{
	(void)fid;
	return 0;
}

static int import_bind(struct fid *fid, struct fid *bfid, uint64_t flags)
{
	struct fid_mem_monitor *mon = (struct fid_mem_monitor *)bfid;
	static struct fi_ops mon_fid_ops = {
		.size = sizeof(struct fi_ops),
		.close = fid_close_ok,
	};

	(void)fid;
	(void)flags;
	if (monitor)
		return -FI_EBUSY;	/* libfabric: one imported monitor */
	CHECK_EQ(bfid->fclass, FI_CLASS_MEM_MONITOR);
	CHECK(mon->export_ops->size >= sizeof(struct fi_ops_mem_monitor));
	REQUIRE(mon->export_ops->start && mon->export_ops->stop &&
		mon->export_ops->subscribe && mon->export_ops->unsubscribe &&
		mon->export_ops->valid);
	mon->fid.ops = &mon_fid_ops;
	mon->import_ops = &notify_ops;
	monitor = mon;
	return 0;
}

static struct fi_ops import_fid_ops = {
	.size = sizeof(struct fi_ops),
	.close = fid_close_ok,
	.bind = import_bind,
};
static struct fid import_fid = {
	.fclass = FI_CLASS_MEM_MONITOR,
	.ops = &import_fid_ops,
};

/* libfabric's, interposed: fi_import() opens "mr_cache" and binds. */
int fi_open(uint32_t version, const char *name, void *attr, size_t attr_len,
	    uint64_t flags, struct fid **fid, void *context)
{
	(void)version;
	(void)attr;
	(void)attr_len;
	(void)flags;
	(void)context;
	if (strcmp(name, "mr_cache"))
		return -FI_ENOSYS;
	*fid = &import_fid;
	return 0;
}

/* The cache's side, under mm_lock as libfabric calls it. */
static int subscribe(const void *addr, size_t len)
{
	int ret;

	lock_mm();
	ret = monitor->export_ops->subscribe(monitor, addr, len);
	if (!ret)
		cache_add(addr, len);
	pthread_mutex_unlock(&mm_lock);
	return ret;
}

/*
 * subscribe() refuses, for a moment: -FI_EAGAIN while an earlier change of
 * these addresses (a previous round's, at an address mmap() gave out
 * again) is still dispatched; -FI_ENOMEM while every spare range waits
 * for uhmm's dispatcher to finish its removal. Retried without a bound:
 * a range that never came back would hang here (ctest's timeout).
 */
static unsigned long refusals;

static int subscribe_settled(const void *addr, size_t len)
{
	int ret;

	while ((ret = subscribe(addr, len)) == -FI_EAGAIN ||
	       ret == -FI_ENOMEM) {
		refusals++;
		sched_yield();
	}
	return ret;
}

static bool valid(const void *addr, size_t len)
{
	bool ret;

	lock_mm();
	ret = monitor->export_ops->valid(monitor, addr, len);
	pthread_mutex_unlock(&mm_lock);
	return ret;
}

/* valid() of a range just subscribed: true, once no event read nearby
 * (the previous round's) is still being dispatched. */
static bool valid_settled(const void *addr, size_t len)
{
	for (int i = 0; i < 1000000; i++) {
		if (valid(addr, len))
			return true;
		sched_yield();
	}
	return false;
}

static struct uhmm_fabric_stats stats(void)
{
	struct uhmm_fabric_stats s;

	REQUIRE(uhmm_fabric_stats(&s) == 0);
	return s;
}

/* Wait (no bound: ctest's timeout guards against a hang) until the
 * adapter notified n ranges in all. */
static void wait_notified(unsigned long n)
{
	while (__atomic_load_n(&notify_calls, __ATOMIC_ACQUIRE) < n)
		sched_yield();
}

/* Wait (no bound, as above) until the notify() that uncached addr's
 * entry has returned: other ranges' notifications may come first. */
static void wait_uncached(const void *addr)
{
	for (;;) {
		bool cached = false;

		lock_mm();
		for (int i = 0; i < CACHE_MAX; i++)
			cached |= cache[i].len && cache[i].addr == addr;
		pthread_mutex_unlock(&mm_lock);
		if (!cached)
			return;
		sched_yield();
	}
}

static char *map(size_t pages)
{
	char *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	memset(p, 1, pages * page);
	return p;
}

enum change { UNMAP, RAW_UNMAP, DONTNEED, NCHANGES };
static const char *const change_name[] = { "munmap", "raw SYS_munmap",
					   "MADV_DONTNEED" };

static void change(char *p, size_t len, enum change c)
{
	switch (c) {
	case UNMAP:
		REQUIRE(munmap(p, len) == 0);
		break;
	case RAW_UNMAP:
		REQUIRE(syscall(SYS_munmap, p, len) == 0);
		break;
	default:
		REQUIRE(madvise(p, len, MADV_DONTNEED) == 0);
		break;
	}
}

/*
 * Subscribe a buffer (not page aligned, as libfabric passes it), change
 * it, and ask valid() the moment the change returned: never true. The
 * control is whether notify() had been called by then.
 */
static void changes_are_seen(int rounds)
{
	unsigned long lagged = 0;

	for (int c = 0; c < NCHANGES; c++) {
		unsigned long lagging = 0;

		for (int i = 0; i < rounds; i++) {
			char *p = map(BUF_PAGES);
			const void *addr = p + 100;
			size_t len = 2 * page;
			unsigned long before =
				__atomic_load_n(&notify_calls, __ATOMIC_RELAXED);

			int ret = subscribe_settled(addr, len);

			if (ret)
				fprintf(stderr, "%s round %d: subscribe: %d\n",
					change_name[c], i, ret);
			REQUIRE(ret == 0);
			CHECK(valid_settled(addr, len));
			change(p, BUF_PAGES * page, c);
			lagging += __atomic_load_n(&notify_calls,
						   __ATOMIC_RELAXED) == before;
			CHECK(!valid(addr, len));
			wait_notified(before + 1);
			CHECK(!valid(addr, len));
			if (c == DONTNEED)
				munmap(p, BUF_PAGES * page);
		}
		printf("%-15s valid() after it returned: never; notify() not "
		       "yet called then: %lu of %d\n", change_name[c], lagging,
		       rounds);
		lagged += lagging;
	}
	/* The control: a monitor that trusted its callback alone would
	 * have answered valid() with the old registration that often. */
	if (!lagged)
		fprintf(stderr, "control: notify() was never late, so this "
			"run did not exercise the gap\n");
	CHECK(lagged > 0);
}

/* Memory gone between registration and subscribe: refused, not cached. */
static void holes_are_refused(void)
{
	char *p = map(3);

	REQUIRE(munmap(p + page, page) == 0);
	CHECK_EQ(subscribe_settled(p, 3 * page), -FI_EFAULT);
	CHECK_EQ(subscribe_settled(p + page, 10), -FI_EFAULT);
	CHECK_EQ(subscribe_settled(p, page), 0);
	munmap(p, 3 * page);
}

/* A full table evicts its oldest range, and libfabric hears of it. */
static void eviction(void)
{
	char *bufs[3 * MAX_RANGES];
	struct uhmm_fabric_stats s0 = stats(), s;
	unsigned long n0 = __atomic_load_n(&notify_calls, __ATOMIC_RELAXED);

	for (int i = 0; i < 3 * MAX_RANGES; i++) {
		bufs[i] = map(1);
		REQUIRE(subscribe_settled(bufs[i], page) == 0);
	}
	s = stats();
	CHECK(s.live <= MAX_RANGES);
	CHECK(s.evicted - s0.evicted >= 2 * MAX_RANGES - 1);
	wait_notified(n0 + s.evicted - s0.evicted);
	/* The oldest were evicted: libfabric forgot them; had it not,
	 * valid() would say stale. */
	CHECK(!valid(bufs[0], page));
	CHECK(valid_settled(bufs[3 * MAX_RANGES - 1], page));
	printf("eviction: %llu of %d evicted and notified, %llu live\n",
	       (unsigned long long)(s.evicted - s0.evicted), 3 * MAX_RANGES,
	       (unsigned long long)s.live);
	for (int i = 0; i < 3 * MAX_RANGES; i++)
		munmap(bufs[i], page);
}

/* Ten tables' worth of subscribe + unmap: notified ranges are reaped
 * (1.17) or unsubscribed (2.1), never leaked - a leak would end in
 * -FI_ENOMEM for good. */
static void no_leak(void)
{
	struct uhmm_fabric_stats s0 = stats(), s;

	for (int i = 0; i < 10 * MAX_RANGES; i++) {
		char *p = map(1);

		CHECK_EQ(subscribe_settled(p, page), 0);
		munmap(p, page);
		wait_uncached(p);
	}
	s = stats();
	if (flavour_21)
		CHECK(s.unsubscribed - s0.unsubscribed >= 10 * MAX_RANGES);
	printf("%s: %d cycles, %llu unsubscribed, %lu refusals so far "
	       "(retried)\n", flavour_21 ? "2.1" : "1.17", 10 * MAX_RANGES,
	       (unsigned long long)(s.unsubscribed - s0.unsubscribed),
	       refusals);
}

/*
 * fork() write-protects private memory in the parent (uhmm's PROTECTION
 * window), but a NIC registration pins its pages, which the kernel leaves
 * in place: the registration stays right and libfabric hears nothing.
 */
static void fork_keeps(void)
{
#ifdef __SANITIZE_THREAD__
	printf("fork: skipped (ThreadSanitizer cannot fork a threaded "
	       "process)\n");
#else
	char *p = map(1);
	unsigned long n;
	int status;
	pid_t pid;

	REQUIRE(subscribe_settled(p, page) == 0);
	REQUIRE(valid_settled(p, page));
	/* Only p's: an earlier test's unmap elsewhere may still be
	 * notified (nothing here waits for other ranges' events). */
	pthread_mutex_lock(&mm_lock);
	watch_start = (uintptr_t)p;
	watch_end = watch_start + page;
	watch_calls = 0;
	pthread_mutex_unlock(&mm_lock);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(0);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(valid(p, page));
	pthread_mutex_lock(&mm_lock);
	n = watch_calls;
	watch_start = watch_end = 0;
	pthread_mutex_unlock(&mm_lock);
	CHECK_EQ(n, 0);
	printf("fork: the registration stays valid, nothing notified\n");
	munmap(p, page);
#endif
}

/* Two caches (domains) subscribe the same key: stale for both at once. */
static void shared_key(void)
{
	char *p = map(1);

	REQUIRE(subscribe_settled(p, page) == 0);
	REQUIRE(subscribe_settled(p, page) == 0);
	CHECK(valid_settled(p, page));
	munmap(p, page);
	CHECK(!valid(p, page));
}

struct unmapper {
	char *bufs[MAX_RANGES / 2];
	int rounds;
	bool done;
};

static void *unmapper_main(void *arg)
{
	struct unmapper *u = arg;

	for (int i = 0; i < u->rounds; i++) {
		char *p = u->bufs[i % (MAX_RANGES / 2)];

		/* notify() for this waits for mm_lock, which the main
		 * thread holds most of the time. */
		munmap(p, page);
		REQUIRE(mmap(p, page, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			     0) == p);
		memset(p, 2, page);
	}
	__atomic_store_n(&u->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * The ABBA libfabric users hit: one thread holds mm_lock in subscribe and
 * valid while uhmm's dispatcher, in a callback, waits for mm_lock in
 * notify(). The adapter must never wait there for the dispatcher.
 */
static void no_deadlock(int rounds)
{
	struct unmapper u = { .rounds = rounds };
	unsigned long calls = 0;
	pthread_t th;

	for (int i = 0; i < MAX_RANGES / 2; i++)
		u.bufs[i] = map(1);
	REQUIRE(pthread_create(&th, NULL, unmapper_main, &u) == 0);
	while (!__atomic_load_n(&u.done, __ATOMIC_ACQUIRE)) {
		lock_mm();
		for (int i = 0; i < MAX_RANGES / 2; i++) {
			int ret = monitor->export_ops->subscribe(
				monitor, u.bufs[i], page);

			/* ENOMEM: every spare range waits for the
			 * dispatcher, itself waiting for mm_lock. */
			CHECK(ret == 0 || ret == -FI_EFAULT ||
			      ret == -FI_EAGAIN || ret == -FI_ENOMEM);
			if (!ret)
				cache_add(u.bufs[i], page);
			monitor->export_ops->valid(monitor, u.bufs[i], page);
			calls += 2;
		}
		pthread_mutex_unlock(&mm_lock);
	}
	pthread_join(th, NULL);
	printf("no deadlock: %lu subscribe/valid calls under mm_lock while "
	       "%d unmaps were notified\n", calls, rounds);
	for (int i = 0; i < MAX_RANGES / 2; i++)
		munmap(u.bufs[i], page);
}

static void run(bool v21)
{
	int rounds = (int)(200 * t_scale());

	if (rounds < 20)
		rounds = 20;
	__atomic_store_n(&flavour_21, v21, __ATOMIC_RELAXED);
	printf("== libfabric %s semantics\n", v21 ? "2.1" : "1.17");
	changes_are_seen(rounds);
	holes_are_refused();
	eviction();
	no_leak();
	shared_key();
	fork_keeps();
	no_deadlock(rounds);
}

int main(void)
{
	pthread_mutexattr_t attr;
	int ret;

	page = (size_t)sysconf(_SC_PAGESIZE);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&mm_lock, &attr);
	unsetenv("FI_MR_CACHE_MONITOR");
	setenv("UHMM_FABRIC_MAX_RANGES", "8", 1);

	ret = uhmm_fabric_import();
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		SKIP("uhmm_fabric_import: %s (no userfaultfd here)",
		     strerror(-ret));
	REQUIRE(ret == 0);
	REQUIRE(monitor);
	CHECK_EQ(uhmm_fabric_import(), -EBUSY);
	REQUIRE(monitor->export_ops->start(monitor) == 0);
	CHECK_EQ(uhmm_fabric_close(), -EBUSY);

	run(false);
	run(true);

	CHECK_EQ(__atomic_load_n(&notify_relocks, __ATOMIC_RELAXED), 0);
	CHECK_EQ(stats().notify_under_lock, 0);
	monitor->export_ops->stop(monitor);
	CHECK_EQ(uhmm_fabric_close(), 0);
	CHECK_EQ(uhmm_fabric_close(), -ENOENT);
	{
		struct uhmm_fabric_stats s;

		CHECK_EQ(uhmm_fabric_stats(&s), -ENOENT);
	}
	return t_result();
}
