/* SPDX-License-Identifier: MIT */
/*
 * Staleness through the io_uring device: madvise(MADV_DONTNEED) over a
 * registered buffer. The mapping stays; its pages are dropped, and the
 * application's next touch gets new ones.
 *
 * With the device alone, READ_FIXED through the old slot misses the new
 * pages and WRITE_FIXED sends the old ones: the scenario makes the device
 * stale. Through a cache on a monitored mm, READ_FIXED lands in the pages
 * the application sees now and WRITE_FIXED sends its bytes.
 */
#define T_RC_URING
#include "rcache.h"

static bool change(struct t_stale *s, char *buf)
{
	REQUIRE(madvise(buf, s->len, MADV_DONTNEED) == 0);
	/* The application sees fresh zero pages. */
	CHECK(t_all(buf, 0, s->len));
	return true;
}

int main(void)
{
	struct t_stale s = {
		.what = "MADV_DONTNEED",
		.len = 16 * 4096,
		.make = t_stale_map,
		.change = change,
		.unmake = t_stale_unmap,
	};

	return t_stale_run(&s);
}
