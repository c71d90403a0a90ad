/* SPDX-License-Identifier: MIT */
/*
 * fork() write-protects the parent's private memory: its pages become
 * shared copy-on-write with the child, so a device that keeps writing
 * through a translation taken before fork() writes into a page the child
 * sees too. The kernel brackets the copy with a protection window over
 * every copy-on-write mapping (mm/memory.c, copy_page_range()), and so
 * must uhmm: a mirror that committed VALID|WRITE translations of a private
 * buffer with a clean read_retry must, once fork() returned in the parent,
 * have had its callback run with UHMM_EVENT_PROTECTION over the buffer,
 * with read_retry true for the seq it held. A MAP_SHARED buffer is not
 * copied on write: its mirror hears nothing and keeps its translations.
 * Fork is not a userfaultfd event, so the same holds for an mm opened
 * with UHMM_MM_NO_MONITOR; an mm whose last user closed hears nothing;
 * and every live mm of the process is told, not just one.
 */

#include "mirror.h"

#define N 8

/* A mirror that also logs what its callback was told. */
struct fmirror {
	struct mirror m;
	pthread_mutex_t log_lock;
	int calls;		/* [log_lock] callbacks */
	int protections;	/* [log_lock] ... with UHMM_EVENT_PROTECTION */
	int others;		/* [log_lock] ... with any other event */
	int covered;		/* [log_lock] PROTECTIONs covering the buffer */
};

static struct fmirror *f_of(struct mirror *m)
{
	return (struct fmirror *)((char *)m - offsetof(struct fmirror, m));
}

static void log_hook(struct mirror *m, const struct uhmm_notifier_range *r,
		     unsigned long cur_seq)
{
	struct fmirror *f = f_of(m);
	unsigned long end = m->start + m->npages * t_page;

	(void)cur_seq;
	pthread_mutex_lock(&f->log_lock);
	f->calls++;
	if (r->event == UHMM_EVENT_PROTECTION) {
		f->protections++;
		if (r->start <= m->start && r->end >= end)
			f->covered++;
		CHECK(uhmm_range_blockable(r));
	} else {
		f->others++;
	}
	pthread_mutex_unlock(&f->log_lock);
}

static int f_init(struct fmirror *f, struct uhmm_mm *mm, void *p)
{
	int ret = m_init(&f->m, mm, p, N);

	pthread_mutex_init(&f->log_lock, NULL);
	f->m.hook = log_hook;
	return ret;
}

static void f_reset(struct fmirror *f)
{
	pthread_mutex_lock(&f->log_lock);
	f->calls = f->protections = f->others = f->covered = 0;
	pthread_mutex_unlock(&f->log_lock);
}

static int f_get(struct fmirror *f, int *field)
{
	int v;

	pthread_mutex_lock(&f->log_lock);
	v = *field;
	pthread_mutex_unlock(&f->log_lock);
	return v;
}

