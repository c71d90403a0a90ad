/* SPDX-License-Identifier: MIT */
/*
 * Staleness through the io_uring device: munmap() of a registered buffer,
 * then mmap() of new memory at the same address (MAP_FIXED_NOREPLACE: the
 * address is exactly the old one, and nothing else can be clobbered).
 *
 * With the device alone, READ_FIXED through the old slot misses the new
 * memory and WRITE_FIXED sends the old pages: the scenario makes the
 * device stale. Through a cache on a monitored mm, READ_FIXED lands in the
 * memory the application sees now and WRITE_FIXED sends its bytes.
 */
#define T_RC_URING
#include "rcache.h"

static bool change(struct t_stale *s, char *buf)
{
	REQUIRE(munmap(buf, s->len) == 0);
	return t_map_at(buf, s->len) == buf;
}

int main(void)
{
	struct t_stale s = {
		.what = "munmap + mmap at the same address",
		.len = 16 * 4096,
		.make = t_stale_map,
		.change = change,
		.unmake = t_stale_unmap,
	};

	return t_stale_run(&s);
}
