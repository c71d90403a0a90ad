/* SPDX-License-Identifier: MIT */
/*
 * uhmm_uring - io_uring fixed buffers as a uhmm registration-cache device.
 *
 * A fixed buffer is a translation the kernel caches for the ring: the
 * pages are pinned when the buffer is registered, and READ_FIXED and
 * WRITE_FIXED go to those pages whatever the process maps at that address
 * later. After munmap() + mmap(MAP_FIXED) at the same address, a read lands
 * in the old page and the application never sees it. Putting the table
 * behind a struct uhmm_rcache fixes that: the cache re-registers a buffer
 * whose pages changed. It is its own library, on top of libuhmm's public
 * API: link with -luhmm_uring -luhmm -luring.
 *
 *	struct uhmm_uring_dev *dev;
 *	struct uhmm_rcache *rc;
 *	struct uhmm_region *region;
 *
 *	uhmm_uring_dev_open(&dev, &ring, 64);
 *	uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev, NULL);
 *	sqe = io_uring_get_sqe(&ring);
 *	uhmm_uring_prep_read_fixed(rc, sqe, fd, buf, len, off, &region);
 *	io_uring_submit(&ring);
 *	... wait for the completion ...
 *	uhmm_rcache_put(rc, region);
 *	...
 *	uhmm_rcache_destroy(rc);
 *	uhmm_uring_dev_close(dev);
 *
 * Kernel rules that show through: each buffer is at most 1 GiB (longer
 * ones fail with -EFAULT), a table has at most 16384 slots, pinned bytes
 * count against RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK
 * (-ENOMEM past it; 8 MiB by default), and the kernel pins for writing, so
 * a buffer must be writable even for WRITE_FIXED and may not be a MAP_SHARED
 * mapping of a regular file (shmem/memfd is fine): -EFAULT otherwise.
 */
#ifndef UHMM_URING_H
#define UHMM_URING_H

#include <stdint.h>

#include <liburing.h>
#include <uhmm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A sparse fixed-buffer table on one ring, and its free slots. Opaque. */
struct uhmm_uring_dev;

/*
 * uhmm_uring_dev_open - register a sparse table of slots fixed buffers
 * (all empty) on ring, which the caller keeps open until
 * uhmm_uring_dev_close(). The device owns the ring's buffer table: nothing
 * else may register or unregister buffers on the ring meanwhile.
 * Slots are taken and released by the ops of uhmm_uring_rcache_ops(), from
 * any thread. Not for a ring set up with IORING_SETUP_SINGLE_ISSUER: the
 * kernel refuses slot updates from any other thread (-EEXIST), and the
 * cache deregisters on its worker thread.
 * Returns 0 and sets *devp, or:
 *   -EINVAL  devp or ring is NULL, slots is 0, or the kernel refused the
 *            size (more than 16384 slots)
 *   -ENOMEM  out of memory
 *   -EBUSY   the ring already has a buffer table
 *   any other error of io_uring_register_buffers_sparse()
 */
UHMM_API int uhmm_uring_dev_open(struct uhmm_uring_dev **devp,
				 struct io_uring *ring, unsigned int slots);

/*
 * uhmm_uring_dev_close - unregister the table and free dev. The ring
 * stays open. Requests still in flight keep the pages they use until they
 * complete.
 * Returns 0, or:
 *   -EINVAL  dev is NULL
 *   -EBUSY   a slot is still registered (destroy the cache first); nothing
 *            was done
 *   any error of io_uring_unregister_buffers(); dev stays open
 */
UHMM_API int uhmm_uring_dev_close(struct uhmm_uring_dev *dev);

/*
 * uhmm_uring_rcache_ops - the ops to hand to uhmm_rcache_create() with a
 * struct uhmm_uring_dev * as its dev. A region's handle is its slot, the
 * buf_index of READ_FIXED and WRITE_FIXED.
 *
 * reg takes a free slot and fills it with the region's pages, pinning
 * them. Errors: -ENOSPC (no free slot), or the kernel's: -EFAULT (memory
 * not mapped, not writable, a shared file mapping, or longer than 1 GiB),
 * -ENOMEM (out of memory or past RLIMIT_MEMLOCK), -EOVERFLOW, -EEXIST
 * (IORING_SETUP_SINGLE_ISSUER ring, called from another thread).
 * dereg empties the slot, unpinning the pages once no request in flight
 * uses them, and frees the slot.
 * Never returns NULL.
 */
UHMM_API const struct uhmm_rcache_ops *uhmm_uring_rcache_ops(void);

/*
 * uhmm_uring_prep_read_fixed - prepare sqe to read len bytes of fd at
 * offset into buf, through a fixed buffer from rc (whose device is a
 * struct uhmm_uring_dev on the ring that sqe belongs to). The region that
 * covers [buf, buf + len) is returned in *regionp, held: put it with
 * uhmm_rcache_put() once the request has completed, not before.
 * sqe is left untouched on error; it still belongs to the caller then
 * (prepare it as a NOP, or something else, before submitting).
 * Returns 0, or an error of uhmm_rcache_get() (-EINVAL for a NULL rc,
 * buf or regionp or a zero len; -ENOMEM, -ENOSPC, -EFAULT, ...), or
 * -EINVAL for a NULL sqe.
 */
UHMM_API int uhmm_uring_prep_read_fixed(struct uhmm_rcache *rc,
					struct io_uring_sqe *sqe, int fd,
					void *buf, unsigned int len,
					uint64_t offset,
					struct uhmm_region **regionp);

/*
 * uhmm_uring_prep_write_fixed - the same for writing len bytes of buf to
 * fd at offset (WRITE_FIXED: the device reads the memory).
 */
UHMM_API int uhmm_uring_prep_write_fixed(struct uhmm_rcache *rc,
					 struct io_uring_sqe *sqe, int fd,
					 const void *buf, unsigned int len,
					 uint64_t offset,
					 struct uhmm_region **regionp);

/*
 * uhmm_uring_read_fixed_sync - read through a fixed buffer and wait:
 * get the region, submit one READ_FIXED on ring, wait for its completion,
 * put the region. For tests, examples and simple programs: the ring must
 * not be shared with another submitter while this runs, and must have no
 * other request in flight (the first completion is taken as this one's).
 * Returns the bytes read (the completion's res), or a negative errno:
 *   -EINVAL  ring is NULL
 *   -EBUSY   the submission queue is full
 *   an error of uhmm_uring_prep_read_fixed(), of io_uring_submit(), or
 *   of the read itself.
 * If submitting fails, the request may still be issued later, so its
 * region is deliberately left held (leaked) rather than released under it.
 */
UHMM_API int uhmm_uring_read_fixed_sync(struct uhmm_rcache *rc,
					struct io_uring *ring, int fd,
					void *buf, unsigned int len,
					uint64_t offset);

/* uhmm_uring_write_fixed_sync - the same for WRITE_FIXED; returns the
 * bytes written or a negative errno. */
UHMM_API int uhmm_uring_write_fixed_sync(struct uhmm_rcache *rc,
					 struct io_uring *ring, int fd,
					 const void *buf, unsigned int len,
					 uint64_t offset);

#ifdef __cplusplus
}
#endif

#endif /* UHMM_URING_H */
