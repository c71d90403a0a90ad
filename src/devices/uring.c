/* SPDX-License-Identifier: MIT */
/*
 * io_uring fixed buffers as a registration-cache device.
 *
 * The ring gets one sparse buffer table, registered once at open, and each
 * region of the cache is one slot of it: reg fills a free slot with
 * IORING_REGISTER_BUFFERS_UPDATE (pinning the region's pages), dereg
 * updates the slot to the empty iovec (unpinning them). Registering the
 * whole table again instead would mean unregistering it first (the kernel
 * refuses a second table with -EBUSY): every buffer dropped and re-pinned
 * for one change, and no other thread may submit fixed I/O meanwhile
 * (older kernels even wait for all of it to finish). A slot update touches
 * one slot, costs about as much as pinning its pages, and lets requests on
 * other slots - even in-flight requests on the old contents of this slot,
 * which keep their pages until they complete - run undisturbed.
 *
 * The slot allocator is a stack of free slot numbers under its own mutex;
 * the kernel call runs outside it. A slot is emptied before it returns to
 * the stack, so a reg that takes it next cannot be overwritten by a late
 * empty update.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "uhmm_uring.h"

struct uhmm_uring_dev {
	struct io_uring *ring;
	unsigned int slots;
	pthread_mutex_t lock;
	unsigned int nfree;	/* [lock] entries of free[] */
	unsigned int *free;	/* [lock] free slot numbers, a stack */
	bool *used;		/* [lock] used[slot]: taken by reg */
};

int uhmm_uring_dev_open(struct uhmm_uring_dev **devp, struct io_uring *ring,
			unsigned int slots)
{
	struct uhmm_uring_dev *dev;
	int ret;

	if (!devp || !ring || !slots)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->free = calloc(slots, sizeof(*dev->free));
	dev->used = calloc(slots, sizeof(*dev->used));
	if (!dev->free || !dev->used) {
		ret = -ENOMEM;
		goto err;
	}
	ret = io_uring_register_buffers_sparse(ring, slots);
	if (ret < 0)
		goto err;
	/* Hand out low slots first. */
	for (unsigned int i = 0; i < slots; i++)
		dev->free[i] = slots - 1 - i;
	dev->nfree = slots;
	dev->slots = slots;
	dev->ring = ring;
	pthread_mutex_init(&dev->lock, NULL);
	*devp = dev;
	return 0;
err:
	free(dev->free);
	free(dev->used);
	free(dev);
	return ret;
}

int uhmm_uring_dev_close(struct uhmm_uring_dev *dev)
{
	int ret;

	if (!dev)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	ret = dev->nfree == dev->slots ? 0 : -EBUSY;
	pthread_mutex_unlock(&dev->lock);
	if (ret)
		return ret;
	ret = io_uring_unregister_buffers(dev->ring);
	if (ret < 0)
		return ret;
	pthread_mutex_destroy(&dev->lock);
	free(dev->free);
	free(dev->used);
	free(dev);
	return 0;
}

static int slot_get(struct uhmm_uring_dev *dev, unsigned int *slot)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&dev->lock);
	if (dev->nfree) {
		*slot = dev->free[--dev->nfree];
		dev->used[*slot] = true;
		ret = 0;
	}
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

static void slot_put(struct uhmm_uring_dev *dev, unsigned int slot)
{
	pthread_mutex_lock(&dev->lock);
	dev->used[slot] = false;
	dev->free[dev->nfree++] = slot;
	pthread_mutex_unlock(&dev->lock);
}

static bool slot_used(struct uhmm_uring_dev *dev, uint64_t slot)
{
	bool used;

	if (slot >= dev->slots)
		return false;
	pthread_mutex_lock(&dev->lock);
	used = dev->used[slot];
	pthread_mutex_unlock(&dev->lock);
	return used;
}

/* Point slot at iov; the empty iovec empties it. Returns 0 or -errno. */
static int slot_update(struct uhmm_uring_dev *dev, unsigned int slot,
		       void *addr, size_t len)
{
	struct iovec iov = { .iov_base = addr, .iov_len = len };
	int ret;

	ret = io_uring_register_buffers_update_tag(dev->ring, slot, &iov,
						   NULL, 1);
	if (ret < 0)
		return ret;
	return ret == 1 ? 0 : -EIO;
}

