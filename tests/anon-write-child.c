/* SPDX-License-Identifier: MIT */
/*
 * Write fault in a fork child (hmm-tests anon_write_child): after fork()
 * the parent's private pages are shared copy-on-write, so a snapshot in
 * either process shows VALID without WRITE. The child opens its OWN mm (a
 * fault through the inherited one answers -ECHILD); there REQ_WRITE breaks
 * the sharing, the pages become VALID|WRITE, and the device's writes are
 * seen by the child but not by the parent, whose data is unchanged.
 */
#include <sys/wait.h>

#include "mirror.h"

#define N 16

static int child(struct mirror *inherited, char *p, int go)
{
	struct uhmm_mm *mm;
	struct mirror m;
	char c;

	REQUIRE(read(go, &c, 1) == 1);
	CHECK_EQ(m_fault(inherited, 0, N, UHMM_PFN_REQ_FAULT), -ECHILD);
	CHECK_EQ(m_valid(inherited, 0, N), 0);	/* released */
	m_fini(inherited);

	REQUIRE(uhmm_mm_open(&mm, 0) == 0);
	REQUIRE(m_init(&m, mm, p, N) == 0);
	CHECK_EQ(m_snapshot(&m), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i], UHMM_PFN_VALID);

	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK_EQ(m_write(&m, i, m_byte(i, 2)), 0);
	}
	for (unsigned long i = 0; i < N; i++)
		CHECK(m_page_is(p + i * t_page, m_byte(i, 2)));

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
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE);
	int go[2], status;
	pid_t pid;

	for (unsigned long i = 0; i < N; i++)
		memset(p + i * t_page, m_byte(i, 1), t_page);
	REQUIRE(m_init(&m, mm, p, N) == 0);
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	REQUIRE(pipe(go) == 0);

	/* uhmm's threads idle: GCC 12's ASan allocator is not fork-safe
	 * while another thread allocates. */
	REQUIRE(uhmm_mm_sync(mm) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(child(&m, p, go[0]));

	/* Before the child runs: the pages are shared, not writable. */
	CHECK_EQ(m_snapshot(&m), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i], UHMM_PFN_VALID);
	REQUIRE(write(go[1], "g", 1) == 1);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	for (unsigned long i = 0; i < N; i++)
		CHECK(m_page_is(p + i * t_page, m_byte(i, 1)));
	/* And the parent may still get the pages for writing. */
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m_write(&m, i, m_byte(i, 3)), 0);
		CHECK(m_page_is(p + i * t_page, m_byte(i, 3)));
	}

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
