/* SPDX-License-Identifier: MIT */
/*
 * uhmm_interval_read_try_begin(): never waits, answers -EAGAIN exactly
 * where read_begin() would wait, and never calls a translation current (0
 * and the seq it was taken with) once a change of its range has returned.
 *
 * A registration cache's lookup under its own lock (libfabric's valid())
 * keeps seq0 from when it took a translation, and asks try_begin whether
 * it is still current. The naive alternative - a flag its callback sets -
 * is stale right after munmap() returns: the kernel releases the
 * unmapping thread when uhmm's reader has *read* the event, before the
 * dispatcher runs the callback. So each part first counts how often the
 * flag was still clear right after the change returned (the control: seen
 * at least once, or the scenario proves nothing), then that try_begin
 * never answered "current":
 *
 *  1. munmap() through libc and as a raw system call, madvise(
 *     MADV_DONTNEED), mremap() moving the page away: in the thread that
 *     made the change, right after it returned; and munmap() in another
 *     thread, checked after its release store saying it returned. 0
 *     with a new seq must also mean the callback ran (it zaps before
 *     set_seq).
 *  2. The same from a signal handler that interrupts the thread while it
 *     spins on try_begin (pthread_kill from another thread at a random
 *     moment): once the handler has returned, never current.
 *  3. A move's destination counts: while a REMAP from q to d is read but
 *     not dispatched (a callback of q's holds the dispatcher), try_begin
 *     of a subscription over d answers -EAGAIN, one over another page 0
 *     with its old seq; read_begin_timeout() agrees with each.
 *  4. Explicit windows on a UHMM_MM_NO_MONITOR mm, with
 *     read_begin_timeout() as the oracle of "would wait" (a window this
 *     thread holds open never closes by itself, so -ETIMEDOUT there does
 *     not depend on time): a window over the subscription, nested ones, a
 *     disjoint window that hits nothing or another subscription, an
 *     insert while a window is open.
 *  5. Bad input: -EINVAL, -ENOENT.
 */
#include <sched.h>
#include <semaphore.h>
#include <signal.h>

#include "events.h"

#define MIN_ITERATIONS 5000
#define CAP 200000		/* the control's: stop looking for a stale flag */
#define SIGNAL_ROUNDS 2000

/* A device whose callback records the zap before it sets the seq: a
 * try_begin that sees the new seq then sees the zap too. */
struct zdev {
	struct uhmm_interval_notifier sub;
	pthread_mutex_t lock;
	int zapped;		/* atomic */
};

