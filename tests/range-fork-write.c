/* SPDX-License-Identifier: MIT */
/*
 * REQ_WRITE after a fork (design.md, invariant 9): REQ_FAULT|REQ_WRITE
 * implies WRITE, and WRITE means a device may write the page and the CPU
 * sees the write - the page stays where the mirror found it.
 *
 * fork() write-protects the parent's private pages. Once the child has
 * exited they are mapped once again (pagemap's "exclusive" bit), but the
 * PTEs stay read-only, and the CPU's next write copies a page to a new
 * frame whenever anything else holds a reference to it (an LRU batch, a
 * GUP, the swap cache) - with no event. The kernel's hmm_range_fault()
 * write-faults whenever a write is requested and !pte_write(); so must
 * uhmm_range_fault(), which cannot see the PTE. It used to trust the
 * exclusive bit, skip the write fault and report WRITE: a mirror then
 * committed a PFN that the next CPU write left behind.
 *
 * Shown without trusting uhmm's output: after the fault each page is
 * spliced into a pipe (vmsplice: the pipe holds a reference to the very
 * page the PTE maps), then the CPU writes it. Through a writable PTE the
 * write lands in that page, takes no page fault, and the pipe reads it
 * back; through a write-protected one the kernel copies the page first
 * (it is referenced twice) and the pipe reads the old bytes. Where PFNs
 * are visible (CAP_SYS_ADMIN) the committed PFN must still be the page's
 * after the write, with no invalidation of the mirror meanwhile.
 *
 *  1. every page requests REQ_FAULT|REQ_WRITE (default_flags);
 *  2. per-page requests: even pages REQ_FAULT|REQ_WRITE, odd REQ_FAULT
 *     only. The odd pages come back VALID without WRITE: after a fork
 *     nothing but a write fault shows a private page writable. That they
 *     are indeed still read-only here is printed (the method's
 *     self-check), not required: it is the kernel's business.
 *
 * The whole test runs once more with UHMM_PAGEMAP_SCAN=0 (the
 * /proc/self/pagemap fallback of kernels before 6.7), in a new process.
 */
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "mirror.h"

#define N 8		/* pages; a pipe holds 16 by default */

extern char **environ;

static bool pfns;	/* the process may see PFNs */

static long thread_minflt(void)
{
	struct rusage u;

	REQUIRE(getrusage(RUSAGE_THREAD, &u) == 0);
	return u.ru_minflt;
}

/* fork(); the child exits at once; the parent's pages stay read-only. */
static void fork_and_reap(struct uhmm_mm *mm)
{
	REQUIRE(uhmm_mm_sync(mm) == 0);	/* see t_fork_exit_reap() */
	t_fork_exit_reap();
}

/*
 * Does a CPU write of page i land in the page mapped there now? Splice
 * pages [0, N) into a pipe, write byte c at the start of each page, read
 * the pipe back: lands[i] tells. *faults counts this thread's page
 * faults during the writes.
 */
static void cpu_writes(char *p, int c, bool lands[N], long *faults)
{
	struct iovec iov[N];
	char *buf = malloc(t_page);
	int pfd[2];
	long f0;

	REQUIRE(buf);
	REQUIRE(pipe(pfd) == 0);
	for (unsigned long i = 0; i < N; i++)
		iov[i] = (struct iovec){ p + i * t_page, t_page };
	REQUIRE(vmsplice(pfd[1], iov, N, 0) == (ssize_t)(N * t_page));
	f0 = thread_minflt();
	for (unsigned long i = 0; i < N; i++)
		((volatile char *)p)[i * t_page] = (char)c;
	*faults = thread_minflt() - f0;
	for (unsigned long i = 0; i < N; i++) {
		REQUIRE(read(pfd[0], buf, t_page) == (ssize_t)t_page);
		lands[i] = buf[0] == (char)c;
	}
	close(pfd[0]);
	close(pfd[1]);
	free(buf);
}

/*
 * After a fault whose output is in m->pfns: pages with want_write[i] must
 * be VALID|WRITE and really writable (the CPU's write lands in the page
 * the mirror committed), the others VALID without WRITE.
 */
