/* SPDX-License-Identifier: MIT */
/*
 * The io_uring fixed-buffer device on its own, without a cache or an mm
 * (so no userfaultfd): its ops register a buffer in a slot and READ_FIXED
 * through that slot lands in the buffer. Then the device is shown to be a
 * real stale-translation device: after munmap() + mmap(MAP_FIXED) of a new
 * page at the same address, READ_FIXED through the same slot still lands
 * in the OLD pinned page (seen through a second view of its memfd) and the
 * application's new page stays zero. dereg + reg re-pins, and the next
 * read lands in the new page. Also: slot exhaustion, busy close, a second
 * table on the same ring.
 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uhmm_uring.h"
#include "test.h"

static long page;

/* READ_FIXED len bytes of fd at off into buf through slot; the result. */
static int read_slot(struct io_uring *ring, int fd, void *buf, size_t len,
		     uint64_t off, uint64_t slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	REQUIRE(sqe);
	io_uring_prep_read_fixed(sqe, fd, buf, (unsigned int)len, off,
				 (int)slot);
	REQUIRE(io_uring_submit(ring) == 1);
	REQUIRE(io_uring_wait_cqe(ring, &cqe) == 0);
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

static bool all(const unsigned char *p, int c, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			return false;
	return true;
}

/* A file of two pages, 'A's then 'B's, open read-only and unlinked. */
static int data_file(void)
{
	char path[] = "/tmp/uhmm-uring-XXXXXX";
	unsigned char *data = malloc(2 * page);
	int fd = mkstemp(path);

	REQUIRE(data && fd >= 0);
	memset(data, 'A', page);
	memset(data + page, 'B', page);
	REQUIRE(write(fd, data, 2 * page) == 2 * page);
	close(fd);
	fd = open(path, O_RDONLY);
	REQUIRE(fd >= 0);
	unlink(path);
	free(data);
	return fd;
}

int main(void)
{
	const struct uhmm_rcache_ops *ops = uhmm_uring_rcache_ops();
	struct uhmm_uring_dev *dev, *dev2;
	struct io_uring ring;
	uint64_t slot, slot2, slot3;
	unsigned char *buf, *old, *other;
	int ret, fd, mfd;

	page = sysconf(_SC_PAGESIZE);
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret == -ENOSYS || ret == -EPERM)
		SKIP("io_uring is disabled here (io_uring_queue_init: %s)",
		     strerror(-ret));
	REQUIRE(ret == 0);

	CHECK_EQ(uhmm_uring_dev_open(NULL, &ring, 2), -EINVAL);
	CHECK_EQ(uhmm_uring_dev_open(&dev, NULL, 2), -EINVAL);
	CHECK_EQ(uhmm_uring_dev_open(&dev, &ring, 0), -EINVAL);
	CHECK_EQ(uhmm_uring_dev_close(NULL), -EINVAL);
	REQUIRE(uhmm_uring_dev_open(&dev, &ring, 2) == 0);
	CHECK_EQ(uhmm_uring_dev_open(&dev2, &ring, 2), -EBUSY);

	fd = data_file();
	/* The buffer is a memfd page, so the old page stays visible through
	 * a second view after the buffer's own mapping is gone. */
	mfd = memfd_create("uhmm-uring", 0);
	REQUIRE(mfd >= 0 && ftruncate(mfd, page) == 0);
	buf = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	old = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(buf != MAP_FAILED && old != MAP_FAILED);

	/* reg, then READ_FIXED lands in the buffer. */
	REQUIRE(ops->reg(dev, buf, page, UHMM_ACCESS_WRITE, &slot) == 0);
	CHECK_EQ(slot, 0);
	CHECK_EQ(read_slot(&ring, fd, buf, page, 0, slot), page);
	CHECK(all(buf, 'A', page));

	/* Slots run out; a table in use cannot be closed. */
	other = mmap(NULL, page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(other != MAP_FAILED);
	REQUIRE(ops->reg(dev, other, page, UHMM_ACCESS_WRITE, &slot2) == 0);
	CHECK_EQ(slot2, 1);
	CHECK_EQ(ops->reg(dev, other, page, UHMM_ACCESS_WRITE, &slot3),
		 -ENOSPC);
	CHECK_EQ(uhmm_uring_dev_close(dev), -EBUSY);
	ops->dereg(dev, slot2);

	/* A new page at the same address: the slot still holds the old. */
	REQUIRE(munmap(buf, page) == 0);
	REQUIRE(mmap(buf, page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == buf);
	CHECK_EQ(read_slot(&ring, fd, buf, page, page, slot), page);
	CHECK(all(old, 'B', page));	/* landed in the old pinned page */
	CHECK(all(buf, 0, page));	/* the application sees nothing */

	/* Re-pin: dereg + reg, and the read lands in the new page. */
	ops->dereg(dev, slot);
	REQUIRE(ops->reg(dev, buf, page, UHMM_ACCESS_WRITE, &slot) == 0);
	CHECK_EQ(read_slot(&ring, fd, buf, page, 0, slot), page);
	CHECK(all(buf, 'A', page));
	CHECK(all(old, 'B', page));
	ops->dereg(dev, slot);

	CHECK_EQ(uhmm_uring_dev_close(dev), 0);
	/* The table is gone: the ring takes a new one. */
	REQUIRE(uhmm_uring_dev_open(&dev, &ring, 1) == 0);
	CHECK_EQ(uhmm_uring_dev_close(dev), 0);

	io_uring_queue_exit(&ring);
	munmap(buf, page);
	munmap(old, page);
	munmap(other, page);
	close(mfd);
	close(fd);
	if (!t_failed)
		printf("READ_FIXED after munmap + mmap(MAP_FIXED) landed in "
		       "the old pinned page; re-registration fixed it\n");
	return t_result();
}
