/* SPDX-License-Identifier: MIT */
/*
 * Invariant 1, parity: with no window open the mm seq is even; subscription
 * seqs are odd; the mm seq changes only when the last of a set of
 * overlapping windows closes, and only if one of them hit a subscription.
 */
#include "core/internal.h"
#include "device.h"
#include "invariant.h"

#define PAGE 4096UL

int main(void)
{
	struct uhmm_notifier_range a = { .start = 0x10000, .end = 0x12000,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct uhmm_notifier_range b = a, miss = a;
	struct t_dev dev = { 0 };
	struct uhmm_mm *mm;
	unsigned long idle, seq;

	mm = t_open_variant();
	idle = uhmm_mm_seq(mm);
	CHECK_EQ(idle & 1, 0);

	REQUIRE(t_dev_insert(&dev, mm, 0x10000, 4 * PAGE) == 0);
	seq = uhmm_interval_read_begin(&dev.sub);
	CHECK_EQ(seq & 1, 1);
	CHECK_EQ(uhmm_mm_seq(mm), idle);

	/* A window that hits nothing leaves the seq alone. */
	miss.start = 0x100000;
	miss.end = 0x200000;
	REQUIRE(uhmm_mm_invalidate_start(mm, &miss) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), idle);
	REQUIRE(uhmm_mm_invalidate_end(mm, &miss) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), idle);
	CHECK_EQ(t_dev_calls(&dev), 0);

	/* Two overlapping windows: odd from the first hit to the last end. */
	REQUIRE(uhmm_mm_invalidate_start(mm, &a) == 0);
	seq = uhmm_mm_seq(mm);
	CHECK_EQ(seq, idle + 1);
	CHECK_EQ(dev.last_seq, seq);
	REQUIRE(uhmm_mm_invalidate_start(mm, &b) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), seq);
	CHECK_EQ(dev.last_seq, seq);
	CHECK_EQ(t_dev_calls(&dev), 2);
	REQUIRE(uhmm_mm_invalidate_end(mm, &a) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), seq); /* b is still open */
	REQUIRE(uhmm_mm_invalidate_end(mm, &b) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), seq + 1);
	CHECK_EQ(uhmm_mm_seq(mm) & 1, 0);

	/* The subscription keeps the odd seq of the window that hit it. */
	CHECK_EQ(uhmm_interval_read_begin(&dev.sub), seq);

	/* A window that misses but sees an insert becomes a collision. */
	idle = uhmm_mm_seq(mm);
	REQUIRE(uhmm_mm_invalidate_start(mm, &miss) == 0);
	struct t_dev late = { 0 };
	REQUIRE(t_dev_insert(&late, mm, 0x180000, PAGE) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), idle + 1);
	REQUIRE(uhmm_mm_invalidate_end(mm, &miss) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), idle + 2);
	CHECK_EQ(uhmm_interval_read_begin(&late.sub) & 1, 1);

	/* Many windows in a row: each collision moves the seq by two. */
	idle = uhmm_mm_seq(mm);
	for (int i = 0; i < 1000; i++)
		REQUIRE(uhmm_mm_invalidate(mm, 0x10000, 0x11000,
					   UHMM_EVENT_CLEAR) == 0);
	CHECK_EQ(uhmm_mm_seq(mm), idle + 2000);
	CHECK_EQ(uhmm_interval_read_begin(&dev.sub), idle + 1999);

	REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&late.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
