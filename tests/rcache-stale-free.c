/* SPDX-License-Identifier: MIT */
/*
 * Staleness through the io_uring device, by the allocator: free() of a
 * large malloc() chunk (1 MiB, which glibc serves with mmap and returns
 * with munmap) and a new malloc() of the same size that lands at the same
 * address - the classic registration-cache bug. The mmap threshold is
 * pinned with mallopt() so that glibc keeps using mmap for that size after
 * a free (its dynamic threshold would otherwise move it to the heap).
 * Retried a few times if the chunk comes back elsewhere; skipped with the
 * reason if it never does (an allocator that keeps freed memory, such as
 * a sanitizer's quarantine).
 *
 * With the device alone, READ_FIXED through the old slot misses the new
 * chunk and WRITE_FIXED sends the old pages: the scenario makes the
 * device stale. Through a cache on a monitored mm, READ_FIXED lands in the
 * chunk the application has now and WRITE_FIXED sends its bytes.
 */
#include <malloc.h>

#define T_RC_URING
#include "rcache.h"

#define LEN (1u << 20)

static char *make(struct t_stale *s)
{
	char *p = malloc(s->len);

	REQUIRE(p);
	memset(p, 0, s->len);
	return p;
}

static bool change(struct t_stale *s, char *buf)
{
	char *q;

	free(buf);
	q = malloc(s->len);
	REQUIRE(q);
	if (q != buf) {
		free(q);
		return false;
	}
	return true;
}

static void unmake(struct t_stale *s, char *buf)
{
	(void)s;
	free(buf);
}

int main(void)
{
	struct t_stale s = {
		.what = "free + malloc of a 1 MiB chunk at the same address",
		.len = LEN,
		.make = make,
		.change = change,
		.unmake = unmake,
		.hint = "this allocator keeps or recycles freed chunks "
			"(a sanitizer's quarantine does)",
	};

	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	return t_stale_run(&s);
}
