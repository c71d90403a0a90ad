/* SPDX-License-Identifier: MIT */
/*
 * notifier.c - the core of uhmm: an interval notifier over a buffer that a
 * "device" mirrors, and the driver loop that builds the mirror.
 *
 * The device here is a struct mirror that remembers what it read from the
 * buffer (a real one would pin pages, or program an IOMMU). Its
 * invalidate callback forgets the translation; the driver loop commits a
 * translation only if no invalidation collided with building it
 * (read_begin -> build -> lock -> read_retry -> commit). Then part of the
 * buffer is unmapped with a plain munmap(), and the next read_begin() sees
 * the invalidation: uhmm heard it from the kernel (userfaultfd), not from
 * a hook in munmap().
 *
 * Build: cc $(pkg-config --cflags uhmm) notifier.c $(pkg-config --libs uhmm)
 * Exit status: 0 if the munmap() was seen as an UHMM_EVENT_UNMAP over the
 * unmapped page before the next read_begin() returned, 1 if not (or on an
 * error), 77 if this machine forbids userfaultfd (`uhmm probe` says why).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uhmm.h>

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

struct mirror {
	struct uhmm_interval_notifier sub;	/* embedded: uhmm's */
	pthread_mutex_t lock;	/* orders commit against zap */
	/* The translation, valid for [start, end) while valid is true. */
	unsigned long start, end;
	bool valid;
	char first_byte;	/* what the "device" read */
	/* What the callback saw, for main() to check. */
	unsigned int invalidations;
	enum uhmm_event last_event;
	unsigned long last_start, last_end;
};

/*
 * Runs on uhmm's dispatcher thread for a kernel event, or in the thread
 * that calls uhmm_munmap() and friends. The lock is the device's own; the
 * same lock is taken around read_retry() and the commit.
 */
static bool mirror_invalidate(struct uhmm_interval_notifier *sub,
			      const struct uhmm_notifier_range *range,
			      unsigned long cur_seq)
{
	struct mirror *m = container_of(sub, struct mirror, sub);

	/* A non-blockable window (uhmm_munmap() in another thread, which
	 * may hold our lock) must not sleep: say "not now" instead. */
	if (uhmm_range_blockable(range))
		pthread_mutex_lock(&m->lock);
	else if (pthread_mutex_trylock(&m->lock))
		return false;
	uhmm_interval_set_seq(sub, cur_seq);
	m->valid = false;	/* zap: the device forgets the translation */
	m->invalidations++;
	m->last_event = range->event;
	m->last_start = range->start;
	m->last_end = range->end;
	pthread_mutex_unlock(&m->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops mirror_ops = {
	.invalidate = mirror_invalidate,
};

/* The driver loop: no translation is committed after a zap. */
static void mirror_build(struct mirror *m)
{
	unsigned long seq;
	char byte;

again:
	seq = uhmm_interval_read_begin(&m->sub);
	/* Build the translation without the lock: this may take long, and
	 * an invalidation may run meanwhile. */
	byte = *(volatile char *)m->start;
	pthread_mutex_lock(&m->lock);
	if (uhmm_interval_read_retry(&m->sub, seq)) {
		pthread_mutex_unlock(&m->lock);
		goto again;
	}
	m->first_byte = byte;
	m->valid = true;
	pthread_mutex_unlock(&m->lock);
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = 4 * (size_t)page;
	struct mirror m = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uhmm_mm *mm;
	unsigned long gone;
	bool seen;
	char *buf;
	int ret;

	ret = uhmm_mm_open(&mm, 0);	/* 0: kernel events (userfaultfd) */
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		fprintf(stderr, "userfaultfd unavailable here (%s); see "
				"`uhmm probe`\n", strerror(-ret));
		return 77;
	}
	if (ret) {
		fprintf(stderr, "uhmm_mm_open: %s\n", strerror(-ret));
		return 1;
	}
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(buf, 'x', len);
	m.start = (unsigned long)buf;
	m.end = m.start + len;
	ret = uhmm_interval_notifier_insert(&m.sub, mm, m.start, len,
					    &mirror_ops);
	if (ret) {
		fprintf(stderr, "uhmm_interval_notifier_insert: %s\n",
			strerror(-ret));
		return 1;
	}
	mirror_build(&m);
	printf("mirrored [%#lx, %#lx): %s\n", m.start, m.end,
	       m.valid ? "valid" : "not valid");

	/*
	 * A plain munmap() of the second page. Once it has returned, a
	 * read_begin() that starts afterwards, in any thread, waits until
	 * the invalidation has been delivered: no sleep, no sync needed.
	 */
	gone = m.start + (unsigned long)page;
	if (munmap((void *)gone, (size_t)page)) {
		perror("munmap");
		return 1;
	}
	(void)uhmm_interval_read_begin(&m.sub);
	pthread_mutex_lock(&m.lock);
	seen = !m.valid && m.invalidations == 1 &&
	       m.last_event == UHMM_EVENT_UNMAP && m.last_start <= gone &&
	       m.last_end >= gone + (unsigned long)page;
	printf("after munmap of %#lx: %u invalidation(s), event %d over "
	       "[%#lx, %#lx), mirror %s\n", gone, m.invalidations,
	       (int)m.last_event, m.last_start, m.last_end,
	       m.valid ? "still valid (STALE)" : "zapped");
	pthread_mutex_unlock(&m.lock);

	/* remove waits for a callback that may be running: after it, m is
	 * ours again. */
	uhmm_interval_notifier_remove(&m.sub);
	uhmm_mm_close(mm);
	munmap(buf, len);
	printf("%s\n", seen ? "PASS: the unmap was seen before the next read"
			    : "FAIL: the unmap was not seen");
	return seen ? 0 : 1;
}
