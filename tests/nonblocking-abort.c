/* SPDX-License-Identifier: MIT */
/*
 * Invariant 6: in a non-blockable window a callback may refuse (return
 * false); uhmm_mm_invalidate_start() then returns -EAGAIN with the window
 * already closed by the core, and the caller must not end it. A refusal in
 * a blockable window is the callback's bug: the window runs to its end and
 * the caller hears -EPROTO.
 */
#include "core/internal.h"
#include "device.h"
#include "invariant.h"

static bool refuse_unless_blockable(struct t_dev *dev,
				    const struct uhmm_notifier_range *r)
{
	(void)dev;
	return uhmm_range_blockable(r);
}

static bool always_refuse(struct t_dev *dev, const struct uhmm_notifier_range *r)
{
	(void)dev;
	(void)r;
	return false;
}

int main(void)
{
	struct uhmm_notifier_range nb = { .start = 0x1000, .end = 0x3000,
		.event = UHMM_EVENT_CLEAR, .flags = 0 };
	struct t_dev first = { 0 }, sleeper = { 0 }, after = { 0 };
	struct uhmm_mm *mm;
	unsigned long idle, seq_first;

	mm = t_open_variant();
	/* Tree order is by start: first, then sleeper, then after. */
	REQUIRE(t_dev_insert(&first, mm, 0x1000, 0x1000) == 0);
	REQUIRE(t_dev_insert(&sleeper, mm, 0x1800, 0x1000) == 0);
	REQUIRE(t_dev_insert(&after, mm, 0x2000, 0x1000) == 0);
	sleeper.hook = refuse_unless_blockable;
	idle = uhmm_mm_seq(mm);
	seq_first = uhmm_interval_read_begin(&first.sub);

	CHECK_EQ(uhmm_mm_invalidate_start(mm, &nb), -EAGAIN);
	/* The core closed the window: the seq moved on and is even. */
	CHECK_EQ(uhmm_mm_seq(mm), idle + 2);
	CHECK_EQ(uhmm_mm_invalidate_end(mm, &nb), -EINVAL);
	CHECK_EQ(uhmm_mm_seq(mm), idle + 2);
	/* The walk stopped at the refusal; what it had zapped shows. */
	CHECK_EQ(t_dev_calls(&first), 1);
	CHECK_EQ(t_dev_calls(&sleeper), 1);
	CHECK_EQ(t_dev_calls(&after), 0);
	CHECK(uhmm_interval_read_retry(&first.sub, seq_first));
	CHECK(!uhmm_range_blockable(&first.last_range));

	/* Retried where it may block, the same change goes through. */
	nb.flags = UHMM_RANGE_BLOCKABLE;
	CHECK_EQ(uhmm_mm_invalidate_start(mm, &nb), 0);
	CHECK_EQ(uhmm_mm_invalidate_end(mm, &nb), 0);
	CHECK_EQ(t_dev_calls(&after), 1);

	/* A blockable refusal: every callback still runs, -EPROTO. */
	sleeper.hook = always_refuse;
	CHECK_EQ(uhmm_mm_invalidate(mm, 0x1000, 0x3000, UHMM_EVENT_UNMAP),
		 -EPROTO);
	CHECK_EQ(t_dev_calls(&first), 3);
	CHECK_EQ(t_dev_calls(&sleeper), 3);
	CHECK_EQ(t_dev_calls(&after), 2);
	CHECK_EQ(uhmm_mm_seq(mm) & 1, 0);
	sleeper.hook = NULL;
	CHECK_EQ(uhmm_mm_invalidate(mm, 0x1000, 0x3000, UHMM_EVENT_UNMAP), 0);

	REQUIRE(uhmm_interval_notifier_remove(&first.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&sleeper.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&after.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
