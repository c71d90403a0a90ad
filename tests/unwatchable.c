/* SPDX-License-Identifier: MIT */
/*
 * A range that userfaultfd cannot register - the vdso - is refused with
 * -EOPNOTSUPP, the subscription is not inserted, and nothing is left armed:
 * a range over an ordinary mapping still inserts and hears its munmap.
 */
#include <sys/auxv.h>

#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	unsigned long vdso = getauxval(AT_SYSINFO_EHDR);
	struct t_log l, ok;
	char *p = t_map(2);
	unsigned long a = (unsigned long)p;

	if (!vdso)
		SKIP("no vdso (AT_SYSINFO_EHDR is 0)");
	CHECK_EQ(t_log_insert(&l, mm, vdso, t_page), -EOPNOTSUPP);
	CHECK_EQ(uhmm_interval_notifier_remove(&l.dev.sub), -ENOENT);
	CHECK_EQ(uhmm_interval_notifier_arm(&l.dev.sub), -ENOENT);
	CHECK_EQ(t_registered((void *)vdso), 0);

	REQUIRE(t_log_insert(&ok, mm, a, 2 * t_page) == 0);
	REQUIRE(munmap(p, 2 * t_page) == 0);
	t_log_wait(&ok);
	CHECK_LOG(&ok, T_EV(UNMAP, a, a + 2 * t_page));
	CHECK_NO_LOG(&l);

	REQUIRE(uhmm_interval_notifier_remove(&ok.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
