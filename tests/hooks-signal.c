/* SPDX-License-Identifier: MIT */
/*
 * libuhmm_hooks under signals: a signal handler calls munmap() (hooked)
 * at random points of the hooked calls the thread is making itself -
 * munmap, madvise(MADV_DONTNEED), mprotect and mmap(MAP_FIXED) over
 * subscribed memory - and so at times while that thread holds uhmm's
 * locks or has windows open. Nothing may deadlock (ctest's timeout is the
 * guard), and every change must reach its subscription exactly as often
 * as it happened: each victim page the handler unmaps gets one UNMAP, each
 * page of the main loop one callback per call.
 *
 * A helper thread sends SIGUSR1 to the main thread every few
 * microseconds; the handler unmaps the victim page the main thread left
 * for it, if any (one at a time, handed over with an atomic exchange).
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "events.h"

#define ITERS 20000		/* at scale 1 */

struct page {
	struct uhmm_interval_notifier n;
	char *addr;
	int calls;		/* atomic: handler or main thread */
	int unmaps;		/* atomic */
};

static bool cb(struct uhmm_interval_notifier *n,
	       const struct uhmm_notifier_range *range, unsigned long seq)
{
	struct page *p = (struct page *)n;	/* its first member */

	uhmm_interval_set_seq(n, seq);
	__atomic_fetch_add(&p->calls, 1, __ATOMIC_RELAXED);
	if (range->event == UHMM_EVENT_UNMAP)
		__atomic_fetch_add(&p->unmaps, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct uhmm_interval_notifier_ops ops = { .invalidate = cb };

static struct page *victim;	/* atomic: left for the handler */
static long handled;		/* atomic */
static int stop;		/* atomic */
static pthread_t main_thread;

static void on_signal(int sig)
{
	struct page *v = __atomic_exchange_n(&victim, NULL, __ATOMIC_ACQ_REL);
	int saved = errno;

	(void)sig;
	if (v) {
		if (munmap(v->addr, t_page))
			abort();
		__atomic_fetch_add(&handled, 1, __ATOMIC_RELAXED);
	}
	errno = saved;
}

static void *kicker(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		pthread_kill(main_thread, SIGUSR1);
		nanosleep(&(struct timespec){ 0, 20000 }, NULL);
	}
	return NULL;
}

/*
 * Each page has its own slot in an arena of PROT_NONE guards, so that no
 * page ever takes another's address: a subscription still inserted over
 * a reused address would (rightly) hear the new page's changes too. Should
 * another mapping take a slot's hole in the instant it is empty, the
 * arena moves.
 */
enum { SLOT_VICTIM0, SLOT_VICTIM1, SLOT_MAIN, NSLOT };
static char *arena;
static bool slot_used[NSLOT];

static void arena_new(void)
{
	memset(slot_used, 0, sizeof(slot_used));
	arena = mmap(NULL, 2 * NSLOT * t_page, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(arena != MAP_FAILED);
}

static void page_init(struct uhmm_mm *mm, struct page *p, int slot)
{
	memset(p, 0, sizeof(*p));
	for (;;) {
		char *want = arena + 2 * slot * t_page;
		/* Over the arena's PROT_NONE the first time, into the hole
		 * the last munmap() left after. */
		int fixed = slot_used[slot] ? MAP_FIXED_NOREPLACE : MAP_FIXED;

		p->addr = mmap(want, t_page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | fixed, -1, 0);
		if (p->addr == want)
			break;
		REQUIRE(p->addr == MAP_FAILED && errno == EEXIST);
		arena_new();
	}
	slot_used[slot] = true;
	p->addr[0] = 1;
	REQUIRE(uhmm_interval_notifier_insert(&p->n, mm,
					      (unsigned long)p->addr, t_page,
					      &ops) == 0);
	/*
	 * As a device would before using it. An insert while another
	 * thread's window is open (the dispatcher's, for a victim the
	 * handler unmapped with a raw call) is deferred and collides
	 * instead: windows opened before read_begin() returns need not call
	 * it (invariant 4, as the kernel's deferred inserts).
	 */
	(void)uhmm_interval_read_begin(&p->n);
}

int main(void)
{
	long iters = (long)(ITERS * t_scale()), wrong = 0, victims = 0;
	struct sigaction sa = { .sa_handler = on_signal };
	static struct page vp[2];
	struct uhmm_mm *mm;
	pthread_t thread;

	main_thread = pthread_self();
	mm = t_open();
	arena_new();
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
	REQUIRE(pthread_create(&thread, NULL, kicker, NULL) == 0);

	for (long i = 0; i < iters; i++) {
		struct page *v = &vp[i % 2], p;
		int expect = 0, unmaps = 0;
		void *q;

		/* A victim for the handler, unless the last is still there
		 * (then it is taken back and unmapped here). */
		page_init(mm, v, SLOT_VICTIM0 + (int)(i % 2));
		__atomic_store_n(&victim, v, __ATOMIC_RELEASE);

		page_init(mm, &p, SLOT_MAIN);
		switch (i % 4) {
		case 0:
			REQUIRE(madvise(p.addr, t_page, MADV_DONTNEED) == 0);
			expect = 1;
			break;
		case 1:
			REQUIRE(mprotect(p.addr, t_page, PROT_READ) == 0);
			expect = 1;
			break;
		case 2:
			q = mmap(p.addr, t_page, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
				 0);
			REQUIRE(q == p.addr);
			expect = 1, unmaps = 1;
			break;
		}
		REQUIRE(munmap(p.addr, t_page) == 0);
		expect++, unmaps++;
		REQUIRE(uhmm_mm_sync(mm) == 0);
		if (__atomic_load_n(&p.calls, __ATOMIC_RELAXED) != expect ||
		    __atomic_load_n(&p.unmaps, __ATOMIC_RELAXED) != unmaps) {
			if (wrong++ < 5)
				fprintf(stderr, "iteration %ld: %d callbacks, "
					"%d unmaps; wanted %d, %d\n", i,
					p.calls, p.unmaps, expect, unmaps);
		}
		REQUIRE(uhmm_interval_notifier_remove(&p.n) == 0);

		/* The victim: unmapped by the handler, or here. */
		if (__atomic_exchange_n(&victim, NULL, __ATOMIC_ACQ_REL))
			REQUIRE(munmap(v->addr, t_page) == 0);
		else
			victims++;
		REQUIRE(uhmm_mm_sync(mm) == 0);
		if (__atomic_load_n(&v->unmaps, __ATOMIC_RELAXED) != 1 &&
		    wrong++ < 5)
			fprintf(stderr, "iteration %ld: victim had %d "
				"unmaps\n", i, v->unmaps);
		REQUIRE(uhmm_interval_notifier_remove(&v->n) == 0);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(thread, NULL) == 0);

	printf("%ld iterations, %ld victims unmapped by the signal handler "
	       "(%ld handled), %ld wrong\n", iters, victims,
	       __atomic_load_n(&handled, __ATOMIC_RELAXED), wrong);
	CHECK_EQ(wrong, 0);
	CHECK(victims > 0);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	return t_result();
}
