/* SPDX-License-Identifier: MIT */
/*
 * A MAP_PRIVATE mapping of an ordinary file (mkstemp under /tmp), with
 * copy-on-write pages, is watchable: MADV_DONTNEED gives UHMM_EVENT_CLEAR
 * over the advised range (the private copy is dropped: the file's data
 * shows again), munmap UHMM_EVENT_UNMAP over the unmapped range.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	char path[] = "/tmp/uhmm-file-private-XXXXXX";
	int fd = mkstemp(path);
	char *p;

	REQUIRE(fd >= 0);
	unlink(path);
	REQUIRE(ftruncate(fd, 4 * P) == 0);
	p = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	REQUIRE(p != MAP_FAILED);
	memset(p, 1, 4 * P);	/* private copies */
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);
	CHECK_EQ(t_registered(p), 1);

	REQUIRE(madvise(p + P, 2 * P, MADV_DONTNEED) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a + P, a + 3 * P));
	CHECK_EQ(p[P], 0);	/* back to the file's zeros */
	CHECK_EQ(p[0], 1);

	REQUIRE(munmap(p, 4 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	close(fd);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
