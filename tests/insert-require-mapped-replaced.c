/* SPDX-License-Identifier: MIT */
/*
 * UHMM_INSERT_REQUIRE_MAPPED over memory that was mapped anew *before* the
 * insert, while the unmap of the mappings it replaced is read but not yet
 * dispatched (another subscription's callback holds the dispatcher, as
 * libfabric's notify() does while the subscribing thread holds mm_lock).
 *
 * The old memory was two mappings that uhmm registered whole and
 * remembers (src/source/uffd.c, "Known mappings"): [p, p+2) and [p+2, p+4)
 * pages, told apart by their protections. mmap(MAP_FIXED) of four pages
 * over both replaces them with one new, unregistered mapping; the kernel
 * sends UNMAP and the reader reads it before mmap() returns. Then an insert
 * over [p, p+3) with the flag: arming skips both stale entries (their
 * unmap is not dispatched, so the table still holds them), and the check,
 * which trusts the table only when one entry covers the whole range,
 * scans the page tables and finds the new mapping unregistered. That
 * mapping was created before the insert, not after arming: uhmm.h allows
 * 0 or -EAGAIN ("an earlier change of it was still being dispatched"),
 * not -EFAULT.
 *
 * Control: the same replacement with the dispatcher free (the unmap
 * dispatched before the insert): 0.
 *
 * A plain insert in the same state says 0 over the unregistered mapping
 * (arming trusted the stale entries): it is covered only because the
 * pending unmap's window still comes - read_try_begin() says -EAGAIN
 * until it is dispatched, the window calls the subscription, and the
 * re-arm after it registers the new mapping.
 */
#include <semaphore.h>

#include "events.h"

static sem_t blocked, let_go;

static bool hold_dispatcher(struct t_dev *dev,
			    const struct uhmm_notifier_range *r)
{
	(void)dev;
	if (r->event == UHMM_EVENT_UNMAP) {
		sem_post(&blocked);
		sem_wait(&let_go);
	}
	return true;
}

static int insert_rm(struct t_dev *dev, struct uhmm_mm *mm, const void *p,
		     unsigned long len)
{
	return t_dev_insert_flags(dev, mm, (unsigned long)p, len,
				  UHMM_INSERT_REQUIRE_MAPPED);
}

/* Returns what the insert over the new mapping said. */
static int replaced(struct uhmm_mm *mm, bool hold)
{
	struct t_dev owner1 = { 0 }, owner2 = { 0 }, late = { 0 },
		     plain = { 0 }, holder = { .hook = hold_dispatcher };
	unsigned long seq;
	/* h between two PROT_NONE guards: merged with neither old mapping,
	 * its unmap leaves their entries alone. */
	char *g = t_map(3), *h = g + t_page, *p = t_map(4);
	int ret, again;

	REQUIRE(mprotect(g, t_page, PROT_NONE) == 0);
	REQUIRE(mprotect(g + 2 * t_page, t_page, PROT_NONE) == 0);

	/* Two mappings, each registered whole and remembered (wider than
	 * the range armed). */
	REQUIRE(mprotect(p + 2 * t_page, 2 * t_page, PROT_READ) == 0);
	REQUIRE(t_dev_insert(&owner1, mm, (unsigned long)p, t_page) == 0);
	REQUIRE(t_dev_insert(&owner2, mm, (unsigned long)(p + 2 * t_page),
			     t_page) == 0);
	REQUIRE(t_registered(p) == 1 && t_registered(p + 3 * t_page) == 1);

	if (hold) {
		REQUIRE(t_dev_insert(&holder, mm, (unsigned long)h, t_page) ==
			0);
		REQUIRE(munmap(h, t_page) == 0);
		sem_wait(&blocked);	/* the dispatcher is in its callback */
	}
	/* Mapped anew, before the insert. */
	REQUIRE(mmap(p, 4 * t_page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
	memset(p, 2, 4 * t_page);
	if (!hold)
		REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_registered(p), hold ? 0 : 1);

	ret = insert_rm(&late, mm, p, 3 * t_page);
	if (hold) {
		REQUIRE(t_dev_insert(&plain, mm, (unsigned long)p,
				     3 * t_page) == 0);
		CHECK_EQ(t_registered(p), 0);
		CHECK_EQ(uhmm_interval_read_try_begin(&plain.sub, &seq),
			 -EAGAIN);
	}
	printf("%s: insert over a mapping made before it: %d (%s)\n",
	       hold ? "unmap of the old mappings not yet dispatched"
		    : "control, unmap dispatched",
	       ret, ret ? strerror(-ret) : "inserted");

	if (hold) {
		sem_post(&let_go);
		REQUIRE(uhmm_mm_sync(mm) == 0);
		REQUIRE(uhmm_interval_notifier_remove(&holder.sub) == 0);
		printf("plain insert there: %d callbacks after the dispatch, "
		       "registered after it: %d\n", t_dev_calls(&plain),
		       t_registered(p));
		CHECK(t_dev_calls(&plain) >= 1);
		CHECK_EQ(t_registered(p), 1);
		REQUIRE(uhmm_interval_notifier_remove(&plain.sub) == 0);
	}
	if (ret == 0)
		REQUIRE(uhmm_interval_notifier_remove(&late.sub) == 0);
	/* Once dispatched, the same insert is accepted. */
	again = insert_rm(&late, mm, p, 3 * t_page);
	CHECK_EQ(again, 0);
	if (again == 0)
		REQUIRE(uhmm_interval_notifier_remove(&late.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&owner1.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&owner2.sub) == 0);
	REQUIRE(munmap(p, 4 * t_page) == 0);
	REQUIRE(munmap(g, 3 * t_page) == 0);
	return ret;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	int ret;

	t_need_require_mapped(mm);
	sem_init(&blocked, 0, 0);
	sem_init(&let_go, 0, 0);

	CHECK_EQ(replaced(mm, false), 0);
	ret = replaced(mm, true);
	if (ret != 0 && ret != -EAGAIN) {
		fprintf(stderr, "a mapping made before the insert was refused "
			"with %d, not 0 or -EAGAIN\n", ret);
		t_failed = 1;
	}
	uhmm_mm_close(mm);
	return t_result();
}
