/* SPDX-License-Identifier: MIT */
/*
 * Write fault of a MAP_SHARED anonymous buffer in a fork child (hmm-tests
 * anon_write_child_shared): shared pages are not copy-on-write, so the
 * parent's pages stay VALID|WRITE after fork(), and what the device writes
 * through the child's mirror (in the child's own mm) the parent sees.
 */
#include <sys/wait.h>

#include "mirror.h"

#define N 16

static int child(char *p)
{
	struct uhmm_mm *mm;
	struct mirror m;

	REQUIRE(uhmm_mm_open(&mm, 0) == 0);
	REQUIRE(m_init(&m, mm, p, N) == 0);
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK(m_page_is(p + i * t_page, m_byte(i, 1)));
		CHECK_EQ(m_write(&m, i, m_byte(i, 2)), 0);
	}
	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}

int main(void)
{
#ifdef M_TSAN
	SKIP("fork() of a threaded process under ThreadSanitizer");
#endif
	struct uhmm_mm *mm = t_open();
	struct mirror m;
	char *p;
	int status;
	pid_t pid;

	p = mmap(NULL, N * t_page, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(p != MAP_FAILED);
	for (unsigned long i = 0; i < N; i++)
		memset(p + i * t_page, m_byte(i, 1), t_page);
	REQUIRE(m_init(&m, mm, p, N) == 0);

	/* uhmm's threads idle: GCC 12's ASan allocator is not fork-safe
	 * while another thread allocates. */
	REQUIRE(uhmm_mm_sync(mm) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(child(p));
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	for (unsigned long i = 0; i < N; i++)
		CHECK(m_page_is(p + i * t_page, m_byte(i, 2)));
	/* Shared pages are not copy-on-write: still writable here. */
	CHECK_EQ(m_snapshot(&m), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
