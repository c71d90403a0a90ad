/* SPDX-License-Identifier: MIT */
/*
 * A MAP_SHARED mapping of an ordinary file (mkstemp under /tmp) is
 * watchable: MADV_DONTNEED gives UHMM_EVENT_CLEAR over the advised range,
 * munmap UHMM_EVENT_UNMAP over the unmapped range.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	char path[] = "/tmp/uhmm-file-shared-XXXXXX";
	int fd = mkstemp(path);
	char *p;

	REQUIRE(fd >= 0);
	unlink(path);
	REQUIRE(ftruncate(fd, 4 * P) == 0);
	p = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED);
	memset(p, 1, 4 * P);
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);
	CHECK_EQ(t_registered(p), 1);

	REQUIRE(madvise(p + P, P, MADV_DONTNEED) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a + P, a + 2 * P));
	CHECK_EQ(p[P], 1);	/* shared: the file keeps the data */

	REQUIRE(munmap(p + 3 * P, P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 3 * P, a + 4 * P));
	REQUIRE(munmap(p, 3 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 3 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	close(fd);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
