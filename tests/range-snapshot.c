/* SPDX-License-Identifier: MIT */
/*
 * A snapshot without requests (hmm-tests mixedmap/compound spirit) reports
 * each kind of page exactly, all in one range:
 *   0 writable, populated            VALID|WRITE
 *   1 hole (munmap)                  ERROR
 *   2 PROT_NONE                      ERROR
 *   3 untouched                      0 (neither VALID nor ERROR)
 *   4 read-touched (the zero page)   VALID
 *   5 populated, then PROT_READ      VALID
 *   6 writable, populated            VALID|WRITE
 *   7 MAP_PRIVATE file page, read    VALID; after its first write
 *                                    VALID|WRITE
 * Order 0 and no PFN everywhere (THP off, no UHMM_RANGE_PFN). A snapshot
 * faults nothing: the untouched page stays untouched.
 */
#include <fcntl.h>

#include "mirror.h"

#define N 8

int main(void)
{
	struct uhmm_mm *mm = t_open();
	const uint64_t V = UHMM_PFN_VALID, W = UHMM_PFN_WRITE,
		       E = UHMM_PFN_ERROR;
	uint64_t want[N] = { V | W, E, E, 0, V, V, V | W, V };
	char path[] = "/tmp/uhmm-range-snapshot-XXXXXX", *p, *f;
	volatile char sink;
	struct mirror m;
	int fd = mkstemp(path);

	REQUIRE(fd >= 0);
	unlink(path);
	REQUIRE(ftruncate(fd, (off_t)t_page) == 0);
	REQUIRE(pwrite(fd, "file", 4, 0) == 4);

	p = m_map_anon(N, PROT_READ | PROT_WRITE);
	memset(p, 1, t_page);
	memset(p + 5 * t_page, 5, t_page);
	memset(p + 6 * t_page, 6, t_page);
	REQUIRE(munmap(p + 1 * t_page, t_page) == 0);
	REQUIRE(mprotect(p + 2 * t_page, t_page, PROT_NONE) == 0);
	sink = p[4 * t_page];
	REQUIRE(mprotect(p + 5 * t_page, t_page, PROT_READ) == 0);
	f = mmap(p + 7 * t_page, t_page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED, fd, 0);
	REQUIRE(f == p + 7 * t_page);
	sink = f[0];
	(void)sink;
	REQUIRE(m_init(&m, mm, p, N) == 0);

	for (int pass = 0; pass < 2; pass++) {
		memset(m.pfns, 0xff, sizeof(want)); /* ignored: mask 0 */
		CHECK_EQ(pass ? m_fault_loop(&m, 0, N, 0) : m_snapshot(&m), 0);
		for (int i = 0; i < N; i++) {
			if (m.pfns[i] != want[i])
				fprintf(stderr, "pass %d page %d:\n", pass, i);
			CHECK_EQ(m.pfns[i], want[i]);
		}
	}

	/* The private file page's first write makes it the process's own. */
	f[0] = 'F';
	want[7] = V | W;
	CHECK_EQ(m_snapshot(&m), 0);
	for (int i = 0; i < N; i++) {
		if (m.pfns[i] != want[i])
			fprintf(stderr, "after write, page %d:\n", i);
		CHECK_EQ(m.pfns[i], want[i]);
	}
	CHECK_EQ(m_valid(&m, 0, N), 5);

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	close(fd);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
