/* SPDX-License-Identifier: MIT */
/*
 * uhmm_interval_notifier_insert_flags(UHMM_INSERT_REQUIRE_MAPPED): a
 * subscription that is inserted covers memory whose every later change
 * invalidates it; one over a hole is never inserted (uhmm.h).
 *
 * A cache that registers memory first and subscribes afterwards
 * (libfabric's MR cache) must learn that the memory went away in
 * between. Without the flag it cannot:
 *
 *  1. Control: a plain insert over a hole succeeds, and the mapping
 *     later created in the hole, then unmapped, never calls the
 *     subscription (0 callbacks, 0 events after uhmm_mm_sync()).
 *  2. With the flag: -EFAULT for a hole at the start, in the middle, at
 *     the end, a range that runs past its mapping, and the same hole as
 *     in 1; 0 for a range over six mappings of different kinds
 *     (read-write, read-only, PROT_NONE - a mapping too -, a memfd
 *     MAP_SHARED, a read-only private file mapping), whose munmap()
 *     then reaches the subscription.
 *  3. A refused insert leaves nothing armed: the mapped part of the
 *     range (a whole mapping, or a piece of a bigger one that uhmm
 *     remembers as registered) is no longer registered with uhmm's
 *     userfaultfd, and its munmap() sends no event, calls nothing and
 *     does not wait.
 *  4. Bad input: -EINVAL for unknown flags, -EOPNOTSUPP on a
 *     UHMM_MM_NO_MONITOR mm (flags 0 still inserts there).
 *  5. A window already open over the range before the insert: 0, and
 *     the subscription starts out colliding.
 *  6. An unmap whose event is read but still being dispatched (another
 *     subscription's callback holds the dispatcher): munmap() has
 *     returned, so the page is a hole, and the insert must say -EFAULT -
 *     for a one-page mapping, and for a page of a bigger mapping that
 *     uhmm remembers as registered (src/source/uffd.c, "Known
 *     mappings"; t_map(1) may be such a page too, when the kernel
 *     merges it with a neighbour). If the insert said 0, the
 *     subscription would be over a hole and never called: checked
 *     after the dispatch.
 *  7. Race: another thread munmaps the page at a random moment around
 *     the insert (each side spins a random count first; the insert's
 *     spin follows the outcomes, so that it stays on the boundary where
 *     the unmap lands during the insert). Once it has
 *     returned and uhmm_mm_sync() too: an insert that said 0 must have
 *     had its callback run (the page was mapped at the check and is
 *     gone now); -EFAULT and -EAGAIN must have inserted nothing.
 *     Alone, and as a page of a bigger mapping. Outcomes are printed.
 *  8. Race: explicit windows over the range, opening and closing in
 *     another thread while the insert checks a mapped range: 0 or
 *     -EAGAIN, never -EFAULT, and -EAGAIN inserted nothing.
 */
#include <sched.h>
#include <semaphore.h>

#include "events.h"

#define RACE_ROUNDS 600
#define WINDOW_ROUNDS 3000
#define SPIN_MAX 30000

static int insert_rm(struct t_dev *dev, struct uhmm_mm *mm, const void *p,
		     unsigned long len)
{
	return t_dev_insert_flags(dev, mm, (unsigned long)p, len,
				  UHMM_INSERT_REQUIRE_MAPPED);
}

/* n pages, the ones marked '.' in layout unmapped: "x.x" */
static char *map_layout(const char *layout)
{
	size_t n = strlen(layout);
	char *p = t_map(n);

	for (size_t i = 0; i < n; i++)
		if (layout[i] == '.')
			REQUIRE(munmap(p + i * t_page, t_page) == 0);
	return p;
}

/* No event since the count was before: sync, compare. */
static void check_no_event(struct uhmm_mm *mm, unsigned long before,
			   int line)
{
	REQUIRE(uhmm_mm_sync(mm) == 0);
	if (t_events(mm) != before) {
		fprintf(stderr, "line %d: %lu events, expected none\n", line,
			t_events(mm) - before);
		t_failed = 1;
	}
}

/* ---- 1 and 2 ---- */

