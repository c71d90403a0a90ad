/* SPDX-License-Identifier: MIT */
/*
 * Read fault of a shared file mapping (hmm-tests file_read): a file under
 * /tmp written with pwrite(), mapped MAP_SHARED PROT_READ; REQ_FAULT makes
 * every page VALID but not WRITE (the mapping is read-only), and device
 * reads through the mirror equal the file's content. A later pwrite() is
 * seen by the next device read (same page cache, no invalidation needed).
 * A page past the end of the file is no page, and faulting it (SIGBUS)
 * fails with -EFAULT.
 */
#include <fcntl.h>

#include "mirror.h"

#define N 16

int main(void)
{
	struct uhmm_mm *mm = t_open();
	char path[] = "/tmp/uhmm-file-read-XXXXXX", *p, *buf = malloc(t_page);
	struct mirror m;
	int fd = mkstemp(path);

	REQUIRE(fd >= 0 && buf);
	unlink(path);
	for (unsigned long i = 0; i < N; i++) {
		memset(buf, m_byte(i, 1), t_page);
		REQUIRE(pwrite(fd, buf, t_page, (off_t)(i * t_page)) ==
			(ssize_t)t_page);
	}
	p = mmap(NULL, N * t_page, PROT_READ, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED);
	REQUIRE(m_init(&m, mm, p, N) == 0);

	CHECK_EQ(m_fault_loop(&m, 0, N, UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR), UHMM_PFN_VALID);
		CHECK_EQ(m_read(&m, i, buf), 0);
		CHECK(m_page_is(buf, m_byte(i, 1)));
		CHECK_EQ(m_write(&m, i, 0), -EPERM);
	}
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE),
		 -EPERM);

	memset(buf, 0x77, t_page);
	REQUIRE(pwrite(fd, buf, t_page, 3 * (off_t)t_page) == (ssize_t)t_page);
	CHECK_EQ(m_read(&m, 3, buf), 0);
	CHECK(m_page_is(buf, 0x77));

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);

	/* Past the end of the file: no page (0), and a fault is SIGBUS. */
	REQUIRE(ftruncate(fd, (off_t)t_page) == 0);
	p = mmap(NULL, 2 * t_page, PROT_READ, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED);
	REQUIRE(m_init(&m, mm, p, 2) == 0);
	CHECK_EQ(m_snapshot(&m), 0);
	CHECK_EQ(m.pfns[1] & (UHMM_PFN_VALID | UHMM_PFN_ERROR), 0);
	CHECK_EQ(m_fault(&m, 0, 2, UHMM_PFN_REQ_FAULT), -EFAULT);
	CHECK_EQ(m_fault(&m, 0, 1, UHMM_PFN_REQ_FAULT), 0);
	REQUIRE(munmap(p, 2 * t_page) == 0);
	m_fini(&m);
	close(fd);
	free(buf);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
