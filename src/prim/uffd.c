/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd and the small fd plumbing around it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
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

void *uhmm_prim_map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void uhmm_prim_unmap(void *p, size_t len)
{
	munmap(p, len);
}

int uhmm_prim_mmap_barrier(void *page)
{
	return mprotect(page, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) ? -errno
									: 0;
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
