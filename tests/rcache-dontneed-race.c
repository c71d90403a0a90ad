/* SPDX-License-Identifier: MIT */
/*
 * MADV_DONTNEED racing a registration: the kernel reads the REMOVE event
 * *before* it zaps the pages, so a get in another thread between the read
 * and the zap can pin the very pages the zap then discards.
 *
 * The main thread discards its buffer, writes it and reads a file into it
 * through the cache (READ_FIXED), as an application reusing a buffer
 * does; a second thread keeps getting and putting the same buffer. Every
 * read must land in the pages the application sees. With the REMOVE
 * window closed at dispatch (UHMM_REMOVE_GRACE_US=0) hundreds of reads in
 * 20000 land in discarded pages; uhmm keeps the window open until the zap.
 */
#define T_RC_URING
#include "rcache.h"

#define PAGES 4
#define ITERATIONS 20000

static struct uhmm_rcache *rc;
static char *buf;
static size_t len;
static int stop;		/* atomic */
static unsigned long gets;	/* getter thread only */

static void *getter(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		struct uhmm_region *r;

		if (uhmm_rcache_get(rc, buf, len,
				    UHMM_ACCESS_READ | UHMM_ACCESS_WRITE,
				    &r) == 0) {
			CHECK_EQ(uhmm_rcache_put(rc, r), 0);
			gets++;
		}
	}
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	int n = (int)(ITERATIONS * t_scale()), stale = 0, failed = 0, fd;
	struct uhmm_rcache_config cfg = { .max_regions = 8 };
	struct uhmm_uring_dev *dev;
	struct uhmm_rcache_stats st;
	struct io_uring ring;
	pthread_t th;

	len = PAGES * t_page;
	t_ring(&ring, 8);
	dev = t_uring_dev(&ring, 64);
	REQUIRE(uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev,
				   &cfg) == 0);
	fd = t_data_file(len, 1);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(buf != MAP_FAILED);
	memset(buf, 1, len);
	REQUIRE(pthread_create(&th, NULL, getter, NULL) == 0);

	for (int i = 0; i < n; i++) {
		REQUIRE(madvise(buf, len, MADV_DONTNEED) == 0);
		memset(buf, 0xee, len);
		int ret = uhmm_uring_read_fixed_sync(rc, &ring, fd, buf,
						     (unsigned int)len, 0);

		if (ret != (int)len) {
			if (!failed++)
				fprintf(stderr, "read: %d (%s)\n", ret,
					ret < 0 ? strerror(-ret) : "short");
		}
		if (ret == (int)len && !t_holds(buf, 0, len, 1))
			stale++;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);

	st = t_rc_stats(rc);
	printf("%d discards, %d reads landed in discarded pages, %d failed; "
	       "the other thread got the buffer %lu times (%lu misses, %lu "
	       "invalidations); REMOVE windows closed on the zap %lu, at "
	       "the grace period %lu\n",
	       n, stale, failed, gets, st.misses, st.invalidations,
	       uffd_of(mm->source)->removes_zapped,
	       uffd_of(mm->source)->removes_expired);
	CHECK_EQ(stale, 0);
	CHECK_EQ(failed, 0);

	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(uhmm_uring_dev_close(dev), 0);
	io_uring_queue_exit(&ring);
	munmap(buf, len);
	close(fd);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
