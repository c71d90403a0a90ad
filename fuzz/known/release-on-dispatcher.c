/*
 * Probe (not built by CMake): the dispatcher runs the RELEASE of an mm while
 * the application holds a window open on it, and then every wait for the
 * dispatcher hangs. See fuzz/README.md, "Known, not fixed".
 *
 *   clang -D_GNU_SOURCE -pthread -Iinclude -Isrc $(the library's src/ .c
 *     files) fuzz/known/release-on-dispatcher.c -luring -o /tmp/probe
 *   timeout 120 /tmp/probe      # prints HANG within a few iterations
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "uhmm.h"

static bool cb(struct uhmm_interval_notifier *s, const struct uhmm_notifier_range *r, unsigned long q)
{ (void)r; uhmm_interval_set_seq(s, q); return true; }
static const struct uhmm_interval_notifier_ops ops = { cb };
static char *ra;
static volatile int stop;
static void *churn(void *a)
{
	(void)a;
	while (!stop)
		madvise(ra, 4096, MADV_DONTNEED);	/* REMOVE windows hold user refs */
	return NULL;
}
static void alarm_h(int s) { (void)s; static const char m[] = "HANG: uhmm_mm_sync(B) never returned while holding a window on A\n"; write(2, m, sizeof(m) - 1); _exit(3); }

int main(void)
{
	struct uhmm_mm *b;
	struct uhmm_interval_notifier sb = {0};
	pthread_t t;
	char *rb = mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);

	ra = mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	if (uhmm_mm_open(&b, 0) || uhmm_interval_notifier_insert(&sb, b, (unsigned long)rb, 4096, &ops))
		return 2;
	pthread_create(&t, NULL, churn, NULL);
	signal(SIGALRM, alarm_h);
	for (int i = 0; i < 20000; i++) {
		struct uhmm_mm *a;
		struct uhmm_interval_notifier sa = {0};
		struct uhmm_notifier_range r = { .start = 0x1000, .end = 0x2000,
			.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
		int ret;

		if (uhmm_mm_open(&a, 0) || uhmm_interval_notifier_insert(&sa, a, (unsigned long)ra, 4096, &ops))
			return 2;
		uhmm_mm_close(a);	/* our last reference */
		ret = uhmm_mm_invalidate_start(a, &r);
		if (ret == 0) {
			/* The dispatcher still held a user: the release is its. */
			alarm(5);
			uhmm_mm_sync(b);
			alarm(0);
			uhmm_mm_invalidate_end(a, &r);
			printf("iteration %d: window opened after close, sync returned\n", i);
		}
		uhmm_interval_notifier_remove(&sa);
	}
	stop = 1;
	pthread_join(t, NULL);
	printf("no hang\n");
	return 0;
}
