/* SPDX-License-Identifier: MIT */
/*
 * madvise(MADV_REMOVE) on a MAP_SHARED memfd mapping punches a hole in the
 * file: one UHMM_EVENT_CLEAR over exactly the advised range. (A hole
 * punched with fallocate() instead sends no event: docs/design.md.)
 */
#include <sys/mman.h>

#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	int fd = memfd_create("uhmm-test", MFD_CLOEXEC);
	char *p;

	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, 4 * P) == 0);
	p = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED);
	memset(p, 1, 4 * P);
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);
	CHECK_EQ(t_registered(p), 1);

	REQUIRE(madvise(p + P, 2 * P, MADV_REMOVE) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a + P, a + 3 * P));
	CHECK_EQ(p[P], 0);	/* the file has a hole there now */
	CHECK_EQ(p[0], 1);

	REQUIRE(munmap(p, 4 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	close(fd);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
