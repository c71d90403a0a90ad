/* SPDX-License-Identifier: MIT */
/*
 * The application's own userfaultfd has a range registered (WP mode, with
 * features 0 and with WP_ASYNC): a uhmm insert over a range reaching into
 * it fails with -EBUSY, and nothing stays armed by uhmm - the mapping of
 * the range that uhmm could register is unregistered again (its munmap is
 * no event) and an insert elsewhere still works. Once the application
 * closes its uffd (which unregisters), the same insert succeeds.
 *
 * Safety: our uffd is never read, so nothing registered with it may be
 * unmapped while it is open; it is closed before any unmap of that range.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "events.h"
#include "prim/uapi.h"

static int own_uffd(unsigned long long features, void *at, unsigned long len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = {
		.range = { .start = (unsigned long)at, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int fd = (int)syscall(SYS_userfaultfd,
			      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	REQUIRE(fd >= 0);
	REQUIRE(ioctl(fd, UFFDIO_API, &api) == 0);
	REQUIRE(ioctl(fd, UFFDIO_REGISTER, &reg) == 0);
	return fd;
}

static void run(struct uhmm_mm *mm, unsigned long long features)
{
	unsigned long P = t_page, a, before;
	struct t_log l;
	char *p = t_map(4);
	int fd;

	/* Ours: page 3 (splits the mapping: [0, 3) stays uhmm's to take). */
	a = (unsigned long)p;
	fd = own_uffd(features, p + 3 * P, P);

	CHECK_EQ(t_log_insert(&l, mm, a, 4 * P), -EBUSY);
	CHECK_EQ(uhmm_interval_notifier_remove(&l.dev.sub), -ENOENT);
	CHECK_EQ(t_registered(p), 0);	/* rolled back */
	CHECK_EQ(t_registered(p + 3 * P), 1);	/* still the app's */
	before = t_events(mm);
	REQUIRE(munmap(p, P) == 0);	/* not our uffd's page */
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_events(mm), before);

	/* Elsewhere: fine. */
	REQUIRE(t_log_insert(&l, mm, a + P, 2 * P) == 0);
	REQUIRE(munmap(p + P, P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + P, a + 2 * P));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);

	/* The app lets go: uhmm may take it. */
	close(fd);
	REQUIRE(t_log_insert(&l, mm, a + 2 * P, 2 * P) == 0);
	CHECK_EQ(t_registered(p + 3 * P), 1);
	REQUIRE(munmap(p + 2 * P, 2 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 2 * P, a + 4 * P));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();

	run(mm, 0);
	run(mm, UFFD_FEATURE_WP_ASYNC);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
