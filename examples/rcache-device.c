/* SPDX-License-Identifier: MIT */
/*
 * rcache-device.c - a registration cache over a device of your own.
 *
 * A runtime registers buffers with its device (an RDMA NIC, a DMA engine)
 * and wants to reuse registrations: struct uhmm_rcache does the caching,
 * and forgets a registration as soon as the memory under it changes. All
 * the device provides is struct uhmm_rcache_ops: reg and dereg.
 *
 * The device here is a table of registrations, with a lock because reg and
 * dereg may run at once on several threads (the cache deregisters on its
 * own worker thread). A real reg pins the pages; this one only checks that
 * the range is mapped, as a pin would.
 *
 * Shown: a second get of the same buffer is a hit (no reg); after the
 * buffer is replaced by mmap(MAP_FIXED) - the same address, new pages - the
 * next get registers again with a new handle; at destroy every
 * registration has been undone.
 *
 * Build: cc $(pkg-config --cflags uhmm) rcache-device.c \
 *		$(pkg-config --libs uhmm)
 * Exit status: 0 if all of that held, 1 if not (or on an error), 77 if
 * this machine forbids userfaultfd (`uhmm probe` says why).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uhmm.h>

#define SLOTS 16

struct my_device {
	pthread_mutex_t lock;	/* reg and dereg run concurrently */
	struct {
		void *addr;
		size_t len;
		bool used;
	} slot[SLOTS];
	unsigned int regs, deregs;	/* calls, for main() to check */
};

static int my_reg(void *dev, void *addr, size_t len, unsigned int access,
		  uint64_t *handle)
{
	struct my_device *d = dev;
	int ret = -ENOSPC;

	(void)access;	/* a real device would set its permissions */
	/* msync() fails with ENOMEM on a hole: a pin would fail there too. */
	if (msync(addr, len, MS_ASYNC))
		return -EFAULT;
	pthread_mutex_lock(&d->lock);
	for (unsigned int i = 0; i < SLOTS; i++) {
		if (d->slot[i].used)
			continue;
		d->slot[i].addr = addr;
		d->slot[i].len = len;
		d->slot[i].used = true;
		d->regs++;
		*handle = i;
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static void my_dereg(void *dev, uint64_t handle)
{
	struct my_device *d = dev;

	pthread_mutex_lock(&d->lock);
	d->slot[handle].used = false;
	d->deregs++;
	pthread_mutex_unlock(&d->lock);
}

static const struct uhmm_rcache_ops my_ops = {
	.reg = my_reg,
	.dereg = my_dereg,
};

int main(void)
{
	struct my_device dev = { .lock = PTHREAD_MUTEX_INITIALIZER };
	size_t len = 4 * (size_t)sysconf(_SC_PAGESIZE);
	struct uhmm_region *r1, *r2, *r3;
	struct uhmm_rcache_stats st;
	struct uhmm_rcache *rc;
	struct uhmm_mm *mm;
	bool ok = true;
	char *buf;
	int ret;

	ret = uhmm_mm_open(&mm, 0);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		fprintf(stderr, "userfaultfd unavailable here (%s); see "
				"`uhmm probe`\n", strerror(-ret));
		return 77;
	}
	if (ret || (ret = uhmm_rcache_create(&rc, mm, &my_ops, &dev, NULL))) {
		fprintf(stderr, "uhmm: %s\n", strerror(-ret));
		return 1;
	}
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}

	/* A miss registers; a second get of the same buffer is a hit. */
	if ((ret = uhmm_rcache_get(rc, buf, len, UHMM_ACCESS_READ, &r1)) ||
	    (ret = uhmm_rcache_get(rc, buf, len, UHMM_ACCESS_READ, &r2))) {
		fprintf(stderr, "uhmm_rcache_get: %s\n", strerror(-ret));
		return 1;
	}
	printf("two gets: handles %llu and %llu, %u reg call(s)\n",
	       (unsigned long long)r1->handle,
	       (unsigned long long)r2->handle, dev.regs);
	ok &= r1->handle == r2->handle && dev.regs == 1;
	/* Put what each get returned: each CPU may have its own copy. */
	uhmm_rcache_put(rc, r1);
	uhmm_rcache_put(rc, r2);

	/* New pages at the same address: the registration is stale. */
	if (mmap(buf, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != buf) {
		perror("mmap(MAP_FIXED)");
		return 1;
	}
	ret = uhmm_rcache_get(rc, buf, len, UHMM_ACCESS_READ, &r3);
	if (ret) {
		fprintf(stderr, "uhmm_rcache_get: %s\n", strerror(-ret));
		return 1;
	}
	printf("after mmap(MAP_FIXED) over it: handle %llu, %u reg call(s)\n",
	       (unsigned long long)r3->handle, dev.regs);
	/* Count regs rather than compare handles: the old slot may be free
	 * (deregistered by the worker) and reused already. */
	ok &= dev.regs == 2;
	uhmm_rcache_put(rc, r3);

	uhmm_rcache_stats(rc, &st);
	printf("stats: %lu hit(s), %lu miss(es), %lu invalidation(s)\n",
	       st.hits, st.misses, st.invalidations);
	ok &= st.misses == 2 && st.invalidations == 1;

	/* destroy deregisters the rest: the device ends empty. */
	ret = uhmm_rcache_destroy(rc);
	printf("destroy: %d; %u reg(s), %u dereg(s)\n", ret, dev.regs,
	       dev.deregs);
	ok &= ret == 0 && dev.regs == dev.deregs;
	uhmm_mm_close(mm);
	munmap(buf, len);
	printf("%s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
