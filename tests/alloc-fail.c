/* SPDX-License-Identifier: MIT */
/*
 * Out of memory at every allocation site a public call reaches: with the
 * library's allocation hook (core/alloc.h) failing the nth allocation of
 * this thread and every later one, for n = 1, 2, ... until a whole
 * scenario runs without reaching the nth, each failing call must return
 * -ENOMEM (never another error, never a crash), and undo what it did:
 * the same scenario then runs to the end without the hook, the
 * invalidation of its memory reaching every subscriber. LeakSanitizer
 * (the ASan build) checks at exit that nothing leaked on any path.
 *
 * The scenario: open a monitored mm (the first open of the process also
 * creates the event source), subscribe a buffer, range-fault it with
 * per-page requests, open an io_uring device, create a registration
 * cache over it, get and put a region, then unmap half the buffer and
 * check that the subscription and the cache both saw it.
 */
#include <liburing.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "device.h"
#include "uhmm_uring.h"

#define PAGES 4

static struct io_uring ring;

/* Where the scenario stopped: the failing call's name and result. */
struct outcome {
	const char *call;
	int ret;
};

#define STEP(o, name, expr)                                                    \
	do {                                                                   \
		int r_ = (expr);                                               \
		if (r_) {                                                      \
			(o)->call = (name);                                    \
			(o)->ret = r_;                                         \
			goto out;                                              \
		}                                                              \
	} while (0)

static struct outcome scenario(bool check_events)
{
	struct outcome o = { NULL, 0 };
	long page = sysconf(_SC_PAGESIZE);
	uint64_t pfns[PAGES];
	struct uhmm_mm *mm = NULL;
	struct uhmm_uring_dev *dev = NULL;
	struct uhmm_rcache *rc = NULL;
	struct uhmm_region *region;
	struct t_dev sub = { 0 };
	bool inserted = false;
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	char *buf = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(buf != MAP_FAILED);
	STEP(&o, "uhmm_mm_open", uhmm_mm_open(&mm, 0));
	STEP(&o, "uhmm_interval_notifier_insert",
	     t_dev_insert(&sub, mm, (unsigned long)buf, PAGES * page));
	inserted = true;

	for (int i = 0; i < PAGES; i++)
		pfns[i] = UHMM_PFN_REQ_FAULT | (i & 1 ? UHMM_PFN_REQ_WRITE : 0);
	struct uhmm_range range = {
		.notifier = &sub.sub,
		.start = (unsigned long)buf,
		.end = (unsigned long)buf + PAGES * page,
		.pfns = pfns,
		.pfn_flags_mask = UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE,
	};
	STEP(&o, "uhmm_range_fault_lock", uhmm_range_fault_lock(&range, &lock, 0));
	pthread_mutex_unlock(&lock);

	STEP(&o, "uhmm_uring_dev_open", uhmm_uring_dev_open(&dev, &ring, 8));
	STEP(&o, "uhmm_rcache_create",
	     uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev, NULL));
	STEP(&o, "uhmm_rcache_get",
	     uhmm_rcache_get(rc, buf, PAGES * page, UHMM_ACCESS_READ, &region));
	CHECK_EQ(uhmm_rcache_put(rc, region), 0);

	if (check_events) {
		struct uhmm_rcache_stats st;

		/* The unmap returns once the reader read its event; the
		 * callbacks have run when read_begin returns. */
		CHECK_EQ(munmap(buf + 2 * page, 2 * page), 0);
		uhmm_interval_read_begin(&sub.sub);
		CHECK_EQ(t_dev_calls(&sub), 1);
		CHECK_EQ(uhmm_rcache_stats(rc, &st), 0);
		CHECK_EQ(st.invalidations, 1);
	}
out:
	/* Teardown allocates nothing, so it runs under the hook too. */
	if (rc)
		CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	if (dev)
		CHECK_EQ(uhmm_uring_dev_close(dev), 0);
	if (inserted)
		CHECK_EQ(uhmm_interval_notifier_remove(&sub.sub), 0);
	if (mm)
		CHECK_EQ(uhmm_mm_close(mm), 0);
	munmap(buf, PAGES * page);
	return o;
}

/*
 * Run fn with allocation n failing on, for n = 1, 2, ... until fn gets
 * through without the hook firing; after each failure, if retry, once
 * more without the hook, checking events. Returns how many allocation
 * sites were failed.
 */
static unsigned long walk(const char *what, struct outcome (*fn)(bool),
			  bool retry)
{
	unsigned long n;

	for (n = 1;; n++) {
		unsigned long before = uhmm_alloc_failed();
		struct outcome o;

		uhmm_alloc_fail_from(n);
		o = fn(false);
		uhmm_alloc_fail_from(0);
		if (uhmm_alloc_failed() == before) {
			/* All of it ran: every site was tried. */
			CHECK_EQ(o.ret, 0);
			break;
		}
		if (o.ret != -ENOMEM)
			fprintf(stderr, "%s, allocation %lu failing: %s "
				"returned %d, not -ENOMEM\n", what, n,
				o.call ? o.call : "(no call)", o.ret);
		CHECK_EQ(o.ret, -ENOMEM);
		if (!retry)
			continue;
		/* The failure left nothing behind that breaks a retry. */
		o = fn(true);
		if (o.ret)
			fprintf(stderr, "%s after allocation %lu failed: "
				"%s returned %d\n", what, n, o.call, o.ret);
		CHECK_EQ(o.ret, 0);
	}
	printf("%s: %lu allocations failed one by one, each -ENOMEM, each "
	       "undone\n", what, n - 1);
	return n - 1;
}

/* Only the open, while the process has no event source yet. */
static struct outcome open_only(bool check_events)
{
	struct outcome o = { "uhmm_mm_open", 0 };
	struct uhmm_mm *mm;

	(void)check_events;
	o.ret = uhmm_mm_open(&mm, 0);
	if (!o.ret)
		CHECK_EQ(uhmm_mm_close(mm), 0);
	return o;
}

int main(void)
{
	int ret = io_uring_queue_init(8, &ring, 0);

	if (ret)
		SKIP("no io_uring here (%s)", strerror(-ret));

	/* First: the event source's own allocations, made once (so no
	 * retry in between: it would create the source). */
	CHECK(walk("uhmm_mm_open, first in the process", open_only, false) >=
	      2);
	/* Then every call of the scenario, the source already there. */
	CHECK(walk("the scenario", scenario, true) >= 5);
	io_uring_queue_exit(&ring);
	return t_result();
}