static void check_pages(const char *what, struct uhmm_mm *mm,
			struct mirror *m, char *p, const bool want_write[N],
			int c)
{
	uint64_t committed[N];
	bool lands[N];
	long faults, writes = 0;
	int inval;

	for (unsigned long i = 0; i < N; i++) {
		uint64_t f = m->pfns[i];

		CHECK_EQ(f & (UHMM_PFN_VALID | UHMM_PFN_ERROR), UHMM_PFN_VALID);
		if (want_write[i] != !!(f & UHMM_PFN_WRITE))
			fprintf(stderr, "%s: page %lu is %#llx, %s WRITE\n",
				what, i, (unsigned long long)f,
				want_write[i] ? "wanted" : "must not be");
		CHECK_EQ(!!(f & UHMM_PFN_WRITE), want_write[i]);
		CHECK_EQ(m_pte(m, i).write, want_write[i]);
		committed[i] = f & UHMM_PFN_PFN_MASK;
		if (pfns)
			CHECK_EQ(committed[i], m_pagemap_pfn(p + i * t_page));
		writes += want_write[i];
	}
	pthread_mutex_lock(&m->lock);
	inval = m->invalidations;
	pthread_mutex_unlock(&m->lock);

	cpu_writes(p, c, lands, &faults);
	/* Whatever the CPU write caused has been dispatched. */
	REQUIRE(uhmm_mm_sync(mm) == 0);
	(void)uhmm_interval_read_begin(&m->sub);

	for (unsigned long i = 0; i < N; i++) {
		uint64_t now = pfns ? m_pagemap_pfn(p + i * t_page) : 0;

		if (!want_write[i]) {
			if (lands[i])
				printf("%s: page %lu (no REQ_WRITE) was "
				       "writable after all: the kernel left "
				       "it so\n", what, i);
			continue;
		}
		if (!lands[i] || now != committed[i])
			fprintf(stderr, "%s: page %lu: the CPU write %s "
				"the page the mirror committed (PFN %#llx, "
				"now %#llx; 0: hidden): its PTE was left "
				"read-only\n", what, i,
				lands[i] ? "moved" : "did not land in",
				(unsigned long long)committed[i],
				(unsigned long long)now);
		CHECK(lands[i]);
		CHECK_EQ(now, committed[i]);
		CHECK(m_pte(m, i).valid);
	}
	pthread_mutex_lock(&m->lock);
	CHECK_EQ(m->invalidations, inval);
	pthread_mutex_unlock(&m->lock);
	printf("%s: %ld of %d CPU writes took a page fault (%ld WRITE "
	       "pages)\n", what, faults, N, writes);
	if (writes == N)
		CHECK_EQ(faults, 0);
}

/* Every page requests REQ_FAULT|REQ_WRITE. */
static void all_write(struct uhmm_mm *mm)
{
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE);
	bool yes[N];
	struct mirror m;

	for (unsigned long i = 0; i < N; i++) {
		memset(p + i * t_page, m_byte(i, 1), t_page);
		yes[i] = true;
	}
	REQUIRE(m_init(&m, mm, p, N) == 0);
	m.range_flags = pfns ? UHMM_RANGE_PFN : 0;
	fork_and_reap(mm);
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	check_pages("REQ_WRITE, every page", mm, &m, p, yes, 0x5a);
	/* Mapped, written, and faulted for write again: no change. */
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	check_pages("REQ_WRITE again", mm, &m, p, yes, 0x5b);

	m_fini(&m);
	REQUIRE(munmap(p, N * t_page) == 0);
}

/* Even pages REQ_FAULT|REQ_WRITE, odd pages REQ_FAULT. */
static void per_page(struct uhmm_mm *mm)
{
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE);
	bool even[N];
	struct mirror m;

	for (unsigned long i = 0; i < N; i++) {
		memset(p + i * t_page, m_byte(i, 2), t_page);
		even[i] = !(i & 1);
	}
	REQUIRE(m_init(&m, mm, p, N) == 0);
	m.range_flags = pfns ? UHMM_RANGE_PFN : 0;
	fork_and_reap(mm);
	for (unsigned long i = 0; i < N; i++)
		m.pfns[i] = UHMM_PFN_REQ_FAULT |
			    (even[i] ? UHMM_PFN_REQ_WRITE : 0);
	CHECK_EQ(m_fault_req(&m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE,
			     0),
		 0);
	check_pages("per-page requests", mm, &m, p, even, 0x6a);

	m_fini(&m);
	REQUIRE(munmap(p, N * t_page) == 0);
}

/* The same in a new process reading /proc/self/pagemap; its status. */
static int run_fallback(char *argv0)
{
	char *args[] = { argv0, NULL };
	char **env;
	size_t n = 0;
	int status;
	pid_t pid;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	REQUIRE(env);
	memcpy(env, environ, n * sizeof(*env));
	env[n] = "UHMM_PAGEMAP_SCAN=0";
	fflush(stdout);
	/* posix_spawn: no fork of this threaded process, no atfork. */
	REQUIRE(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, env) ==
		0);
	free(env);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : T_FAIL;
}

int main(int argc, char **argv)
{
#ifdef M_TSAN
	SKIP("fork() of a threaded process under ThreadSanitizer");
#endif
	struct uhmm_mm *mm = t_open();
	bool fallback = getenv("UHMM_PAGEMAP_SCAN") != NULL;
	char *probe = m_map_anon(1, PROT_READ | PROT_WRITE);

	(void)argc;
	probe[0] = 1;
	pfns = m_pagemap_pfn(probe) != 0;
	REQUIRE(munmap(probe, t_page) == 0);
	printf("%s; PFNs %s\n",
	       fallback ? "UHMM_PAGEMAP_SCAN set: /proc/self/pagemap"
			: "PAGEMAP_SCAN where the kernel has it",
	       pfns ? "visible" : "hidden (checked through the pipe only)");

	all_write(mm);
	per_page(mm);
	REQUIRE(uhmm_mm_close(mm) == 0);

	if (!fallback) {
		int ret = run_fallback(argv[0]);

		if (ret != T_PASS && ret != T_SKIP) {
			fprintf(stderr, "with UHMM_PAGEMAP_SCAN=0: status %d\n",
				ret);
			t_failed = 1;
		}
	}
	return t_result();
}