static void control_and_flag(struct uhmm_mm *mm)
{
	struct t_dev plain = { 0 }, d = { 0 };
	unsigned long before;
	char *p = map_layout("x.x"), *q;

	/* 1. Plain: inserted over the hole, deaf to what comes there. */
	REQUIRE(t_dev_insert(&plain, mm, (unsigned long)(p + t_page),
			     t_page) == 0);
	q = mmap(p + t_page, t_page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	REQUIRE(q == p + t_page);
	q[0] = 1;
	before = t_events(mm);
	REQUIRE(munmap(q, t_page) == 0);
	check_no_event(mm, before, __LINE__);
	CHECK_EQ(t_dev_calls(&plain), 0);
	printf("control: a plain insert over a hole said 0; the mapping made "
	       "there later went away with %d callbacks\n",
	       t_dev_calls(&plain));
	REQUIRE(uhmm_interval_notifier_remove(&plain.sub) == 0);

	/* 2. With the flag: the same hole, and holes anywhere. */
	CHECK_EQ(insert_rm(&d, mm, p + t_page, t_page), -EFAULT);
	CHECK_EQ(insert_rm(&d, mm, p, 3 * t_page), -EFAULT);	   /* middle */
	CHECK_EQ(insert_rm(&d, mm, p + t_page, 2 * t_page), -EFAULT); /* start */
	CHECK_EQ(insert_rm(&d, mm, p, 2 * t_page), -EFAULT);	   /* end */
	CHECK_EQ(t_registered(p), 0);
	CHECK_EQ(t_registered(p + 2 * t_page), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), -ENOENT);
	/* Mapped pages alone: accepted. */
	CHECK_EQ(insert_rm(&d, mm, p, t_page), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), 0);
	REQUIRE(munmap(p, 3 * t_page) == 0);

	/* Past the end of a mapping (a reservation keeps the next page a
	 * hole nobody maps). */
	p = map_layout("xx.");
	CHECK_EQ(insert_rm(&d, mm, p, 3 * t_page), -EFAULT);
	CHECK_EQ(insert_rm(&d, mm, p + t_page, 2 * t_page), -EFAULT);
	CHECK_EQ(t_registered(p), 0);
	REQUIRE(munmap(p, 2 * t_page) == 0);
}

static void several_mappings(struct uhmm_mm *mm)
{
	char path[] = "/tmp/uhmm-insert-require-mapped-XXXXXX";
	int fd = mkstemp(path), mfd = memfd_create("uhmm-test", 0);
	unsigned long a;
	struct t_log l;
	char *p;

	REQUIRE(fd >= 0 && mfd >= 0);
	unlink(path);
	REQUIRE(ftruncate(fd, t_page) == 0);
	REQUIRE(ftruncate(mfd, t_page) == 0);
	/* rw anon | r anon | none anon | memfd shared | r file private | rw */
	p = t_map(6);
	a = (unsigned long)p;
	REQUIRE(mprotect(p + t_page, t_page, PROT_READ) == 0);
	REQUIRE(mprotect(p + 2 * t_page, t_page, PROT_NONE) == 0);
	REQUIRE(mmap(p + 3 * t_page, t_page, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_FIXED, mfd, 0) == p + 3 * t_page);
	REQUIRE(mmap(p + 4 * t_page, t_page, PROT_READ,
		     MAP_PRIVATE | MAP_FIXED, fd, 0) == p + 4 * t_page);
	REQUIRE(mmap(p + 5 * t_page, t_page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
		     0) == p + 5 * t_page);
	memset(&l, 0, sizeof(l));
	l.dev.hook = t_log_hook;
	CHECK_EQ(insert_rm(&l.dev, mm, (void *)a, 6 * t_page), 0);
	if (t_failed)
		return;
	/* Inserted: each piece's unmap reaches it. */
	REQUIRE(munmap(p + 3 * t_page, t_page) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 3 * t_page, a + 4 * t_page));
	REQUIRE(munmap(p + 4 * t_page, t_page) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 4 * t_page, a + 5 * t_page));
	REQUIRE(munmap(p + t_page, 2 * t_page) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + t_page, a + 3 * t_page));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(munmap(p, 6 * t_page) == 0);
	close(fd);
	close(mfd);
	printf("six mappings of five kinds: inserted, and heard\n");
}

/* ---- 3 ---- */