static int uring_reg(void *devp, void *addr, size_t len, unsigned int access,
		     uint64_t *handle)
{
	struct uhmm_uring_dev *dev = devp;
	unsigned int slot;
	int ret;

	/* The kernel pins for writing whatever the access. */
	(void)access;
	if (!addr || !len)
		return -EINVAL;
	ret = slot_get(dev, &slot);
	if (ret)
		return ret;
	ret = slot_update(dev, slot, addr, len);
	if (ret) {
		slot_put(dev, slot);
		return ret;
	}
	*handle = slot;
	return 0;
}

static void uring_dereg(void *devp, uint64_t handle)
{
	struct uhmm_uring_dev *dev = devp;

	if (!slot_used(dev, handle))
		return;
	/*
	 * Emptying cannot fail short of a kernel out of memory; then the old
	 * pages stay pinned until the slot is reused or the table closed,
	 * which is all that can be done from a void op.
	 */
	slot_update(dev, (unsigned int)handle, NULL, 0);
	slot_put(dev, (unsigned int)handle);
}

static const struct uhmm_rcache_ops uring_ops = {
	.reg = uring_reg,
	.dereg = uring_dereg,
};

const struct uhmm_rcache_ops *uhmm_uring_rcache_ops(void)
{
	return &uring_ops;
}

/*
 * io_uring pins every fixed buffer for reading and writing, whatever the
 * I/O: ask for both, so READ_FIXED and WRITE_FIXED of a buffer share one
 * region (and one slot).
 */
static int region_get(struct uhmm_rcache *rc, void *buf, unsigned int len,
		      struct uhmm_region **regionp)
{
	return uhmm_rcache_get(rc, buf, len,
			       UHMM_ACCESS_READ | UHMM_ACCESS_WRITE, regionp);
}

static void prep(struct io_uring_sqe *sqe, bool read, int fd, void *buf,
		 unsigned int len, uint64_t offset,
		 const struct uhmm_region *region)
{
	if (read)
		io_uring_prep_read_fixed(sqe, fd, buf, len, offset,
					 (int)region->handle);
	else
		io_uring_prep_write_fixed(sqe, fd, buf, len, offset,
					  (int)region->handle);
}

static int prep_fixed(struct uhmm_rcache *rc, struct io_uring_sqe *sqe,
		      bool read, int fd, void *buf, unsigned int len,
		      uint64_t offset, struct uhmm_region **regionp)
{
	int ret;

	if (!sqe)
		return -EINVAL;
	ret = region_get(rc, buf, len, regionp);
	if (ret)
		return ret;
	prep(sqe, read, fd, buf, len, offset, *regionp);
	return 0;
}

int uhmm_uring_prep_read_fixed(struct uhmm_rcache *rc,
			       struct io_uring_sqe *sqe, int fd, void *buf,
			       unsigned int len, uint64_t offset,
			       struct uhmm_region **regionp)
{
	return prep_fixed(rc, sqe, true, fd, buf, len, offset, regionp);
}

int uhmm_uring_prep_write_fixed(struct uhmm_rcache *rc,
				struct io_uring_sqe *sqe, int fd,
				const void *buf, unsigned int len,
				uint64_t offset, struct uhmm_region **regionp)
{
	return prep_fixed(rc, sqe, false, fd, (void *)buf, len, offset,
			  regionp);
}

static int fixed_sync(struct uhmm_rcache *rc, struct io_uring *ring,
		      bool read, int fd, void *buf, unsigned int len,
		      uint64_t offset)
{
	struct uhmm_region *region;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	if (!ring)
		return -EINVAL;
	ret = region_get(rc, buf, len, &region);
	if (ret)
		return ret;
	sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		uhmm_rcache_put(rc, region);
		return -EBUSY;
	}
	prep(sqe, read, fd, buf, len, offset, region);
	/*
	 * On a failed submit or wait the request may still run later, so
	 * the region stays held rather than be released under it.
	 */
	do
		ret = io_uring_submit_and_wait(ring, 1);
	while (ret == -EINTR);
	if (ret < 0)
		return ret;
	do
		ret = io_uring_wait_cqe(ring, &cqe);
	while (ret == -EINTR);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	uhmm_rcache_put(rc, region);
	return ret;
}

int uhmm_uring_read_fixed_sync(struct uhmm_rcache *rc, struct io_uring *ring,
			       int fd, void *buf, unsigned int len,
			       uint64_t offset)
{
	return fixed_sync(rc, ring, true, fd, buf, len, offset);
}

int uhmm_uring_write_fixed_sync(struct uhmm_rcache *rc, struct io_uring *ring,
				int fd, const void *buf, unsigned int len,
				uint64_t offset)
{
	return fixed_sync(rc, ring, false, fd, (void *)buf, len, offset);
}