/* Commit VALID|WRITE translations of every page, then a seq to hold. */
static unsigned long commit_write(struct fmirror *f)
{
	unsigned long seq;

	CHECK_EQ(m_fault(&f->m, 0, N, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE),
		 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK(m_pte(&f->m, i).write);
	seq = uhmm_interval_read_begin(&f->m.sub);
	pthread_mutex_lock(&f->m.lock);
	CHECK(!uhmm_interval_read_retry(&f->m.sub, seq));
	pthread_mutex_unlock(&f->m.lock);
	f_reset(f);
	return seq;
}

/* The private buffer's mirror was told, and its translations are gone. */
static void check_protected(const char *what, struct fmirror *f,
			    unsigned long seq)
{
	if (!f_get(f, &f->protections))
		fprintf(stderr, "%s: no UHMM_EVENT_PROTECTION at fork()\n",
			what);
	CHECK(f_get(f, &f->protections) >= 1);
	CHECK(f_get(f, &f->covered) >= 1);
	CHECK_EQ(f_get(f, &f->others), 0);
	CHECK(m_read_retry(&f->m, seq));
	CHECK_EQ(m_valid(&f->m, 0, N), 0);
}

/* The shared buffer's mirror heard nothing and keeps its translations. */
static void check_untouched(const char *what, struct fmirror *f,
			    unsigned long seq)
{
	if (f_get(f, &f->calls))
		fprintf(stderr, "%s: a MAP_SHARED mirror was called at fork()\n",
			what);
	CHECK_EQ(f_get(f, &f->calls), 0);
	CHECK(!m_read_retry(&f->m, seq));
	for (unsigned long i = 0; i < N; i++)
		CHECK(m_pte(&f->m, i).write);
}

/* uhmm's threads idle before fork(): GCC 12's ASan allocator is not
 * fork-safe while another thread allocates. */
static void quiesce(struct uhmm_mm *mm)
{
	REQUIRE(uhmm_mm_sync(mm) == 0);
}

static char *map_shared(void)
{
	char *p = mmap(NULL, N * t_page, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	return p;
}

/* One mm: a private and a shared buffer, mirrored for writing; fork. */
static void one_mm(struct uhmm_mm *mm, const char *what)
{
	char *priv = m_map_anon(N, PROT_READ | PROT_WRITE);
	char *shared = map_shared();
	struct fmirror p, s;
	unsigned long seq_p, seq_s;

	REQUIRE(f_init(&p, mm, priv) == 0);
	REQUIRE(f_init(&s, mm, shared) == 0);
	seq_p = commit_write(&p);
	seq_s = commit_write(&s);

	quiesce(mm);
	t_fork_exit_reap();

	check_protected(what, &p, seq_p);
	check_untouched(what, &s, seq_s);

	/* The windows are closed: the mm is idle, and the parent gets its
	 * pages for writing again, without waiting. */
	CHECK_EQ(uhmm_mm_seq(mm) & 1, 0);
	commit_write(&p);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m_write(&p.m, i, m_byte(i, 5)), 0);
		CHECK(m_page_is(priv + i * t_page, m_byte(i, 5)));
	}

	/* A second fork() tells it again. */
	seq_p = commit_write(&p);
	quiesce(mm);
	t_fork_exit_reap();
	check_protected(what, &p, seq_p);
	check_untouched(what, &s, seq_s);

	m_fini(&p.m);
	m_fini(&s.m);
	REQUIRE(munmap(priv, N * t_page) == 0);
	REQUIRE(munmap(shared, N * t_page) == 0);
}

/* Two live mms over the same buffer, and a released one: fork. */
static void several_mms(struct uhmm_mm *monitored)
{
	char *priv = m_map_anon(N, PROT_READ | PROT_WRITE);
	struct uhmm_mm *explicit_mm, *closed;
	struct fmirror a, b, c;
	unsigned long seq_a, seq_b = 0;

	REQUIRE(uhmm_mm_open(&explicit_mm, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(uhmm_mm_open(&closed, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(f_init(&a, explicit_mm, priv) == 0);
	REQUIRE(f_init(&c, closed, priv) == 0);
	seq_a = commit_write(&a);
	commit_write(&c);
	if (monitored) {
		REQUIRE(f_init(&b, monitored, priv) == 0);
		seq_b = commit_write(&b);
	}

	/* The last user closes: RELEASE, and then nothing, not even fork. */
	REQUIRE(uhmm_mm_close(closed) == 0);
	CHECK_EQ(f_get(&c, &c.others), 1);
	f_reset(&c);

	if (monitored)
		quiesce(monitored);
	t_fork_exit_reap();

	check_protected("explicit mm beside another", &a, seq_a);
	if (monitored)
		check_protected("monitored mm beside another", &b, seq_b);
	CHECK_EQ(f_get(&c, &c.calls), 0);

	m_fini(&a.m);
	m_fini(&c.m);
	if (monitored)
		m_fini(&b.m);
	REQUIRE(uhmm_mm_close(explicit_mm) == 0);
	REQUIRE(munmap(priv, N * t_page) == 0);
}

int main(void)
{
#ifdef M_TSAN
	SKIP("fork() of a threaded process under ThreadSanitizer");
#endif
	struct uhmm_mm *mm, *monitored = NULL;
	int ret;

	t_page = (unsigned long)sysconf(_SC_PAGESIZE);

	ret = uhmm_mm_open(&monitored, 0);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		printf("no userfaultfd event source here (%s): only "
		       "UHMM_MM_NO_MONITOR is tested\n", strerror(-ret));
		monitored = NULL;
	} else {
		REQUIRE(ret == 0);
		one_mm(monitored, "monitored mm");
	}

	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	one_mm(mm, "UHMM_MM_NO_MONITOR mm");
	REQUIRE(uhmm_mm_close(mm) == 0);

	several_mms(monitored);

	if (monitored)
		REQUIRE(uhmm_mm_close(monitored) == 0);
	return t_result();
}