static void refused_leaves_nothing(struct uhmm_mm *mm)
{
	struct t_dev d = { 0 };
	unsigned long before;
	char *p;

	/* A whole one-page mapping, then a hole. */
	p = map_layout("x.");
	CHECK_EQ(insert_rm(&d, mm, p, 2 * t_page), -EFAULT);
	CHECK_EQ(t_registered(p), 0);
	before = t_events(mm);
	REQUIRE(munmap(p, t_page) == 0);
	check_no_event(mm, before, __LINE__);
	CHECK_EQ(t_dev_calls(&d), 0);

	/* The last pages of a bigger mapping, then a hole: the mapping is
	 * registered whole, and remembered (wider than the range). */
	p = map_layout("xxxxxxxx.");
	CHECK_EQ(insert_rm(&d, mm, p + 6 * t_page, 3 * t_page), -EFAULT);
	CHECK_EQ(t_registered(p), 0);
	CHECK_EQ(t_registered(p + 7 * t_page), 0);
	before = t_events(mm);
	REQUIRE(munmap(p + 6 * t_page, t_page) == 0);
	REQUIRE(munmap(p, 8 * t_page) == 0);
	check_no_event(mm, before, __LINE__);
	CHECK_EQ(t_dev_calls(&d), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), -ENOENT);
}

/* ---- 4 and 5 ---- */

static void bad_input_and_open_window(struct uhmm_mm *mm)
{
	struct uhmm_notifier_range w = { .event = UHMM_EVENT_UNMAP,
					 .flags = UHMM_RANGE_BLOCKABLE };
	struct t_dev d = { 0 }, other = { 0 };
	struct uhmm_mm *explicit_mm;
	unsigned long seq;
	char *p = t_map(1), *o = t_map(1);

	pthread_mutex_init(&d.lock, NULL);
	CHECK_EQ(uhmm_interval_notifier_insert_flags(&d.sub, mm,
		(unsigned long)p, t_page, &t_dev_ops, 1u << 1), -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_insert_flags(&d.sub, mm,
		(unsigned long)p, t_page, &t_dev_ops, ~0u), -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_insert_flags(NULL, mm,
		(unsigned long)p, t_page, &t_dev_ops,
		UHMM_INSERT_REQUIRE_MAPPED), -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_insert_flags(&d.sub, mm,
		(unsigned long)p, 0, &t_dev_ops,
		UHMM_INSERT_REQUIRE_MAPPED), -EOVERFLOW);
	CHECK_EQ(t_registered(p), 0);
	REQUIRE(uhmm_mm_open(&explicit_mm, UHMM_MM_NO_MONITOR) == 0);
	CHECK_EQ(insert_rm(&d, explicit_mm, p, t_page), -EOPNOTSUPP);
	CHECK_EQ(uhmm_interval_notifier_insert_flags(&d.sub, explicit_mm,
		(unsigned long)p, t_page, &t_dev_ops, 0), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), 0);
	REQUIRE(uhmm_mm_close(explicit_mm) == 0);

	/* 5. A window over p (and other, so that it collides) already
	 * open: the check sees p mapped, and the insert starts out
	 * colliding, like any insert during a window. */
	REQUIRE(t_dev_insert(&other, mm, (unsigned long)o, t_page) == 0);
	w.start = (unsigned long)(p < o ? p : o);
	w.end = (unsigned long)(p < o ? o : p) + t_page;
	REQUIRE(uhmm_mm_invalidate_start(mm, &w) == 0);
	CHECK_EQ(insert_rm(&d, mm, p, t_page), 0);
	CHECK_EQ(uhmm_interval_read_try_begin(&d.sub, &seq), -EAGAIN);
	REQUIRE(uhmm_mm_invalidate_end(mm, &w) == 0);
	CHECK_EQ(uhmm_interval_read_try_begin(&d.sub, &seq), 0);
	CHECK_EQ(t_dev_calls(&d), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), 0);
	REQUIRE(uhmm_interval_notifier_remove(&other.sub) == 0);
	REQUIRE(munmap(p, t_page) == 0);
	REQUIRE(munmap(o, t_page) == 0);
}

/* ---- 6 ---- */

static sem_t blocked, let_go;

