/* SPDX-License-Identifier: MIT */
/*
 * Invariant 4: a subscription inserted while a window is open starts out
 * colliding (its seq equals the mm seq, so its first read_begin waits for
 * the window); if the window is already calling callbacks (the tree is
 * frozen), the insert is deferred and that window does not call it.
 */
#include "core/internal.h"
#include "device.h"
#include "invariant.h"

static struct t_dev inner;
static struct uhmm_mm *mm;

/* Insert from inside a callback, while the window walks the tree. */
static bool insert_from_callback(struct t_dev *dev,
				 const struct uhmm_notifier_range *r)
{
	(void)dev;
	(void)r;
	if (!inner.sub.mm)
		CHECK_EQ(t_dev_insert(&inner, mm, 0x0, 0x100000), 0);
	return true;
}

int main(void)
{
	struct uhmm_notifier_range w = { .start = 0x1000, .end = 0x9000,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct t_dev hit = { 0 }, late = { 0 }, early = { 0 };
	unsigned long seq;

	mm = t_open_variant();

	/* (a) The open window hit nothing: insert at once, but colliding. */
	REQUIRE(uhmm_mm_invalidate_start(mm, &w) == 0);
	CHECK_EQ(uhmm_mm_seq(mm) & 1, 0);
	REQUIRE(t_dev_insert(&early, mm, 0x2000, 0x1000) == 0);
	seq = uhmm_mm_seq(mm);
	CHECK_EQ(seq & 1, 1);
	CHECK_EQ(early.sub.invalidate_seq, seq);
	CHECK_EQ(early.sub.state, UHMM_SUB_LINKED);
	REQUIRE(uhmm_mm_invalidate_end(mm, &w) == 0);
	CHECK_EQ(t_dev_calls(&early), 0);
	/* The window is closed, so read_begin returns, and the seq it hands
	 * out is the one that marked the collision: nothing to retry. */
	CHECK_EQ(uhmm_interval_read_begin(&early.sub), seq);
	CHECK_EQ(uhmm_mm_seq(mm), seq + 1);

	/* (b) The window is calling callbacks: the insert is deferred. */
	REQUIRE(t_dev_insert(&hit, mm, 0x4000, 0x1000) == 0);
	REQUIRE(uhmm_mm_invalidate_start(mm, &w) == 0);
	seq = uhmm_mm_seq(mm);
	CHECK_EQ(seq & 1, 1);
	REQUIRE(t_dev_insert(&late, mm, 0x5000, 0x1000) == 0);
	CHECK_EQ(late.sub.state, UHMM_SUB_DEFERRED_INSERT);
	CHECK_EQ(late.sub.invalidate_seq, seq);
	/* A second window while frozen: it must not see the deferred sub. */
	REQUIRE(uhmm_mm_invalidate(mm, 0x5000, 0x6000, UHMM_EVENT_CLEAR) == 0);
	CHECK_EQ(t_dev_calls(&late), 0);
	REQUIRE(uhmm_mm_invalidate_end(mm, &w) == 0);
	CHECK_EQ(late.sub.state, UHMM_SUB_LINKED);
	CHECK_EQ(t_dev_calls(&late), 0);
	CHECK_EQ(uhmm_interval_read_begin(&late.sub), seq);
	/* Now it is in the tree like any other. */
	REQUIRE(uhmm_mm_invalidate(mm, 0x5000, 0x6000, UHMM_EVENT_CLEAR) == 0);
	CHECK_EQ(t_dev_calls(&late), 1);

	/* (c) Inserted from a callback in mid-walk: not called by that walk,
	 * even though it overlaps everything the walk visits after it. */
	hit.hook = insert_from_callback;
	REQUIRE(uhmm_mm_invalidate(mm, 0x0, 0x100000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&inner), 0);
	CHECK_EQ(inner.sub.state, UHMM_SUB_LINKED);
	hit.hook = NULL;
	REQUIRE(uhmm_mm_invalidate(mm, 0x0, 0x100000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&inner), 1);

	REQUIRE(uhmm_interval_notifier_remove(&early.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&hit.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&late.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&inner.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
