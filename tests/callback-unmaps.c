/* SPDX-License-Identifier: MIT */
/*
 * A callback may unmap and free memory that a subscription covers. The
 * kernel holds such an unmap until its event is read; callbacks run on
 * uhmm's dispatcher thread while a separate reader thread, which runs no
 * user code, reads it. With one thread doing both, this test hangs.
 */
#include "events.h"

static struct t_log other;
static char *other_mem;
static int unmapped;

static bool unmap_other(struct t_dev *dev, const struct uhmm_notifier_range *r)
{
	(void)dev;
	(void)r;
	if (!unmapped) {
		unmapped = 1;
		/* Registered: the kernel waits here until the event is read. */
		CHECK_EQ(munmap(other_mem, 2 * t_page), 0);
		free(malloc(4 << 20));	/* an mmap'ed chunk, unmapped again */
	}
	return true;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_dev first = { 0 };
	char *mem = t_map(1);

	other_mem = t_map(2);
	/* Set before insert: the kernel orders the event after it, but
	 * TSan only sees the order insert's locks give. */
	first.hook = unmap_other;
	REQUIRE(t_dev_insert(&first, mm, (unsigned long)mem, t_page) == 0);
	REQUIRE(t_log_insert(&other, mm, (unsigned long)other_mem,
			     2 * t_page) == 0);

	REQUIRE(madvise(mem, t_page, MADV_DONTNEED) == 0);
	uhmm_interval_read_begin(&first.sub);
	CHECK_EQ(t_dev_calls(&first), 1);
	t_log_wait(&other);
	CHECK_LOG(&other, T_EV(UNMAP, other_mem, other_mem + 2 * t_page));

	REQUIRE(uhmm_interval_notifier_remove(&first.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&other.dev.sub) == 0);
	REQUIRE(munmap(mem, t_page) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
