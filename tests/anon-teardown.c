/* SPDX-License-Identifier: MIT */
/*
 * Teardown race (hmm-tests anon_teardown): while another thread munmaps
 * the second half of a buffer, this thread runs uhmm_range_fault_lock()
 * with REQ_FAULT over the whole buffer, again and again. Each attempt
 * either fails (-EFAULT, the hole) or commits a snapshot in which every
 * page is VALID. Never stale:
 *  - an attempt that starts after the munmap returned (so its read_begin
 *    is later too) cannot succeed while the hole is still a hole;
 *  - after the join and a read_begin, the mirror holds no translation for
 *    the unmapped half.
 * (If some other mmap reuses the hole meanwhile, a success is legitimate:
 * the checks look at whether the hole is still unmapped.)
 */
#include "mirror.h"

#define N 64

struct unmapper {
	char *half;
	int go, done;	/* atomic */
};

static void *unmap_thread(void *arg)
{
	struct unmapper *u = arg;

	while (!__atomic_load_n(&u->go, __ATOMIC_ACQUIRE))
		;
	REQUIRE(munmap(u->half, N / 2 * t_page) == 0);
	__atomic_store_n(&u->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Is [p, p + len) entirely unmapped? msync says ENOMEM for any hole. */
static bool unmapped(char *p, size_t len)
{
	for (size_t off = 0; off < len; off += t_page)
		if (msync(p + off, t_page, MS_ASYNC) == 0)
			return false;
	return true;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	int rounds = (int)(100 * t_scale()), ok = 0, efault = 0;

	for (int r = 0; r < rounds; r++) {
		char *p = m_map_anon(N, PROT_READ | PROT_WRITE);
		struct unmapper u = { .half = p + N / 2 * t_page };
		struct mirror m;
		pthread_t th;
		int ret, attempts = 0;

		memset(p, 3, N * t_page);
		REQUIRE(m_init(&m, mm, p, N) == 0);
		REQUIRE(pthread_create(&th, NULL, unmap_thread, &u) == 0);
		for (;;) {
			int done = __atomic_load_n(&u.done, __ATOMIC_ACQUIRE);

			if (attempts++ == 1)
				__atomic_store_n(&u.go, 1, __ATOMIC_RELEASE);
			ret = m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT);
			CHECK(ret == 0 || ret == -EFAULT);
			if (ret == 0) {
				ok++;
				if (done && unmapped(u.half, N / 2 * t_page)) {
					fprintf(stderr, "round %d: a fault "
						"after munmap returned "
						"succeeded\n", r);
					t_failed = 1;
				}
			} else {
				efault++;
			}
			if (done)
				break;
		}
		REQUIRE(pthread_join(th, NULL) == 0);
		(void)uhmm_interval_read_begin(&m.sub);
		if (unmapped(u.half, N / 2 * t_page))
			CHECK_EQ(m_valid(&m, N / 2, N / 2), 0);
		else
			printf("round %d: the hole was reused\n", r);
		CHECK_EQ(m_fault(&m, 0, N / 2, UHMM_PFN_REQ_FAULT), 0);
		CHECK_EQ(m_valid(&m, 0, N / 2), N / 2);
		REQUIRE(munmap(p, N / 2 * t_page) == 0);
		m_fini(&m);
		if (t_failed)
			break;
	}
	printf("%d snapshots, %d -EFAULT\n", ok, efault);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
