/* SPDX-License-Identifier: MIT */
/*
 * uring.c - io_uring fixed buffers that follow the memory.
 *
 * A fixed buffer pins its pages when it is registered, and READ_FIXED
 * writes into those pages whatever the process maps at that address later:
 * after munmap() and a new mmap() at the same address, a read lands in the
 * old page and the program never sees it. Registering through a
 * uhmm_rcache over libuhmm_uring's device re-registers a buffer whose
 * pages changed, so the read lands in the memory the program has now.
 *
 * Here: a file of 'A's then 'B's; READ_FIXED of the 'A's into a buffer;
 * the buffer unmapped and mapped again at the same address; READ_FIXED of
 * the 'B's through the cache - the new page must hold them.
 *
 * Build: cc $(pkg-config --cflags uhmm-uring) uring.c \
 *		$(pkg-config --libs uhmm-uring)
 * Exit status: 0 if the second read landed in the new page, 1 if not (or
 * on an error), 77 if this machine forbids userfaultfd or io_uring
 * (`uhmm probe` says why).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <liburing.h>
#include <uhmm.h>
#include <uhmm_uring.h>

static bool all(const char *p, char c, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			return false;
	return true;
}

static int unavailable(const char *what, int err)
{
	fprintf(stderr, "%s unavailable here (%s); see `uhmm probe`\n", what,
		strerror(err));
	return 77;
}

int main(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct uhmm_uring_dev *dev;
	struct uhmm_rcache *rc;
	struct io_uring ring;
	struct uhmm_mm *mm;
	char *buf, *again;
	int ret, fd;
	bool ok;

	ret = uhmm_mm_open(&mm, 0);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		return unavailable("userfaultfd", -ret);
	if (ret) {
		fprintf(stderr, "uhmm_mm_open: %s\n", strerror(-ret));
		return 1;
	}
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret == -ENOSYS || ret == -EPERM)
		return unavailable("io_uring", -ret);
	if (ret || (ret = uhmm_uring_dev_open(&dev, &ring, 8)) ||
	    (ret = uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev,
				      NULL))) {
		fprintf(stderr, "setup: %s\n", strerror(-ret));
		return 1;
	}

	/* The "disk": one page of 'A's, one of 'B's. */
	fd = memfd_create("uhmm-example", MFD_CLOEXEC);
	buf = mmap(NULL, page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd < 0 || buf == MAP_FAILED) {
		perror("memfd_create or mmap");
		return 1;
	}
	memset(buf, 'A', page);
	if (write(fd, buf, page) != (ssize_t)page) {
		perror("write");
		return 1;
	}
	memset(buf, 'B', page);
	if (write(fd, buf, page) != (ssize_t)page) {
		perror("write");
		return 1;
	}
	memset(buf, 0, page);

	/* First read: the cache registers buf as a fixed buffer. */
	ret = uhmm_uring_read_fixed_sync(rc, &ring, fd, buf, page, 0);
	if (ret != (int)page || !all(buf, 'A', page)) {
		fprintf(stderr, "first read: %d\n", ret);
		return 1;
	}
	printf("read 1 into %p: '%c'...\n", (void *)buf, buf[0]);

	/*
	 * Unmap and map again at the same address: new, zeroed pages. The
	 * address may be taken in between by another thread's mmap() (uhmm's
	 * own threads map memory too), so ask for it without replacing.
	 */
	munmap(buf, page);
	again = mmap(buf, page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (again != buf) {
		fprintf(stderr, "the address was taken meanwhile; run again\n");
		return 1;
	}

	/* Second read: the cache saw the munmap() and registers the new
	 * page; with a plain fixed-buffer table this read would go to the
	 * old page and buf would stay zero. */
	ret = uhmm_uring_read_fixed_sync(rc, &ring, fd, buf, page, page);
	ok = ret == (int)page && all(buf, 'B', page);
	printf("read 2 into %p after munmap + mmap: %d bytes, '%c'... (%s)\n",
	       (void *)buf, ret, buf[0] ? buf[0] : '0',
	       ok ? "the new page" : "NOT the new page: stale");

	uhmm_rcache_destroy(rc);
	uhmm_uring_dev_close(dev);
	io_uring_queue_exit(&ring);
	uhmm_mm_close(mm);
	munmap(buf, page);
	close(fd);
	printf("%s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