static bool hold_dispatcher(struct t_dev *dev,
			    const struct uhmm_notifier_range *r)
{
	(void)dev;
	if (r->event == UHMM_EVENT_UNMAP) {
		sem_post(&blocked);
		sem_wait(&let_go);
	}
	return true;
}

static void unmap_being_dispatched(struct uhmm_mm *mm, bool bigger)
{
	struct t_dev owner = { 0 }, holder = { .hook = hold_dispatcher },
		     late = { 0 };
	char *p = t_map(8);
	char *victim = p + 3 * t_page;
	const char *what = bigger ? "a page of a bigger, remembered mapping"
				  : "a one-page mapping";
	int ret;

	/* In a bigger mapping, the first subscription registers it whole
	 * and uhmm remembers it: inserts inside it then make no system
	 * call to arm or check. Alone, the victim is a mapping of its own
	 * (read-only neighbours: the kernel merges it with none). */
	if (bigger) {
		REQUIRE(t_dev_insert(&owner, mm, (unsigned long)p, t_page) ==
			0);
	} else {
		REQUIRE(mprotect(p, 3 * t_page, PROT_READ) == 0);
		REQUIRE(mprotect(p + 4 * t_page, 4 * t_page, PROT_READ) == 0);
	}
	REQUIRE(t_dev_insert(&holder, mm, (unsigned long)victim, t_page) == 0);
	REQUIRE(munmap(victim, t_page) == 0);
	sem_wait(&blocked);

	/* munmap() returned: victim is a hole. */
	ret = insert_rm(&late, mm, victim, t_page);
	sem_post(&let_go);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	printf("insert over %s whose unmap was being dispatched: %d (%s), "
	       "%d callbacks after the dispatch\n", what, ret,
	       strerror(-ret), t_dev_calls(&late));
	if (ret != -EFAULT) {
		fprintf(stderr, "%s: the page was unmapped (munmap() "
			"returned) before the insert, which said %d, not "
			"-EFAULT%s\n", what, ret,
			ret == 0 && t_dev_calls(&late) == 0
				? "; the subscription is over a hole and was "
				  "never called"
				: "");
		t_failed = 1;
	}
	if (ret == 0)
		CHECK_EQ(uhmm_interval_notifier_remove(&late.sub), 0);
	REQUIRE(uhmm_interval_notifier_remove(&holder.sub) == 0);
	if (bigger)
		REQUIRE(uhmm_interval_notifier_remove(&owner.sub) == 0);
	REQUIRE(munmap(p, 8 * t_page) == 0);
}

/* ---- 7 ---- */

struct racer {
	char *page;		/* what to unmap */
	unsigned int spin;	/* before the munmap */
	int ready, go, done;	/* atomic: rounds */
	int stop;		/* atomic */
};

static void spin(unsigned int n)
{
	for (volatile unsigned int i = n; i; i--)
		;
}

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	for (int round = 1;; round++) {
		/* On the CPU when main says go: spin, do not yield. */
		__atomic_store_n(&r->ready, round, __ATOMIC_RELEASE);
		while (__atomic_load_n(&r->go, __ATOMIC_ACQUIRE) != round)
			if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
				return NULL;
		spin(r->spin);
		REQUIRE(munmap(r->page, t_page) == 0);
		__atomic_store_n(&r->done, round, __ATOMIC_RELEASE);
	}
}

