/* SPDX-License-Identifier: MIT */
/*
 * A subscription registers whole mappings; when such a mapping is later
 * split (mprotect, a partial munmap), removing the subscription must still
 * unregister every piece: afterwards no piece is registered, a munmap of
 * all of it sends no event, and the application's own userfaultfd may
 * register it.
 */
#include "prim/uapi.h"
#include "events.h"

static void split_then_remove(struct uhmm_mm *mm, bool by_munmap)
{
	unsigned long P = t_page, before;
	struct t_log l;
	char *p = t_map(8);

	REQUIRE(t_log_insert(&l, mm, (unsigned long)p, 2 * P) == 0);
	CHECK(t_registered(p + 6 * P));		/* the whole mapping */
	if (by_munmap) {
		/* [0,4) [5,8); the subscription on [0,2) hears nothing */
		REQUIRE(munmap(p + 4 * P, P) == 0);
		REQUIRE(uhmm_mm_sync(mm) == 0);
	} else {
		REQUIRE(mprotect(p + 4 * P, 4 * P, PROT_READ) == 0);
	}
	CHECK(t_registered(p + 6 * P));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	CHECK(!t_registered(p));
	CHECK(!t_registered(p + 6 * P));

	before = t_events(mm);
	REQUIRE(munmap(p, 8 * P) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_events(mm), before);
}

/* With a second subscription on the far piece, only the near one goes. */
static void split_shared(struct uhmm_mm *mm)
{
	unsigned long P = t_page;
	struct t_log near, far;
	char *p = t_map(8);

	REQUIRE(t_log_insert(&near, mm, (unsigned long)p, P) == 0);
	REQUIRE(mprotect(p + 4 * P, 4 * P, PROT_READ) == 0);
	REQUIRE(t_log_insert(&far, mm, (unsigned long)p + 6 * P, 2 * P) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&near.dev.sub) == 0);
	CHECK(!t_registered(p));
	CHECK(t_registered(p + 4 * P));
	REQUIRE(munmap(p + 7 * P, P) == 0);
	t_log_wait(&far);
	CHECK_LOG(&far, T_EV(UNMAP, (unsigned long)p + 7 * P,
			     (unsigned long)p + 8 * P));
	REQUIRE(uhmm_interval_notifier_remove(&far.dev.sub) == 0);
	CHECK(!t_registered(p + 4 * P));
	REQUIRE(munmap(p, 7 * P) == 0);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();

	split_then_remove(mm, false);
	split_then_remove(mm, true);
	split_shared(mm);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
