/* SPDX-License-Identifier: MIT */
/*
 * SysV shared memory is watchable: MADV_DONTNEED and munmap() of an
 * attached segment give CLEAR and UNMAP. But shmdt() sends NO event: the
 * kernel unmaps the segment without telling userfaultfd (docs/design.md,
 * "No event at all"). A known kernel limitation: a device mirroring a SysV
 * segment must hear of shmdt() another way. This test asserts reality, so
 * it fails the day the kernel starts reporting shmdt().
 */
#include <sys/shm.h>

#include "events.h"

static char *attach(int id)
{
	char *p = shmat(id, NULL, 0);

	REQUIRE(p != (void *)-1);
	return p;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a, before;
	int id = shmget(IPC_PRIVATE, 4 * P, IPC_CREAT | 0600);
	char *p;

	if (id < 0)
		SKIP("shmget: %s", strerror(errno));

	/* shmdt: silent. */
	p = attach(id);
	memset(p, 1, 4 * P);
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);
	CHECK_EQ(t_registered(p), 1);
	before = t_events(mm);
	REQUIRE(shmdt(p) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_events(mm), before);
	CHECK_NO_LOG(&l);
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);

	/* MADV_DONTNEED and munmap of the segment: heard. */
	p = attach(id);
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);
	REQUIRE(madvise(p, P, MADV_DONTNEED) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a, a + P));
	CHECK_EQ(p[0], 1);	/* shared: the segment keeps it */
	REQUIRE(munmap(p, 4 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * P));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);

	REQUIRE(shmctl(id, IPC_RMID, NULL) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
