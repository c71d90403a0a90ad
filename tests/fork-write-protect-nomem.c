/* SPDX-License-Identifier: MIT */
/*
 * fork()'s write protection without memory for its bookkeeping
 * (tests/fork-write-protect.c has it with memory): rather than miss a
 * window, uhmm opens one UHMM_EVENT_PROTECTION window over the whole
 * address space of every live mm. Then every subscription is told, the
 * private buffer's as it must be and the MAP_SHARED buffer's too (a window
 * too many is safe), the windows close when fork() returns, and the next
 * fork() with memory is precise again. Both ways of running out are
 * tried: no memory at all (the per-mm records come from static memory),
 * and none after the records.
 */
#include <limits.h>

#include "mirror.h"
#include "core/alloc.h"

#define N 4

struct lmirror {
	struct mirror m;
	pthread_mutex_t log_lock;
	int calls;		/* [log_lock] */
	int whole;		/* [log_lock] PROTECTION over [0, ULONG_MAX) */
};

static void log_hook(struct mirror *m, const struct uhmm_notifier_range *r,
		     unsigned long cur_seq)
{
	struct lmirror *l = (struct lmirror *)((char *)m -
					       offsetof(struct lmirror, m));

	(void)cur_seq;
	pthread_mutex_lock(&l->log_lock);
	l->calls++;
	l->whole += r->event == UHMM_EVENT_PROTECTION && r->start == 0 &&
		    r->end == ULONG_MAX;
	pthread_mutex_unlock(&l->log_lock);
}

static void take(struct lmirror *l, int *calls, int *whole)
{
	pthread_mutex_lock(&l->log_lock);
	*calls = l->calls;
	*whole = l->whole;
	l->calls = l->whole = 0;
	pthread_mutex_unlock(&l->log_lock);
}

static unsigned long commit_write(struct lmirror *l)
{
	CHECK_EQ(m_fault(&l->m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE),
		 0);
	return uhmm_interval_read_begin(&l->m.sub);
}

/* fork(); the child exits at once; the parent's pages stay read-only. */
static void do_fork(struct uhmm_mm *mm)
{
	REQUIRE(uhmm_mm_sync(mm) == 0);	/* see t_fork_exit_reap() */
	t_fork_exit_reap();
}

int main(void)
{
#ifdef M_TSAN
	SKIP("fork() of a threaded process under ThreadSanitizer");
#endif
	struct uhmm_mm *mm, *explicit_mm;
	struct lmirror p, s, e;
	char *priv, *shared;
	int calls, whole;

	mm = t_open_any();
	REQUIRE(uhmm_mm_open(&explicit_mm, UHMM_MM_NO_MONITOR) == 0);

	priv = m_map_anon(N, PROT_READ | PROT_WRITE);
	shared = mmap(NULL, N * t_page, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(shared != MAP_FAILED);
	REQUIRE(m_init(&p.m, mm, priv, N) == 0);
	REQUIRE(m_init(&s.m, mm, shared, N) == 0);
	REQUIRE(m_init(&e.m, explicit_mm, priv, N) == 0);
	pthread_mutex_init(&p.log_lock, NULL);
	pthread_mutex_init(&s.log_lock, NULL);
	pthread_mutex_init(&e.log_lock, NULL);
	p.m.hook = s.m.hook = e.m.hook = log_hook;

	/* Mode 1: this thread's allocations all fail, the per-mm records'
	 * first; 2: all but the records (fork's first). */
	for (int mode = 1; mode <= 2; mode++) {
		unsigned long seq_p = commit_write(&p);
		unsigned long seq_s = commit_write(&s);
		unsigned long seq_e = commit_write(&e);

		take(&p, &calls, &whole);
		take(&s, &calls, &whole);
		take(&e, &calls, &whole);
		uhmm_alloc_fail_from(mode);
		do_fork(mm);
		uhmm_alloc_fail_from(0);

		/* Everything told, over everything, once per mm. */
		take(&p, &calls, &whole);
		CHECK_EQ(calls, 1);
		CHECK_EQ(whole, 1);
		take(&s, &calls, &whole);
		CHECK_EQ(calls, 1);
		CHECK_EQ(whole, 1);
		take(&e, &calls, &whole);
		CHECK_EQ(calls, 1);
		CHECK_EQ(whole, 1);
		CHECK(m_read_retry(&p.m, seq_p));
		CHECK(m_read_retry(&s.m, seq_s));
		CHECK(m_read_retry(&e.m, seq_e));
		CHECK_EQ(m_valid(&p.m, 0, N), 0);

		/* ... and closed when fork() returned. */
		CHECK_EQ(uhmm_mm_seq(mm) & 1, 0);
		CHECK_EQ(uhmm_mm_seq(explicit_mm) & 1, 0);

		/* With memory again, the shared buffer hears nothing. */
		seq_p = commit_write(&p);
		seq_s = commit_write(&s);
		take(&p, &calls, &whole);
		take(&s, &calls, &whole);
		do_fork(mm);
		take(&p, &calls, &whole);
		CHECK_EQ(calls, 1);
		CHECK_EQ(whole, 0);
		take(&s, &calls, &whole);
		CHECK_EQ(calls, 0);
		CHECK(m_read_retry(&p.m, seq_p));
		CHECK(!m_read_retry(&s.m, seq_s));
		take(&e, &calls, &whole);
	}

	m_fini(&p.m);
	m_fini(&s.m);
	m_fini(&e.m);
	REQUIRE(uhmm_mm_close(explicit_mm) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	REQUIRE(munmap(priv, N * t_page) == 0);
	REQUIRE(munmap(shared, N * t_page) == 0);
	return t_result();
}
