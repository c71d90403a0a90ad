/* SPDX-License-Identifier: MIT */
/*
 * Every documented error for bad input, and nothing else changed by it.
 */
#include <limits.h>

#include "core/internal.h"
#include "device.h"

static bool nop(struct uhmm_interval_notifier *sub,
		const struct uhmm_notifier_range *range, unsigned long seq)
{
	(void)sub;
	(void)range;
	(void)seq;
	return true;
}

int main(void)
{
	static const struct uhmm_interval_notifier_ops ops = { nop };
	static const struct uhmm_interval_notifier_ops no_callback = { NULL };
	struct uhmm_interval_notifier sub = { 0 }, live = { 0 };
	struct uhmm_notifier_range r = { .start = 0x2000, .end = 0x1000,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct uhmm_mm *mm;
	unsigned long seq;

	/* Opening. */
	CHECK_EQ(uhmm_mm_open(NULL, UHMM_MM_NO_MONITOR), -EINVAL);
	CHECK_EQ(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR | 0x80), -EINVAL);
	CHECK_EQ(uhmm_mm_get(NULL), -EINVAL);
	CHECK_EQ(uhmm_mm_close(NULL), -EINVAL);
	CHECK_EQ(uhmm_mm_sync(NULL), -EINVAL);
	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	CHECK_EQ(uhmm_mm_sync(mm), 0);
	seq = uhmm_mm_seq(mm);

	/* Inserting. */
	CHECK_EQ(uhmm_interval_notifier_insert(NULL, mm, 0, 1, &ops), -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, NULL, 0, 1, &ops),
		 -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, 0, 1, NULL), -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, 0, 1, &no_callback),
		 -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, 0x1000, 0, &ops),
		 -EOVERFLOW);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, ULONG_MAX, 2, &ops),
		 -EOVERFLOW);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, 0x1000, ULONG_MAX,
					       &ops), -EOVERFLOW);
	/* The largest legal ranges. */
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, 0, ULONG_MAX, &ops), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&sub), 0);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, 1, ULONG_MAX, &ops), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&sub), 0);

	/* Removing. */
	CHECK_EQ(uhmm_interval_notifier_remove(NULL), -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_remove(&sub), -ENOENT);
	struct uhmm_interval_notifier never = { 0 };
	CHECK_EQ(uhmm_interval_notifier_remove(&never), -ENOENT);

	/* Invalidating. */
	CHECK_EQ(uhmm_mm_invalidate(NULL, 0, 1, UHMM_EVENT_UNMAP), -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate(mm, 0x2000, 0x1000, UHMM_EVENT_UNMAP),
		 -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate(mm, 0x1000, 0x1000, UHMM_EVENT_UNMAP),
		 -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate(mm, 0, 1, 0), -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate(mm, 0, 1, (enum uhmm_event)99), -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate(mm, 0, 1, UHMM_EVENT_RELEASE), -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate_start(mm, &r), -EINVAL);	/* end < start */
	CHECK_EQ(uhmm_mm_invalidate_start(NULL, &r), -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate_start(mm, NULL), -EINVAL);
	r.end = 0x3000;
	r.flags = 0x10;
	CHECK_EQ(uhmm_mm_invalidate_start(mm, &r), -EINVAL);	/* bad flags */
	r.flags = UHMM_RANGE_BLOCKABLE;
	CHECK_EQ(uhmm_mm_invalidate_end(mm, &r), -EINVAL);	/* never opened */
	CHECK_EQ(uhmm_mm_invalidate_start(mm, &r), 0);
	CHECK_EQ(uhmm_mm_invalidate_start(mm, &r), -EINVAL);	/* already open */
	CHECK_EQ(uhmm_mm_invalidate_end(NULL, &r), -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate_end(mm, NULL), -EINVAL);
	CHECK_EQ(uhmm_mm_invalidate_end(mm, &r), 0);
	CHECK_EQ(uhmm_mm_invalidate_end(mm, &r), -EINVAL);	/* twice */
	/* None of the refused calls opened a window. */
	CHECK_EQ(uhmm_mm_seq(mm), seq);
	CHECK_EQ(mm->active_invalidate_ranges, 0);

	/* A closed mm: inserting is refused, removing still works. */
	REQUIRE(uhmm_interval_notifier_insert(&live, mm, 0x1000, 1, &ops) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	CHECK_EQ(uhmm_interval_notifier_insert(&sub, mm, 0x1000, 1, &ops),
		 -ESRCH);
	CHECK_EQ(uhmm_mm_invalidate_start(mm, &r), -ESRCH);
	CHECK_EQ(uhmm_interval_notifier_remove(&live), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&live), -ENOENT);
	return t_result();
}
