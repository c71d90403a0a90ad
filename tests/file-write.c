/* SPDX-License-Identifier: MIT */
/*
 * Write fault of a shared file mapping (hmm-tests file_write): a file
 * under /tmp mapped MAP_SHARED read-write; REQ_FAULT|REQ_WRITE makes every
 * page VALID|WRITE, and what the device writes through the mirror is what
 * pread() of the file returns (and survives the unmap).
 */
#include <fcntl.h>

#include "mirror.h"

#define N 16

int main(void)
{
	struct uhmm_mm *mm = t_open();
	char path[] = "/tmp/uhmm-file-write-XXXXXX", *p, *buf = malloc(t_page);
	struct mirror m;
	int fd = mkstemp(path);

	REQUIRE(fd >= 0 && buf);
	unlink(path);
	REQUIRE(ftruncate(fd, (off_t)(N * t_page)) == 0);
	p = mmap(NULL, N * t_page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED);
	REQUIRE(m_init(&m, mm, p, N) == 0);

	CHECK_EQ(m_write(&m, 0, 1), -EPERM);
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK_EQ(m_write(&m, i, m_byte(i, 2)), 0);
	}
	for (unsigned long i = 0; i < N; i++) {
		REQUIRE(pread(fd, buf, t_page, (off_t)(i * t_page)) ==
			(ssize_t)t_page);
		CHECK(m_page_is(buf, m_byte(i, 2)));
	}

	REQUIRE(munmap(p, N * t_page) == 0);
	(void)uhmm_interval_read_begin(&m.sub);
	CHECK_EQ(m_valid(&m, 0, N), 0);
	REQUIRE(pread(fd, buf, t_page, 5 * (off_t)t_page) == (ssize_t)t_page);
	CHECK(m_page_is(buf, m_byte(5, 2)));
	m_fini(&m);
	close(fd);
	free(buf);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