static bool zdev_invalidate(struct uhmm_interval_notifier *sub,
			    const struct uhmm_notifier_range *range,
			    unsigned long cur_seq)
{
	struct zdev *d = (struct zdev *)((char *)sub -
					 offsetof(struct zdev, sub));

	(void)range;
	pthread_mutex_lock(&d->lock);
	__atomic_store_n(&d->zapped, 1, __ATOMIC_RELEASE);
	uhmm_interval_set_seq(sub, cur_seq);
	pthread_mutex_unlock(&d->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops zdev_ops = {
	.invalidate = zdev_invalidate,
};

static int zdev_insert(struct zdev *d, struct uhmm_mm *mm, void *p)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	return uhmm_interval_notifier_insert(&d->sub, mm, (unsigned long)p,
					     t_page, &zdev_ops);
}

/* What try_begin said right after a change returned. */
struct counts {
	long iterations, stale, again, moved;
};

/*
 * Right after the change returned: the naive flag, then try_begin. Fails
 * the test if try_begin calls seq0 current, or gives a new seq although
 * the callback has not run.
 */
static void check_after(struct zdev *d, unsigned long seq0,
			struct counts *c, const char *what)
{
	bool stale = !__atomic_load_n(&d->zapped, __ATOMIC_ACQUIRE);
	unsigned long seq = 0;
	int ret = uhmm_interval_read_try_begin(&d->sub, &seq);

	c->iterations++;
	c->stale += stale;
	if (ret == -EAGAIN) {
		c->again++;
		return;
	}
	if (ret != 0) {
		fprintf(stderr, "%s: try_begin returned %d\n", what, ret);
		t_failed = 1;
		return;
	}
	if (seq == seq0) {
		fprintf(stderr, "%s, iteration %ld: try_begin says the "
			"translation of seq %#lx is current after the change "
			"returned (callback ran: %d)\n", what, c->iterations,
			seq0, __atomic_load_n(&d->zapped, __ATOMIC_ACQUIRE));
		t_failed = 1;
		return;
	}
	c->moved++;
	if (!__atomic_load_n(&d->zapped, __ATOMIC_ACQUIRE)) {
		fprintf(stderr, "%s: try_begin gave a new seq %#lx before the "
			"callback that set it zapped\n", what, seq);
		t_failed = 1;
	}
}

static void report(const char *what, const struct counts *c)
{
	printf("%-26s %7ld iterations: naive flag stale %6ld; try_begin "
	       "-EAGAIN %6ld, 0 with a new seq %6ld, current 0\n", what,
	       c->iterations, c->stale, c->again, c->moved);
	if (!c->stale) {
		fprintf(stderr, "%s: the control never saw the naive flag "
			"stale in %ld iterations: the scenario proves "
			"nothing here\n", what, c->iterations);
		t_failed = 1;
	}
}

/* ---- 1. changes in this thread ---- */

enum change { LIBC_MUNMAP, RAW_MUNMAP, DONTNEED, MREMAP_AWAY, OTHER_THREAD };
static const char *const change_names[] = {
	"munmap (libc)", "munmap (raw syscall)", "madvise(MADV_DONTNEED)",
	"mremap away", "munmap in another thread",
};

/* OTHER_THREAD: a thread that unmaps when told, and says it returned
 * with a release store; the checks follow the acquire load. */
static struct {
	char *page;
	int go, done, stop;	/* atomic */
} other;

static void *unmapper_main(void *arg)
{
	(void)arg;
	for (int round = 1;; round++) {
		while (__atomic_load_n(&other.go, __ATOMIC_ACQUIRE) != round) {
			if (__atomic_load_n(&other.stop, __ATOMIC_ACQUIRE))
				return NULL;
			sched_yield();
		}
		REQUIRE(munmap(other.page, t_page) == 0);
		__atomic_store_n(&other.done, round, __ATOMIC_RELEASE);
	}
}

static void same_thread(struct uhmm_mm *mm, enum change how)
{
	long min = (long)(MIN_ITERATIONS * t_scale());
	struct counts c = { 0 };
	char *p = NULL, *dst = NULL;
	pthread_t th;
	int round = 0;

	if (how == OTHER_THREAD)
		REQUIRE(pthread_create(&th, NULL, unmapper_main, NULL) == 0);
	if (how == MREMAP_AWAY) {
		dst = mmap(NULL, t_page, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		REQUIRE(dst != MAP_FAILED);
	}
	if (how == DONTNEED)
		p = t_map(1);
	while (c.iterations < CAP && (c.iterations < min || !c.stale)) {
		struct zdev d;
		unsigned long seq0;

		if (how != DONTNEED)
			p = t_map(1);
		p[0] = 1;
		REQUIRE(zdev_insert(&d, mm, p) == 0);
		/* The translation is taken now; events of an earlier
		 * incarnation of the address are dispatched before this. */
		seq0 = uhmm_interval_read_begin(&d.sub);
		__atomic_store_n(&d.zapped, 0, __ATOMIC_RELEASE);
		switch (how) {
		case LIBC_MUNMAP:
			REQUIRE(munmap(p, t_page) == 0);
			break;
		case RAW_MUNMAP:
			REQUIRE(syscall(SYS_munmap, p, t_page) == 0);
			break;
		case DONTNEED:
			REQUIRE(madvise(p, t_page, MADV_DONTNEED) == 0);
			break;
		case MREMAP_AWAY:
			REQUIRE(mremap(p, t_page, t_page,
				       MREMAP_MAYMOVE | MREMAP_FIXED,
				       dst) == dst);
			break;
		case OTHER_THREAD:
			other.page = p;
			__atomic_store_n(&other.go, ++round, __ATOMIC_RELEASE);
			while (__atomic_load_n(&other.done, __ATOMIC_ACQUIRE) !=
			       round)
				;
			break;
		}
		check_after(&d, seq0, &c, change_names[how]);
		REQUIRE(uhmm_interval_notifier_remove(&d.sub) == 0);
		pthread_mutex_destroy(&d.lock);
	}
	report(change_names[how], &c);
	if (how == OTHER_THREAD) {
		__atomic_store_n(&other.stop, 1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
	}
	if (how == DONTNEED)
		REQUIRE(munmap(p, t_page) == 0);
	if (dst)
		REQUIRE(munmap(dst, t_page) == 0);
}

/* ---- 2. from a signal handler ---- */

static char *victim;		/* atomic: the page the handler unmaps */
static int handled;		/* atomic: the handler returned */
static int armed;		/* atomic: round the killer may signal */
static int stop;		/* atomic */
static pthread_t spinner;

static void on_sigusr1(int sig)
{
	(void)sig;
	REQUIRE(munmap(__atomic_load_n(&victim, __ATOMIC_ACQUIRE), t_page) ==
		0);
	__atomic_store_n(&handled, 1, __ATOMIC_RELEASE);
}

/* Signals the spinner once per round, after a random spin. */
static void *killer_main(void *arg)
{
	unsigned int seed = 1;
	int round = 0;

	(void)arg;
	for (;;) {
		int a;

		while ((a = __atomic_load_n(&armed, __ATOMIC_ACQUIRE)) ==
			       round &&
		       !__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
			sched_yield();
		if (a == round)
			return NULL;
		round = a;
		for (volatile int spin = rand_r(&seed) % 20000; spin > 0;
		     spin--)
			;
		REQUIRE(pthread_kill(spinner, SIGUSR1) == 0);
	}
}

static void from_signal_handler(struct uhmm_mm *mm)
{
	long min = (long)(SIGNAL_ROUNDS * t_scale());
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	struct counts c = { 0 };
	long spins = 0;
	pthread_t th;

	sigemptyset(&sa.sa_mask);
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
	spinner = pthread_self();
	REQUIRE(pthread_create(&th, NULL, killer_main, NULL) == 0);
	for (int round = 1; c.iterations < CAP && (round <= min || !c.stale);
	     round++) {
		struct zdev d;
		unsigned long seq0, seq;
		char *p = t_map(1);

		REQUIRE(zdev_insert(&d, mm, p) == 0);
		seq0 = uhmm_interval_read_begin(&d.sub);
		__atomic_store_n(&d.zapped, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&victim, p, __ATOMIC_RELEASE);
		__atomic_store_n(&handled, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&armed, round, __ATOMIC_RELEASE);
		/* Before the signal: current, as nothing changed. */
		while (!__atomic_load_n(&handled, __ATOMIC_ACQUIRE)) {
			int ret = uhmm_interval_read_try_begin(&d.sub, &seq);

			spins++;
			/* The handler may have run in between. */
			if (ret == 0 && seq != seq0 &&
			    !__atomic_load_n(&handled, __ATOMIC_ACQUIRE)) {
				fprintf(stderr, "signal round %d: a new seq "
					"before the unmap\n", round);
				t_failed = 1;
			}
		}
		check_after(&d, seq0, &c, "munmap in a signal handler");
		REQUIRE(uhmm_interval_notifier_remove(&d.sub) == 0);
		pthread_mutex_destroy(&d.lock);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	report("munmap in a signal handler", &c);
	printf("  (%ld try_begin calls spun while waiting for the signal)\n",
	       spins);
}

/* ---- 3. a move's destination ---- */

static sem_t blocked, let_go;

static bool hold_dispatcher(struct t_dev *dev,
			    const struct uhmm_notifier_range *r)
{
	(void)dev;
	if (r->event == UHMM_EVENT_REMAP) {
		sem_post(&blocked);
		sem_wait(&let_go);
	}
	return true;
}

static void move_destination(struct uhmm_mm *mm)
{
	struct t_dev holder = { .hook = hold_dispatcher }, dest = { 0 },
		     other = { 0 };
	char *q = t_map(1), *u = t_map(1), *area;
	unsigned long sd, so, seq;
	char *d;

	/* d: a hole in the middle of a reservation, so nothing else lands
	 * there; dest subscribes to it (a hole arms nothing). */
	area = mmap(NULL, 3 * t_page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	REQUIRE(area != MAP_FAILED);
	d = area + t_page;
	REQUIRE(munmap(d, t_page) == 0);
	REQUIRE(t_dev_insert(&holder, mm, (unsigned long)q, t_page) == 0);
	REQUIRE(t_dev_insert(&dest, mm, (unsigned long)d, t_page) == 0);
	REQUIRE(t_dev_insert(&other, mm, (unsigned long)u, t_page) == 0);
	sd = uhmm_interval_read_begin(&dest.sub);
	so = uhmm_interval_read_begin(&other.sub);

	REQUIRE(mremap(q, t_page, t_page, MREMAP_MAYMOVE | MREMAP_FIXED, d) ==
		d);
	sem_wait(&blocked);
	/* Read, not dispatched: d is what the move changes too. */
	CHECK_EQ(uhmm_interval_read_try_begin(&dest.sub, &seq), -EAGAIN);
	CHECK_EQ(uhmm_interval_read_begin_timeout(&dest.sub, 1, &seq),
		 -ETIMEDOUT);
	CHECK_EQ(uhmm_interval_read_try_begin(&holder.sub, &seq), -EAGAIN);
	/* Another page: neither waits, nothing changed it. */
	seq = 0;
	CHECK_EQ(uhmm_interval_read_try_begin(&other.sub, &seq), 0);
	CHECK_EQ(seq, so);
	CHECK_EQ(uhmm_interval_read_begin_timeout(&other.sub, 1, &seq), 0);
	CHECK_EQ(seq, so);
	sem_post(&let_go);

	REQUIRE(uhmm_mm_sync(mm) == 0);
	/* REMAP, then UNMAP of the old range (tests/events.h). */
	CHECK(t_dev_calls(&holder) >= 1);
	/* The move put a mapping into a hole: no callback for dest, and
	 * once dispatched its seq is current again. */
	CHECK_EQ(t_dev_calls(&dest), 0);
	seq = 0;
	CHECK_EQ(uhmm_interval_read_try_begin(&dest.sub, &seq), 0);
	CHECK_EQ(seq, sd);
	printf("move destination: -EAGAIN over it while the move was being "
	       "dispatched, 0 over another page\n");

	REQUIRE(uhmm_interval_notifier_remove(&holder.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&dest.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&other.sub) == 0);
	REQUIRE(munmap(area, 3 * t_page) == 0);
	REQUIRE(munmap(u, t_page) == 0);
}

/* ---- 4. explicit windows ---- */

/*
 * try_begin's answer, checked against read_begin_timeout()'s: -EAGAIN
 * exactly where it times out. Returns try_begin's, *seq set on 0.
 */
static int try_begin_checked(int line, struct t_dev *dev, unsigned long *seq)
{
	unsigned long s1 = 0, s2 = 0;
	int ret = uhmm_interval_read_try_begin(&dev->sub, &s1);
	int oracle = uhmm_interval_read_begin_timeout(&dev->sub, 1, &s2);

	if ((ret == -EAGAIN) != (oracle == -ETIMEDOUT) ||
	    (ret == 0 && s1 != s2)) {
		fprintf(stderr, "line %d: try_begin %d seq %#lx, but "
			"read_begin_timeout %d seq %#lx\n", line, ret, s1,
			oracle, s2);
		t_failed = 1;
	}
	if (ret == 0)
		*seq = s1;
	return ret;
}
#define TRY(dev, seq) try_begin_checked(__LINE__, (dev), (seq))

static void explicit_windows(void)
{
	struct uhmm_notifier_range over = {
		.start = 0x10000, .end = 0x11000, .event = UHMM_EVENT_UNMAP,
		.flags = UHMM_RANGE_BLOCKABLE,
	};
	struct uhmm_notifier_range over2 = over, hits_other = over,
				   hits_nothing = over;
	struct t_dev a = { 0 }, b = { 0 }, late = { 0 };
	unsigned long seq0, seq1, seq = 0;
	struct uhmm_mm *mm;

	hits_other.start = 0x20000;
	hits_other.end = 0x21000;
	hits_nothing.start = 0x30000;
	hits_nothing.end = 0x31000;
	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(t_dev_insert(&a, mm, 0x10000, 0x1000) == 0);
	REQUIRE(t_dev_insert(&b, mm, 0x20000, 0x1000) == 0);

	CHECK_EQ(TRY(&a, &seq0), 0);
	CHECK_EQ(seq0 & 1, 1);

	/* A window over a: not current while it is open, nor after. */
	REQUIRE(uhmm_mm_invalidate_start(mm, &over) == 0);
	CHECK_EQ(t_dev_calls(&a), 1);
	CHECK_EQ(TRY(&a, &seq), -EAGAIN);
	/* A second one over it; the first closes: still open. */
	REQUIRE(uhmm_mm_invalidate_start(mm, &over2) == 0);
	REQUIRE(uhmm_mm_invalidate_end(mm, &over) == 0);
	CHECK_EQ(TRY(&a, &seq), -EAGAIN);
	REQUIRE(uhmm_mm_invalidate_end(mm, &over2) == 0);
	CHECK_EQ(TRY(&a, &seq1), 0);
	CHECK(seq1 != seq0);
	CHECK_EQ(seq1, a.last_seq);

	/* A window that hits nothing: a's seq stays current throughout. */
	REQUIRE(uhmm_mm_invalidate_start(mm, &hits_nothing) == 0);
	CHECK_EQ(TRY(&a, &seq), 0);
	CHECK_EQ(seq, seq1);
	REQUIRE(uhmm_mm_invalidate_end(mm, &hits_nothing) == 0);
	CHECK_EQ(TRY(&a, &seq), 0);
	CHECK_EQ(seq, seq1);

	/* A window that hits b only: the mm collides, a is untouched. */
	REQUIRE(uhmm_mm_invalidate_start(mm, &hits_other) == 0);
	CHECK_EQ(t_dev_calls(&b), 1);
	CHECK_EQ(TRY(&a, &seq), 0);
	CHECK_EQ(seq, seq1);
	CHECK_EQ(TRY(&b, &seq), -EAGAIN);
	/* Inserted while a window is open: starts out colliding (uhmm.h),
	 * though this window does not cover it. */
	REQUIRE(t_dev_insert(&late, mm, 0x40000, 0x1000) == 0);
	CHECK_EQ(TRY(&late, &seq), -EAGAIN);
	REQUIRE(uhmm_mm_invalidate_end(mm, &hits_other) == 0);
	CHECK_EQ(TRY(&a, &seq), 0);
	CHECK_EQ(seq, seq1);
	CHECK_EQ(TRY(&late, &seq), 0);
	CHECK_EQ(t_dev_calls(&late), 0);
	CHECK_EQ(t_dev_calls(&a), 2);

	/* The same with a window that hits nothing: an insert meanwhile
	 * still starts colliding. */
	REQUIRE(uhmm_interval_notifier_remove(&late.sub) == 0);
	REQUIRE(uhmm_mm_invalidate_start(mm, &hits_nothing) == 0);
	REQUIRE(t_dev_insert(&late, mm, 0x40000, 0x1000) == 0);
	CHECK_EQ(TRY(&late, &seq), -EAGAIN);
	CHECK_EQ(TRY(&a, &seq), 0);
	CHECK_EQ(seq, seq1);
	REQUIRE(uhmm_mm_invalidate_end(mm, &hits_nothing) == 0);
	CHECK_EQ(TRY(&late, &seq), 0);

	/* ---- 5. bad input ---- */
	CHECK_EQ(uhmm_interval_read_try_begin(NULL, &seq), -EINVAL);
	CHECK_EQ(uhmm_interval_read_try_begin(&a.sub, NULL), -EINVAL);
	{
		struct uhmm_interval_notifier never = { 0 };

		CHECK_EQ(uhmm_interval_read_try_begin(&never, &seq), -ENOENT);
	}
	REQUIRE(uhmm_interval_notifier_remove(&late.sub) == 0);
	CHECK_EQ(uhmm_interval_read_try_begin(&late.sub, &seq), -ENOENT);

	REQUIRE(uhmm_interval_notifier_remove(&a.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&b.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	printf("explicit windows: -EAGAIN exactly where read_begin_timeout "
	       "timed out\n");
}

int main(void)
{
	struct uhmm_mm *mm;

	sem_init(&blocked, 0, 0);
	sem_init(&let_go, 0, 0);
	explicit_windows();

	mm = t_open();
	for (int how = LIBC_MUNMAP; how <= OTHER_THREAD; how++)
		same_thread(mm, how);
	from_signal_handler(mm);
	move_destination(mm);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
