/* SPDX-License-Identifier: MIT */
/*
 * The timeout of uhmm_range_fault_lock() bounds the whole loop, including
 * read_begin's wait for a window that hit the subscription: with an
 * explicit window left open over the range, a 300 ms bound returns
 * -ETIMEDOUT while the window is still open (it used to wait for the
 * window, however long). uhmm_interval_read_begin_timeout() likewise, and
 * it returns 0 with the seq once the window has closed. Nothing is
 * asserted on time: the window stays open until the calls have returned.
 */
#include "mirror.h"

#define N 4

static struct uhmm_mm *mm;
static struct mirror m;
static int returned;	/* atomic: the bounded calls are done */
static int closed;	/* atomic: the window was closed */

/* Closes the window once the main thread is done with it (or, if the
 * bound is broken, after a minute, so the test fails instead of hanging). */
static void *closer(void *arg)
{
	struct uhmm_notifier_range *r = arg;

	for (int i = 0; i < 60000; i++) {
		if (__atomic_load_n(&returned, __ATOMIC_ACQUIRE))
			break;
		usleep(1000);
	}
	__atomic_store_n(&closed, 1, __ATOMIC_RELEASE);
	CHECK_EQ(uhmm_mm_invalidate_end(mm, r), 0);
	return NULL;
}

int main(void)
{
	struct uhmm_notifier_range r = { .event = UHMM_EVENT_PROTECTION,
					 .flags = UHMM_RANGE_BLOCKABLE };
	struct uhmm_range range;
	unsigned long seq = 0;
	pthread_t th;
	char *p;
	int ret;

	mm = t_open();
	p = m_map_anon(N, PROT_READ | PROT_WRITE);
	REQUIRE(m_init(&m, mm, p, N) == 0);
	REQUIRE(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT) == 0);

	/* A window that hits the mirror and stays open. */
	r.start = (unsigned long)p;
	r.end = r.start + N * t_page;
	REQUIRE(uhmm_mm_invalidate_start(mm, &r) == 0);
	REQUIRE(pthread_create(&th, NULL, closer, &r) == 0);

	range = m_range(&m, 0, N, 0, UHMM_PFN_REQ_FAULT);
	ret = uhmm_range_fault_lock(&range, &m.lock, 300);
	CHECK_EQ(ret, -ETIMEDOUT);
	CHECK(!__atomic_load_n(&closed, __ATOMIC_ACQUIRE));
	/* Without the lock: another trylock would succeed. */
	if (ret == -ETIMEDOUT) {
		CHECK_EQ(pthread_mutex_trylock(&m.lock), 0);
		pthread_mutex_unlock(&m.lock);
	}

	CHECK_EQ(uhmm_interval_read_begin_timeout(&m.sub, 100, &seq),
		 -ETIMEDOUT);
	CHECK(!__atomic_load_n(&closed, __ATOMIC_ACQUIRE));
	CHECK_EQ(uhmm_interval_read_begin_timeout(NULL, 100, &seq), -EINVAL);
	CHECK_EQ(uhmm_interval_read_begin_timeout(&m.sub, 100, NULL), -EINVAL);

	__atomic_store_n(&returned, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);

	/* Closed: no bound is needed, and the seq is a clean one. */
	CHECK_EQ(uhmm_interval_read_begin_timeout(&m.sub, 0, &seq), 0);
	CHECK(!uhmm_interval_read_retry(&m.sub, seq));
	CHECK_EQ(uhmm_interval_read_begin_timeout(&m.sub, 100, &seq), 0);
	CHECK_EQ(uhmm_range_fault_lock(&range, &m.lock, 300), 0);
	pthread_mutex_unlock(&m.lock);
	printf("a 300 ms bound returned -ETIMEDOUT while the window stayed "
	       "open; 0 once it closed\n");

	m_fini(&m);
	munmap(p, N * t_page);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
