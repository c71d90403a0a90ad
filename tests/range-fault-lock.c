/* SPDX-License-Identifier: MIT */
/*
 * uhmm_range_fault_lock(), the driver loop:
 *  - returns 0 with the lock held (another thread's trylock fails; the
 *    errorcheck mutex lets this thread unlock it) and notifier_seq
 *    refreshed (a garbage seq in, the current one out, clean under lock);
 *  - an error other than -EBUSY returns without the lock;
 *  - a retry keeps the caller's per-page requests: a page not requested,
 *    present in the first attempt and unmapped before the second, is
 *    ERROR in the result, not a -EFAULT;
 *  - against a thread that invalidates continuously (MADV_DONTNEED),
 *    timeout_ms 1 gives 0 or -ETIMEDOUT, and 0 (no bound) gives 0.
 * Nothing is asserted on time.
 */
#include "mirror.h"

#define N 16
#define J 5	/* the page that is not requested */

static struct mirror m;
static int hook_armed, hook_hit;	/* atomic */

/* Record the collision before the callback waits for the device lock. */
static void early_set_seq(struct mirror *mr,
			  const struct uhmm_notifier_range *r,
			  unsigned long cur_seq)
{
	(void)r;
	if (__atomic_load_n(&hook_armed, __ATOMIC_ACQUIRE)) {
		uhmm_interval_set_seq(&mr->sub, cur_seq);
		__atomic_store_n(&hook_hit, 1, __ATOMIC_RELEASE);
	}
}

static void *trylock_thread(void *arg)
{
	(void)arg;
	return (void *)(long)pthread_mutex_trylock(&m.lock);
}

struct holder {
	pid_t faulter;
	int locked;	/* atomic */
};

/* Hold the device lock until the faulter waits for it, then unmap page J
 * and let go once the callback recorded the collision. */
static void *holder_thread(void *arg)
{
	struct holder *h = arg;

	REQUIRE(pthread_mutex_lock(&m.lock) == 0);
	__atomic_store_n(&h->locked, 1, __ATOMIC_RELEASE);
	t_wait_blocked(h->faulter);
	REQUIRE(munmap((void *)m_addr(&m, J), t_page) == 0);
	while (!__atomic_load_n(&hook_hit, __ATOMIC_ACQUIRE))
		usleep(100);
	REQUIRE(pthread_mutex_unlock(&m.lock) == 0);
	return NULL;
}

struct invalidator {
	char *page;
	int stop;	/* atomic */
	long n;		/* atomic */
};

static void *invalidate_thread(void *arg)
{
	struct invalidator *v = arg;

	while (!__atomic_load_n(&v->stop, __ATOMIC_ACQUIRE)) {
		REQUIRE(madvise(v->page, t_page, MADV_DONTNEED) == 0);
		__atomic_add_fetch(&v->n, 1, __ATOMIC_RELEASE);
		usleep(20);
	}
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE);
	struct holder h = { .faulter = t_gettid() };
	struct invalidator v = { .page = p + 2 * t_page };
	struct uhmm_range r;
	pthread_t th;
	void *res;
	int ret, zero = 0, timedout = 0;
	long n0;

	memset(p, 1, N * t_page);
	REQUIRE(m_init(&m, mm, p, N) == 0);
	m.hook = early_set_seq;

	/* 0 with the lock held and a fresh seq. */
	REQUIRE(uhmm_mm_invalidate(mm, m.start, m.start + t_page,
				   UHMM_EVENT_PROTECTION) == 0);
	r = m_range(&m, 0, N, 0, UHMM_PFN_REQ_FAULT);
	r.notifier_seq = 12345;
	REQUIRE(uhmm_range_fault_lock(&r, &m.lock, 0) == 0);
	REQUIRE(pthread_create(&th, NULL, trylock_thread, NULL) == 0);
	REQUIRE(pthread_join(th, &res) == 0);
	CHECK_EQ((long)res, EBUSY);
	CHECK(!uhmm_interval_read_retry(&m.sub, r.notifier_seq));
	CHECK_EQ(pthread_mutex_unlock(&m.lock), 0);
	CHECK_EQ(r.notifier_seq, uhmm_interval_read_begin(&m.sub));
	for (unsigned long i = 0; i < N; i++)
		CHECK(m.pfns[i] & UHMM_PFN_VALID);

	/* An error returns without the lock. */
	REQUIRE(mprotect(p + 3 * t_page, t_page, PROT_NONE) == 0);
	r = m_range(&m, 0, N, 0, UHMM_PFN_REQ_FAULT);
	CHECK_EQ(uhmm_range_fault_lock(&r, &m.lock, 0), -EFAULT);
	CHECK_EQ(pthread_mutex_trylock(&m.lock), 0);
	CHECK_EQ(pthread_mutex_unlock(&m.lock), 0);
	REQUIRE(mprotect(p + 3 * t_page, t_page, PROT_READ | PROT_WRITE) == 0);

	/* A retry keeps the per-page requests: all but page J. */
	for (unsigned long i = 0; i < N; i++)
		m.pfns[i] = i == J ? 0 : UHMM_PFN_REQ_FAULT;
	__atomic_store_n(&hook_armed, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_create(&th, NULL, holder_thread, &h) == 0);
	while (!__atomic_load_n(&h.locked, __ATOMIC_ACQUIRE))
		usleep(100);
	CHECK_EQ(m_fault_req(&m, 0, N, UHMM_PFN_REQ_FAULT, 0), 0);
	REQUIRE(pthread_join(th, NULL) == 0);
	__atomic_store_n(&hook_armed, 0, __ATOMIC_RELEASE);
	CHECK_EQ(m.pfns[J], UHMM_PFN_ERROR);
	CHECK_EQ(m_valid(&m, 0, N), N - 1);
	REQUIRE(mmap(p + J * t_page, t_page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		p + J * t_page);

	/* A continuously colliding invalidator. */
	REQUIRE(pthread_create(&th, NULL, invalidate_thread, &v) == 0);
	while (__atomic_load_n(&v.n, __ATOMIC_ACQUIRE) < 1)
		usleep(100);
	/* At least 200 tries, and until 100 more invalidations ran. */
	n0 = __atomic_load_n(&v.n, __ATOMIC_ACQUIRE);
	for (int k = 0; k < (int)(200 * t_scale()) ||
			__atomic_load_n(&v.n, __ATOMIC_ACQUIRE) < n0 + 100;
	     k++) {
		m.timeout_ms = 1;
		ret = m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT);
		CHECK(ret == 0 || ret == -ETIMEDOUT);
		zero += ret == 0;
		timedout += ret == -ETIMEDOUT;
	}
	m.timeout_ms = 0;
	n0 = __atomic_load_n(&v.n, __ATOMIC_ACQUIRE);
	for (int k = 0; k < (int)(20 * t_scale()) ||
			__atomic_load_n(&v.n, __ATOMIC_ACQUIRE) < n0 + 20;
	     k++)
		CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT), 0);
	__atomic_store_n(&v.stop, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(th, NULL) == 0);
	printf("timeout 1 ms: %d x 0, %d x -ETIMEDOUT; %ld invalidations\n",
	       zero, timedout, v.n);

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
