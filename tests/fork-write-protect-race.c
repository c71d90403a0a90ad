/* SPDX-License-Identifier: MIT */
/*
 * fork()'s write protection (tests/fork-write-protect.c) against threads
 * that do not stop for it:
 *
 *  1. Two threads fork at once, each mirroring its own private buffer for
 *     writing. Whichever fork's windows ran first, once a thread's fork()
 *     returned, the seq its mirror held before is stale and its
 *     translations are gone.
 *  2. One thread keeps inserting subscriptions and committing VALID|WRITE
 *     translations while another forks. While the child lives, and so
 *     shares the parent's anonymous pages, no mirror may hold a WRITE
 *     translation of a page that /proc/self/pagemap does not show as
 *     mapped exclusively by the parent: one committed before fork() must
 *     have been zapped by its window, one committed after it has broken
 *     the sharing by faulting for write.
 *
 * Iterations scale with UHMM_TEST_SCALE; nothing is timed.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>

#include "mirror.h"

#define N 4		/* pages per mirror */
#define SLOTS 32	/* mirrors of the inserting thread */

static struct uhmm_mm *mm;

static pid_t fork_child_waiting(int *go)
{
	int p[2];
	pid_t pid;
	char c;

	REQUIRE(pipe(p) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		/* Keep the pages shared until the parent has looked. */
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

static void reap(pid_t pid, int go)
{
	int status;

	if (go >= 0)
		close(go);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- 1. two threads fork at once ---- */

static unsigned long forks_each;

static void *forker(void *arg)
{
	struct mirror *m = arg;
	int stale_missed = 0, valid_left = 0;

	for (unsigned long k = 0; k < forks_each; k++) {
		unsigned long seq;
		pid_t pid;

		REQUIRE(m_fault(m, 0, N, UHMM_PFN_REQ_FAULT |
					 UHMM_PFN_REQ_WRITE) == 0);
		seq = uhmm_interval_read_begin(&m->sub);
		pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0)
			_exit(0);
		pthread_mutex_lock(&m->lock);
		stale_missed += !uhmm_interval_read_retry(&m->sub, seq);
		pthread_mutex_unlock(&m->lock);
		valid_left += m_valid(m, 0, N) != 0;
		reap(pid, -1);
	}
	CHECK_EQ(stale_missed, 0);
	CHECK_EQ(valid_left, 0);
	return NULL;
}

static void two_forkers(void)
{
	struct mirror m[2];
	char *buf[2];
	pthread_t t[2];

	for (int i = 0; i < 2; i++) {
		buf[i] = m_map_anon(N, PROT_READ | PROT_WRITE);
		REQUIRE(m_init(&m[i], mm, buf[i], N) == 0);
	}
	for (int i = 0; i < 2; i++)
		REQUIRE(pthread_create(&t[i], NULL, forker, &m[i]) == 0);
	for (int i = 0; i < 2; i++)
		REQUIRE(pthread_join(t[i], NULL) == 0);
	for (int i = 0; i < 2; i++) {
		m_fini(&m[i]);
		REQUIRE(munmap(buf[i], N * t_page) == 0);
	}
}

/* ---- 2. inserts and commits while another thread forks ---- */

struct slot {
	pthread_mutex_t lock;	/* held across insert and remove */
	bool live;		/* [lock] m is inserted */
	struct mirror m;
};

static struct slot slots[SLOTS];
static char *arena;
static bool stop;

/*
 * Each slot a mapping of its own, fenced by a PROT_NONE page: a window
 * opened for one slot's subscription does not cover another's, so a
 * subscription inserted while fork() is under way is told only if uhmm
 * notices it.
 */
#define SLOT_PAGES (N + 1)

static char *slot_addr(int i)
{
	return arena + (unsigned long)i * SLOT_PAGES * t_page;
}

static void *inserter(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < SLOTS; i++) {
			struct slot *s = &slots[i];
			int ret;

			pthread_mutex_lock(&s->lock);
			REQUIRE(m_init(&s->m, mm, slot_addr(i), N) == 0);
			s->live = true;
			pthread_mutex_unlock(&s->lock);
			ret = m_fault(&s->m, 0, N, UHMM_PFN_REQ_FAULT |
						  UHMM_PFN_REQ_WRITE);
			CHECK_EQ(ret, 0);
		}
		for (int i = 0; i < SLOTS; i++) {
			struct slot *s = &slots[i];

			pthread_mutex_lock(&s->lock);
			s->live = false;
			m_fini(&s->m);
			pthread_mutex_unlock(&s->lock);
		}
	}
	return NULL;
}

/* Is the page at addr mapped by this process alone? */
static bool exclusive(int pagemap, unsigned long addr)
{
	uint64_t e = 0;

	REQUIRE(pread(pagemap, &e, 8, (off_t)(addr / t_page * 8)) == 8);
	return (e >> 63) && ((e >> 56) & 1);
}

static void insert_while_forking(unsigned long forks)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	unsigned long stale = 0, checked = 0;
	pthread_t t;

	REQUIRE(pagemap >= 0);
	arena = m_map_anon(SLOTS * SLOT_PAGES, PROT_READ | PROT_WRITE);
	for (int i = 0; i < SLOTS; i++)
		REQUIRE(mprotect(slot_addr(i) + N * t_page, t_page,
				 PROT_NONE) == 0);
	for (int i = 0; i < SLOTS; i++)
		pthread_mutex_init(&slots[i].lock, NULL);
	REQUIRE(pthread_create(&t, NULL, inserter, NULL) == 0);

	for (unsigned long k = 0; k < forks; k++) {
		int go;
		pid_t pid = fork_child_waiting(&go);

		for (int i = 0; i < SLOTS; i++) {
			struct slot *s = &slots[i];

			pthread_mutex_lock(&s->lock);
			if (s->live) {
				pthread_mutex_lock(&s->m.lock);
				for (unsigned long p = 0; p < N; p++) {
					if (!s->m.pt[p].write)
						continue;
					checked++;
					if (!exclusive(pagemap, m_addr(&s->m, p)))
						stale++;
				}
				pthread_mutex_unlock(&s->m.lock);
			}
			pthread_mutex_unlock(&s->lock);
		}
		reap(pid, go);
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(t, NULL) == 0);
	printf("%lu forks: %lu WRITE translations checked, %lu of a shared "
	       "page\n", forks, checked, stale);
	CHECK_EQ(stale, 0);
	REQUIRE(munmap(arena, SLOTS * SLOT_PAGES * t_page) == 0);
	close(pagemap);
}

int main(void)
{
#ifdef M_TSAN
	SKIP("fork() of a threaded process under ThreadSanitizer");
#endif
#if defined(__SANITIZE_ADDRESS__)
	SKIP("fork() while another thread allocates: GCC 12's ASan allocator "
	     "is not fork-safe");
#endif
	unsigned long forks = (unsigned long)(200 * t_scale());

	mm = t_open_any();
	if (forks < 10)
		forks = 10;

	forks_each = forks / 2;
	two_forkers();
	insert_while_forking(forks);

	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
