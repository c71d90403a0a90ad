/* SPDX-License-Identifier: MIT */
/*
 * A hole punched in a mirrored 2 MiB range by munmap, or by mremap moving
 * a piece away, at offsets 0, 512 KiB and 1 MiB: the notifier is
 * invalidated (read_retry of the seq read before is true), the mirror lost
 * exactly the pages of the hole, and a new snapshot reports ERROR for the
 * hole and VALID for the rest; a REQ_FAULT fault of the whole range now
 * fails with -EFAULT. The moved piece keeps its data at the new address.
 */
#include "mirror.h"

#define RANGE (2UL << 20)
#define HOLE (64UL << 10)

static void one(struct uhmm_mm *mm, unsigned long off, bool move)
{
	unsigned long n = RANGE / t_page, h0 = off / t_page,
		      hn = HOLE / t_page;
	char *p = m_map_anon(n, PROT_READ | PROT_WRITE), *dst = NULL;
	struct mirror m;
	unsigned long seq;

	memset(p, 9, RANGE);
	REQUIRE(m_init(&m, mm, p, n) == 0);
	CHECK_EQ(m_fault(&m, 0, n, UHMM_PFN_REQ_FAULT), 0);
	CHECK_EQ(m_valid(&m, 0, n), n);

	seq = uhmm_interval_read_begin(&m.sub);
	if (move) {
		dst = mmap(NULL, HOLE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
		REQUIRE(dst != MAP_FAILED);
		REQUIRE(mremap(p + off, HOLE, HOLE,
			       MREMAP_MAYMOVE | MREMAP_FIXED, dst) == dst);
	} else {
		REQUIRE(munmap(p + off, HOLE) == 0);
	}
	(void)uhmm_interval_read_begin(&m.sub);
	pthread_mutex_lock(&m.lock);
	CHECK(uhmm_interval_read_retry(&m.sub, seq));
	pthread_mutex_unlock(&m.lock);
	CHECK_EQ(m_valid(&m, 0, n), n - hn);
	CHECK_EQ(m_valid(&m, h0, hn), 0);

	CHECK_EQ(m_snapshot(&m), 0);
	for (unsigned long i = 0; i < n; i++) {
		uint64_t want = i >= h0 && i < h0 + hn ? UHMM_PFN_ERROR :
				UHMM_PFN_VALID | UHMM_PFN_WRITE;

		if (m.pfns[i] != want) {
			fprintf(stderr, "%s at %#lx: page %lu is %#llx\n",
				move ? "mremap" : "munmap", off, i,
				(unsigned long long)m.pfns[i]);
			t_failed = 1;
			break;
		}
	}
	CHECK_EQ(m_fault(&m, 0, n, UHMM_PFN_REQ_FAULT), -EFAULT);
	if (dst) {
		CHECK(m_page_is(dst, 9));
		REQUIRE(munmap(dst, HOLE) == 0);
	}
	REQUIRE(munmap(p, RANGE) == 0);
	m_fini(&m);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	const unsigned long offs[] = { 0, 512UL << 10, 1UL << 20 };

	for (int move = 0; move < 2; move++)
		for (int k = 0; k < 3; k++)
			one(mm, offs[k], move);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
