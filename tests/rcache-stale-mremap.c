/* SPDX-License-Identifier: MIT */
/*
 * Staleness through the io_uring device, by mremap(), two ways:
 *
 *  away:  the buffer is moved elsewhere (MREMAP_MAYMOVE | MREMAP_FIXED
 *         onto a placeholder of ours) and new memory is mapped at the old
 *         address. The old pages stay visible where they moved to.
 *  onto:  another mapping is moved ONTO the buffer's address
 *         (MREMAP_FIXED), replacing it.
 *
 * With the device alone, READ_FIXED through the old slot misses the new
 * memory (and, moved away, lands in the old pages at their new address)
 * and WRITE_FIXED sends the old pages: each way makes the device stale.
 * Through a cache on a monitored mm, READ_FIXED lands in the memory the
 * application sees now at the address, the moved pages are left alone,
 * and WRITE_FIXED sends the application's bytes.
 */
#define T_RC_URING
#include "rcache.h"

static bool away(struct t_stale *s, char *buf)
{
	char *dest = mmap(NULL, s->len, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	REQUIRE(dest != MAP_FAILED);
	q = mremap(buf, s->len, s->len, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
	REQUIRE(q == dest);
	s->oldview = dest;
	CHECK(t_holds(dest, 0, s->len, 7));	/* the old pages, moved */
	if (t_map_at(buf, s->len) != buf) {
		munmap(dest, s->len);
		s->oldview = NULL;
		return false;
	}
	return true;
}

static bool onto(struct t_stale *s, char *buf)
{
	char *other = t_stale_map(s), *q;

	t_fill(other, 0, s->len, 9);
	q = mremap(other, s->len, s->len, MREMAP_MAYMOVE | MREMAP_FIXED, buf);
	REQUIRE(q == buf);
	CHECK(t_holds(buf, 0, s->len, 9));	/* the other's pages */
	return true;
}

int main(void)
{
	struct t_stale a = {
		.what = "mremap away + mmap at the old address",
		.len = 16 * 4096,
		.make = t_stale_map,
		.change = away,
		.unmake = t_stale_unmap,
	};
	struct t_stale b = {
		.what = "mremap of another mapping onto the buffer",
		.len = 16 * 4096,
		.make = t_stale_map,
		.change = onto,
		.unmake = t_stale_unmap,
	};
	struct uhmm_mm *mm;

	t_stale_device(&a);
	t_stale_device(&b);
	mm = t_open();
	t_stale_cache(mm, &a);
	t_stale_cache(mm, &b);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
