/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd and the small fd plumbing around it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "prim/prim.h"
#include "prim/uapi.h"

#define UHMM_UFFD_FEATURES                                                     \
	(UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE |                \
	 UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_WP_ASYNC)

int uhmm_prim_uffd_open(int *fdp)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UHMM_UFFD_FEATURES,
	};
	int fd;

	fd = (int)syscall(SYS_userfaultfd,
			  O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;

		close(fd);
		/* The handshake fails with EINVAL for an unknown feature. */
		return err == EINVAL ? -EOPNOTSUPP : -err;
	}
	*fdp = fd;
	return 0;
}

int uhmm_prim_uffd_register(int fd, unsigned long start, unsigned long len)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

int uhmm_prim_uffd_unregister(int fd, unsigned long start, unsigned long len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &range) ? -errno : 0;
}

int uhmm_prim_uffd_changing(int fd)
{
	struct uffdio_copy copy = { .mode = 1ULL << 63 };

	if (!ioctl(fd, UFFDIO_COPY, &copy))
		return -EPROTO;	/* cannot succeed: nothing to copy */
	if (errno == EAGAIN)
		return 1;
	return errno == EINVAL ? 0 : -errno;
}

/*
 * The self-test of uhmm_prim_uffd_changing(): a page registered with a
 * userfaultfd of its own, unmapped by a helper thread, which the kernel
 * keeps waiting until the event is read. Before the munmap the probe must
 * answer no; once the event is queued and unread, yes; once it is read
 * and the helper has returned, no again. The helper holds no lock while
 * it waits, and closing the fd releases it should the read never come.
 */
static bool selftest_broken;

void uhmm_prim_uffd_changing_break(void)
{
	selftest_broken = true;
}

struct selftest_unmap {
	void *page;
	size_t len;
};

static void *selftest_unmap_main(void *arg)
{
	struct selftest_unmap *u = arg;

	uhmm_prim_sys_munmap(u->page, u->len);
	return NULL;
}

static int selftest_probe(int fd)
{
	return selftest_broken ? 0 : uhmm_prim_uffd_changing(fd);
}

int uhmm_prim_uffd_changing_selftest(void)
{
	struct selftest_unmap u = { .len = (size_t)sysconf(_SC_PAGESIZE) };
	int fd = -1, before, during, after, ready, ret;
	struct uffd_msg msg;
	sigset_t all, old;
	pthread_t helper;

	ret = uhmm_prim_uffd_open(&fd);
	if (ret)
		return ret;
	u.page = uhmm_prim_sys_mmap(NULL, u.len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u.page == MAP_FAILED) {
		ret = -ENOMEM;
		goto out_close;
	}
	ret = uhmm_prim_uffd_register(fd, (unsigned long)u.page, u.len);
	if (ret)
		goto out_unmap;
	before = selftest_probe(fd);
	/* No signal handler of the application runs on the helper. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&helper, NULL, selftest_unmap_main, &u);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		goto out_unmap;
	/* Queued: the helper now waits for the read (10 s at most here). */
	ready = uhmm_prim_wait2(fd, -1, 10 * 1000 * 1000);
	if (ready > 0 && (ready & UHMM_PRIM_READABLE)) {
		during = selftest_probe(fd);
		if (uhmm_prim_uffd_read(fd, &msg, 1) == 1 &&
		    msg.event == UFFD_EVENT_UNMAP) {
			/* Back from munmap(): the count is down. */
			pthread_join(helper, NULL);
			after = selftest_probe(fd);
			close(fd);
			return before == 0 && during == 1 && after == 0
				       ? 0
				       : -EOPNOTSUPP;
		}
	}
	close(fd);		/* releases the helper if it still waits */
	pthread_join(helper, NULL);
	/* Nothing to read in 10 s: the helper may not have run yet. */
	return ready == 0 ? -EAGAIN : -EOPNOTSUPP;

out_unmap:
	uhmm_prim_sys_munmap(u.page, u.len);
out_close:
	close(fd);
	return ret;
}

ssize_t uhmm_prim_uffd_read(int fd, struct uffd_msg *msgs, size_t n)
{
	ssize_t ret;

	do
		ret = read(fd, msgs, n * sizeof(*msgs));
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	return ret / (ssize_t)sizeof(*msgs);
}

int uhmm_prim_wait2(int fd, int wake_fd, long long timeout_us)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = wake_fd, .events = POLLIN },
	};
	struct timespec ts = {
		.tv_sec = timeout_us / 1000000,
		.tv_nsec = (timeout_us % 1000000) * 1000,
	};
	int ret;

	ret = ppoll(pfd, 2, timeout_us < 0 ? NULL : &ts, NULL);
	if (ret < 0)
		return errno == EINTR ? 0 : -errno;
	return (pfd[0].revents ? UHMM_PRIM_READABLE : 0) |
	       (pfd[1].revents ? UHMM_PRIM_WOKEN : 0);
}

int uhmm_prim_eventfd(int *fdp)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	*fdp = fd;
	return 0;
}

void uhmm_prim_eventfd_signal(int fd)
{
	uint64_t one = 1;

	/* Only fails when the counter would overflow: it is signalled. */
	(void)!write(fd, &one, sizeof(one));
}

void uhmm_prim_eventfd_drain(int fd)
{
	uint64_t v;

	(void)!read(fd, &v, sizeof(v));
}

#ifdef __SANITIZE_THREAD__
/* ThreadSanitizer's own mmap(), not libc's symbol (libuhmm_hooks may
 * replace that one, and its re-arming takes locks the reader must not). */
void *__interceptor_mmap(void *addr, size_t len, int prot, int flags, int fd,
			 off_t offset);
#endif

void *uhmm_prim_map_anon(size_t len)
{
#ifdef __SANITIZE_THREAD__
	/*
	 * ThreadSanitizer learns that memory is fresh only from an mmap() it
	 * intercepts. After an application's raw munmap system call, a raw
	 * mmap here at the same address would leave the shadow of the old
	 * pages' accesses, and uhmm's first writes to its own memory would be
	 * reported as races with them (seen in tests/stress.c).
	 */
	void *p = __interceptor_mmap(NULL, len, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#else
	void *p = uhmm_prim_sys_mmap(NULL, len, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#endif

	return p == MAP_FAILED ? NULL : p;
}

void uhmm_prim_unmap(void *p, size_t len)
{
	uhmm_prim_sys_munmap(p, len);
}

int uhmm_prim_mmap_barrier(void *page)
{
	return uhmm_prim_sys_mprotect(page, (size_t)sysconf(_SC_PAGESIZE),
				      PROT_NONE) ? -errno : 0;
}

void uhmm_prim_set_timer_slack_ns(unsigned long ns)
{
	prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0);
}

void uhmm_prim_yield(void)
{
	sched_yield();
}

void uhmm_prim_close(int fd)
{
	if (fd >= 0)
		close(fd);
}