static void munmap_race(struct uhmm_mm *mm, bool bigger)
{
	int rounds = (int)(RACE_ROUNDS * t_scale());
	long inserted = 0, efault = 0, eagain = 0;
	struct racer r = { 0 };
	unsigned int seed = 7;
	long center = SPIN_MAX / 2;	/* main's spin, centred on the race */
	pthread_t th;

	REQUIRE(pthread_create(&th, NULL, racer_main, &r) == 0);
	for (int round = 1; round <= rounds; round++) {
		struct t_dev d = { 0 };
		char *p = t_map(bigger ? 4 : 1);
		long main_spin = center + rand_r(&seed) % SPIN_MAX -
				 SPIN_MAX / 2;
		int ret, calls;

		r.page = bigger ? p + t_page : p;
		r.spin = rand_r(&seed) % SPIN_MAX;
		while (__atomic_load_n(&r.ready, __ATOMIC_ACQUIRE) != round)
			sched_yield();
		__atomic_store_n(&r.go, round, __ATOMIC_RELEASE);
		spin(main_spin > 0 ? (unsigned int)main_spin : 0);
		ret = insert_rm(&d, mm, r.page, t_page);
		/* Follow the race: an insert that checked before the unmap
		 * starts later next time, one that came after, earlier. */
		center += ret == 0 ? SPIN_MAX / 16 : -SPIN_MAX / 16;
		if (center < 0)
			center = 0;
		while (__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) != round)
			sched_yield();
		REQUIRE(uhmm_mm_sync(mm) == 0);
		calls = t_dev_calls(&d);
		switch (ret) {
		case 0:
			inserted++;
			if (calls == 0) {
				fprintf(stderr, "round %d: inserted (the page "
					"was mapped at the check), unmapped, "
					"and never called\n", round);
				t_failed = 1;
			}
			CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), 0);
			break;
		case -EFAULT:
		case -EAGAIN:
			*(ret == -EFAULT ? &efault : &eagain) += 1;
			CHECK_EQ(calls, 0);
			CHECK_EQ(uhmm_interval_notifier_remove(&d.sub),
				 -ENOENT);
			break;
		default:
			fprintf(stderr, "round %d: insert said %d\n", round,
				ret);
			t_failed = 1;
		}
		if (bigger) {
			REQUIRE(munmap(p, t_page) == 0);
			REQUIRE(munmap(p + 2 * t_page, 2 * t_page) == 0);
		}
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	printf("munmap race (%s), %d rounds: inserted and then called %ld, "
	       "-EFAULT %ld, -EAGAIN %ld\n",
	       bigger ? "a page of a bigger mapping" : "a one-page mapping",
	       rounds, inserted, efault, eagain);
}

/* ---- 8 ---- */

struct windows {
	struct uhmm_mm *mm;
	unsigned long start;
	long opened;		/* atomic */
	int stop;		/* atomic */
};

static void *windows_main(void *arg)
{
	struct windows *w = arg;

	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		CHECK_EQ(uhmm_mm_invalidate(w->mm, w->start,
					    w->start + t_page,
					    UHMM_EVENT_PROTECTION), 0);
		__atomic_add_fetch(&w->opened, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void window_race(struct uhmm_mm *mm)
{
	int rounds = (int)(WINDOW_ROUNDS * t_scale());
	long inserted = 0, eagain = 0, other = 0;
	char *p = t_map(1);
	struct windows w = { .mm = mm, .start = (unsigned long)p };
	pthread_t th;

	REQUIRE(pthread_create(&th, NULL, windows_main, &w) == 0);
	for (int round = 0; round < rounds; round++) {
		long opened = __atomic_load_n(&w.opened, __ATOMIC_ACQUIRE);
		struct t_dev d = { 0 };
		int ret;

		/* The windows' thread is running: progress, not time. */
		while (__atomic_load_n(&w.opened, __ATOMIC_ACQUIRE) == opened)
			sched_yield();
		ret = insert_rm(&d, mm, p, t_page);

		if (ret == 0) {
			inserted++;
			CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), 0);
		} else if (ret == -EAGAIN) {
			eagain++;
			CHECK_EQ(uhmm_interval_notifier_remove(&d.sub),
				 -ENOENT);
			CHECK_EQ(t_dev_calls(&d), 0);
		} else {
			other++;
			fprintf(stderr, "window race: a mapped page refused "
				"with %d\n", ret);
			t_failed = 1;
		}
	}
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	printf("explicit windows racing the check, %d rounds (%ld windows): "
	       "inserted %ld, -EAGAIN %ld, other %ld\n", rounds, w.opened,
	       inserted, eagain, other);
	CHECK_EQ(t_registered(p), 0);
	REQUIRE(munmap(p, t_page) == 0);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();

	t_need_require_mapped(mm);
	sem_init(&blocked, 0, 0);
	sem_init(&let_go, 0, 0);

	control_and_flag(mm);
	several_mappings(mm);
	refused_leaves_nothing(mm);
	bad_input_and_open_window(mm);
	unmap_being_dispatched(mm, false);
	unmap_being_dispatched(mm, true);
	munmap_race(mm, false);
	munmap_race(mm, true);
	window_race(mm);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
