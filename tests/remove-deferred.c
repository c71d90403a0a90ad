/* SPDX-License-Identifier: MIT */
/*
 * uhmm_interval_notifier_remove_deferred(): never waits; callable from a
 * callback (the subscription's own too) and under a lock that callbacks
 * take; done(sub) once, when no callback for sub runs or will run - on
 * uhmm's dispatcher for a monitored mm, on UHMM_MM_NO_MONITOR in the
 * thread that closes the last window (after closing it), or before it
 * returns when no window may be calling sub; uhmm_mm_sync() returns only
 * after the done functions of removals that took effect before it.
 *
 *  a. A callback removes its own heap-allocated subscription during an
 *     munmap event, and another one's; done frees it (ASan sees any use
 *     after), runs once, on the dispatcher, after the callbacks returned;
 *     later windows over the range call nothing.
 *  b. Deadlock. Thread T holds lock L; X's callback, on the dispatcher
 *     for an munmap, waits for L. Control: T's synchronous
 *     uhmm_interval_notifier_remove(Y), Y over the same page, blocks -
 *     it waits for the window whose callback waits for T (seen asleep,
 *     then untangled by releasing L from outside: L is a semaphore).
 *     With remove_deferred(Y) under L: it returns at once, done has not
 *     run (the window is still open), and runs on the dispatcher once L
 *     is released.
 *  c. UHMM_MM_NO_MONITOR: outside any window, done has run when the
 *     call returns, in this thread. From a callback of an explicit
 *     window: not until uhmm_mm_invalidate_end(), then in that thread,
 *     with the collision over (done may insert and remove there), and no
 *     window opened after the call returned calls it (uhmm.h: "no new
 *     one does after this returns"). Two windows in two threads: done
 *     runs in the thread that closes the last.
 *  d. Errors: -EINVAL for NULL sub or done; -ENOENT for a subscription
 *     never inserted, a second call, and a synchronous remove after a
 *     deferred one (neither waits, while the removal is still pending).
 *  e. Churn: heap subscriptions over pages that a thread keeps replacing
 *     (mmap(MAP_FIXED)) and discarding (MADV_DONTNEED); callbacks remove
 *     their own subscription, the main thread the others, both under the
 *     subscription's lock that the callbacks and done take; generations
 *     of them inserted meanwhile. After uhmm_mm_sync() every done ran
 *     exactly once, on the dispatcher, and no callback ran after it; the
 *     mm closes cleanly.
 *  f. done runs outside uhmm's windows: a done that a callback of a
 *     discard's window triggered on another mm (so it takes effect at
 *     once) finds no window of the dispatcher's own still open over a
 *     subscription - read_begin() or remove() there would wait for the
 *     thread that runs done.
 *  g. uhmm_mm_sync() after a removal from this thread: done has run.
 */
#include <sched.h>
#include <semaphore.h>

#include "events.h"

#define OWN_ROUNDS 200
#define SYNC_ROUNDS 2000
#define CHURN_SUBS 256
#define CHURN_PAGES 32
#define CHURN_GENERATIONS 4

static pid_t main_tid;
static pid_t dispatcher_tid;	/* atomic: seen in a kernel event's callback */

static void saw_dispatcher(void)
{
	pid_t tid = t_gettid();

	if (tid != main_tid)
		__atomic_store_n(&dispatcher_tid, tid, __ATOMIC_RELEASE);
}

/* ---- a. a callback removes its own heap subscription ---- */

struct own {
	struct uhmm_interval_notifier sub;
	bool remover;		/* removes itself and the partner */
};

static struct {
	struct own *partner;	/* removed by the remover's callback */
	int calls;		/* atomic: callbacks of this round */
	int partner_calls_in, partner_calls_out;	/* atomic */
	int ret_self, ret_self_again, ret_partner;
	int returned;		/* atomic: the remover's callback returned */
	int done_self, done_partner;	/* atomic */
	int done_self_saw_return;	/* atomic */
	int done_partner_in_flight;	/* atomic: partner callbacks running */
	pid_t done_tid;
} a;

static void own_done(struct uhmm_interval_notifier *sub)
{
	struct own *o = (struct own *)sub;

	a.done_tid = t_gettid();
	if (o->remover) {
		__atomic_store_n(&a.done_self_saw_return,
				 __atomic_load_n(&a.returned, __ATOMIC_ACQUIRE),
				 __ATOMIC_RELEASE);
		__atomic_add_fetch(&a.done_self, 1, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(
			&a.done_partner_in_flight,
			__atomic_load_n(&a.partner_calls_in, __ATOMIC_ACQUIRE) -
				__atomic_load_n(&a.partner_calls_out,
						__ATOMIC_ACQUIRE),
			__ATOMIC_RELEASE);
		__atomic_add_fetch(&a.done_partner, 1, __ATOMIC_RELEASE);
	}
	memset(o, 0x5a, sizeof(*o));
	free(o);
}

static bool own_invalidate(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *range,
			   unsigned long cur_seq)
{
	struct own *o = (struct own *)sub;

	(void)range;
	__atomic_add_fetch(&a.calls, 1, __ATOMIC_RELAXED);
	uhmm_interval_set_seq(sub, cur_seq);
	if (!o->remover) {
		__atomic_add_fetch(&a.partner_calls_in, 1, __ATOMIC_ACQ_REL);
		sched_yield();
		__atomic_add_fetch(&a.partner_calls_out, 1, __ATOMIC_ACQ_REL);
		return true;
	}
	saw_dispatcher();
	a.ret_self = uhmm_interval_notifier_remove_deferred(sub, own_done);
	a.ret_self_again = uhmm_interval_notifier_remove_deferred(sub,
								  own_done);
	if (a.partner)
		a.ret_partner = uhmm_interval_notifier_remove_deferred(
			&a.partner->sub, own_done);
	a.partner = NULL;
	sched_yield();		/* a done that does not wait would run now */
	__atomic_store_n(&a.returned, 1, __ATOMIC_RELEASE);
	return true;
}

static const struct uhmm_interval_notifier_ops own_ops = {
	.invalidate = own_invalidate,
};

static void removes_itself(struct uhmm_mm *mm)
{
	int rounds = (int)(OWN_ROUNDS * t_scale()), failed = t_failed;

	for (int i = 0; i < rounds; i++) {
		struct own *self = calloc(1, sizeof(*self)),
			   *partner = calloc(1, sizeof(*partner));
		unsigned long start;
		char *p = t_map(1);

		REQUIRE(self && partner);
		memset(&a, 0, sizeof(a));
		start = (unsigned long)p;
		self->remover = true;
		a.partner = partner;
		a.ret_self = a.ret_self_again = a.ret_partner = 1;
		REQUIRE(uhmm_interval_notifier_insert(&self->sub, mm, start,
						      t_page, &own_ops) == 0);
		REQUIRE(uhmm_interval_notifier_insert(&partner->sub, mm, start,
						      t_page, &own_ops) == 0);
		REQUIRE(munmap(p, t_page) == 0);
		REQUIRE(uhmm_mm_sync(mm) == 0);

		CHECK_EQ(a.ret_self, 0);
		CHECK_EQ(a.ret_self_again, -ENOENT);
		CHECK_EQ(a.ret_partner, 0);
		CHECK_EQ(__atomic_load_n(&a.done_self, __ATOMIC_ACQUIRE), 1);
		CHECK_EQ(__atomic_load_n(&a.done_partner, __ATOMIC_ACQUIRE), 1);
		CHECK_EQ(a.done_self_saw_return, 1);
		CHECK_EQ(a.done_partner_in_flight, 0);
		CHECK(a.done_tid != main_tid);
		CHECK_EQ(a.done_tid, dispatcher_tid);
		/* Gone: a window over the page calls nothing (and would
		 * touch freed memory). */
		a.calls = 0;
		REQUIRE(uhmm_mm_invalidate(mm, start, start + t_page,
					   UHMM_EVENT_UNMAP) == 0);
		CHECK_EQ(a.calls, 0);
		if (t_failed > failed) {
			fprintf(stderr, "a: round %d failed\n", i);
			break;
		}
	}
	printf("a. %d rounds: a callback removed its own subscription and "
	       "another; done ran once each, on the dispatcher, after the "
	       "callback returned\n", rounds);
}

/* ---- b. the lock a callback waits for ---- */

static sem_t L;			/* the device's lock, as a semaphore */
static sem_t x_entered;
static int x_blocks;		/* atomic: X's callback takes L */

static bool x_hook(struct t_dev *dev, const struct uhmm_notifier_range *r)
{
	(void)dev;
	if (r->event == UHMM_EVENT_UNMAP &&
	    __atomic_load_n(&x_blocks, __ATOMIC_ACQUIRE)) {
		saw_dispatcher();
		sem_post(&x_entered);
		sem_wait(&L);
		sem_post(&L);
	}
	return true;
}

static int y_done;		/* atomic */
static pid_t y_done_tid;

static void y_done_fn(struct uhmm_interval_notifier *sub)
{
	(void)sub;
	y_done_tid = t_gettid();
	__atomic_add_fetch(&y_done, 1, __ATOMIC_RELEASE);
}

struct holder {
	struct t_dev *y;
	sem_t holds, go;
	pid_t tid;		/* atomic */
	int ret;
	int returned;		/* atomic */
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;

	sem_wait(&L);
	sem_post(&h->holds);
	sem_wait(&h->go);
	__atomic_store_n(&h->tid, t_gettid(), __ATOMIC_RELEASE);
	h->ret = uhmm_interval_notifier_remove(&h->y->sub);
	__atomic_store_n(&h->returned, 1, __ATOMIC_RELEASE);
	/* L was released for this thread from outside (the untangling). */
	return NULL;
}

static void under_callback_lock(struct uhmm_mm *mm)
{
	struct t_dev x = { .hook = x_hook }, y = { 0 };
	struct holder h = { .y = &y };
	pthread_t th;
	pid_t tid;
	char *p = t_map(1);

	REQUIRE(t_dev_insert(&x, mm, (unsigned long)p, t_page) == 0);
	REQUIRE(t_dev_insert(&y, mm, (unsigned long)p, t_page) == 0);
	__atomic_store_n(&x_blocks, 1, __ATOMIC_RELEASE);

	/* Control: the synchronous remove under L. */
	sem_init(&h.holds, 0, 0);
	sem_init(&h.go, 0, 0);
	REQUIRE(pthread_create(&th, NULL, holder_main, &h) == 0);
	sem_wait(&h.holds);
	REQUIRE(munmap(p, t_page) == 0);
	sem_wait(&x_entered);
	t_wait_blocked(__atomic_load_n(&dispatcher_tid, __ATOMIC_ACQUIRE));
	sem_post(&h.go);
	while (!(tid = __atomic_load_n(&h.tid, __ATOMIC_ACQUIRE)))
		sched_yield();
	t_wait_blocked(tid);
	CHECK(!__atomic_load_n(&h.returned, __ATOMIC_ACQUIRE));
	printf("b. control: uhmm_interval_notifier_remove() under the lock "
	       "a callback waits for: blocked (%s)\n",
	       __atomic_load_n(&h.returned, __ATOMIC_ACQUIRE) ? "NOT"
							     : "deadlock");
	sem_post(&L);		/* untangle: L released from outside */
	pthread_join(th, NULL);
	CHECK_EQ(h.ret, 0);
	REQUIRE(uhmm_interval_notifier_remove(&x.sub) == 0);

	/* remove_deferred under L: returns, done waits for the window. */
	p = t_map(1);
	REQUIRE(t_dev_insert(&x, mm, (unsigned long)p, t_page) == 0);
	REQUIRE(t_dev_insert(&y, mm, (unsigned long)p, t_page) == 0);
	sem_wait(&L);
	REQUIRE(munmap(p, t_page) == 0);
	sem_wait(&x_entered);
	t_wait_blocked(__atomic_load_n(&dispatcher_tid, __ATOMIC_ACQUIRE));
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&y.sub, y_done_fn), 0);
	CHECK_EQ(__atomic_load_n(&y_done, __ATOMIC_ACQUIRE), 0);
	/* Its removal is pending: neither remove waits, both refuse. */
	CHECK_EQ(uhmm_interval_notifier_remove(&y.sub), -ENOENT);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&y.sub, y_done_fn),
		 -ENOENT);
	CHECK_EQ(__atomic_load_n(&y_done, __ATOMIC_ACQUIRE), 0);
	sem_post(&L);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(__atomic_load_n(&y_done, __ATOMIC_ACQUIRE), 1);
	CHECK_EQ(y_done_tid, dispatcher_tid);
	printf("b. remove_deferred() under that lock: returned at once, done "
	       "ran once the window closed, on the dispatcher\n");
	__atomic_store_n(&x_blocks, 0, __ATOMIC_RELEASE);
	REQUIRE(uhmm_interval_notifier_remove(&x.sub) == 0);
	/* After done, y is not inserted. */
	CHECK_EQ(uhmm_interval_notifier_remove(&y.sub), -ENOENT);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&y.sub, y_done_fn),
		 -ENOENT);
}

/* ---- c. UHMM_MM_NO_MONITOR ---- */

static struct {
	struct uhmm_mm *mm;
	struct t_dev *other;	/* hit by the same windows */
	int done;		/* atomic */
	pid_t tid;
	int other_try;		/* try_begin(other) in done */
	int insert_ret, remove_ret;
	int ret_in_callback;
} c;

static void c_done(struct uhmm_interval_notifier *sub)
{
	unsigned long seq;

	(void)sub;
	c.tid = t_gettid();
	c.other_try = uhmm_interval_read_try_begin(&c.other->sub, &seq);
	if (c.other_try == 0) {
		/* The collision is over: inserting and removing work. */
		struct t_dev extra = { 0 };

		c.insert_ret = t_dev_insert(&extra, c.mm, 0x10000, 0x1000);
		c.remove_ret = uhmm_interval_notifier_remove(&extra.sub);
	}
	__atomic_add_fetch(&c.done, 1, __ATOMIC_RELEASE);
}

static bool c_remove_self(struct t_dev *dev,
			  const struct uhmm_notifier_range *r)
{
	(void)r;
	c.ret_in_callback = uhmm_interval_notifier_remove_deferred(&dev->sub,
								   c_done);
	CHECK_EQ(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE), 0);
	dev->hook = NULL;
	return true;
}

struct closer {
	struct uhmm_notifier_range w;
	sem_t opened, go;
	pid_t tid;
	int ret;
};

static void *closer_main(void *arg)
{
	struct closer *cl = arg;

	cl->tid = t_gettid();
	CHECK_EQ(uhmm_mm_invalidate_start(c.mm, &cl->w), 0);
	sem_post(&cl->opened);
	sem_wait(&cl->go);
	cl->ret = uhmm_mm_invalidate_end(c.mm, &cl->w);
	return NULL;
}

static void no_monitor(void)
{
	struct uhmm_notifier_range w = { .start = 0x10000, .end = 0x11000,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct t_dev s = { 0 }, other = { 0 };
	struct closer cl = { .w = w };
	pthread_t th;
	int calls;

	REQUIRE(uhmm_mm_open(&c.mm, UHMM_MM_NO_MONITOR) == 0);
	c.other = &other;
	REQUIRE(t_dev_insert(&other, c.mm, 0x10000, 0x1000) == 0);

	/* Outside any window: done before the call returns. */
	REQUIRE(t_dev_insert(&s, c.mm, 0x10000, 0x1000) == 0);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&s.sub, c_done), 0);
	CHECK_EQ(c.done, 1);
	CHECK_EQ(c.tid, main_tid);
	CHECK_EQ(c.other_try, 0);
	CHECK_EQ(c.insert_ret, 0);
	CHECK_EQ(c.remove_ret, 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&s.sub), -ENOENT);

	/* From its own callback, in a window this thread holds open. */
	memset(&s, 0, sizeof(s));
	c.done = 0;
	c.tid = 0;
	c.other_try = c.insert_ret = c.remove_ret = 1;
	c.ret_in_callback = 1;
	REQUIRE(t_dev_insert(&s, c.mm, 0x10000, 0x1000) == 0);
	s.hook = c_remove_self;
	REQUIRE(uhmm_mm_invalidate_start(c.mm, &w) == 0);
	CHECK_EQ(c.ret_in_callback, 0);
	CHECK_EQ(c.done, 0);
	calls = t_dev_calls(&s);
	CHECK_EQ(calls, 1);
	/* A window opened after the call returned does not call it. */
	REQUIRE(uhmm_mm_invalidate(c.mm, 0x10000, 0x11000,
				   UHMM_EVENT_UNMAP) == 0);
	if (t_dev_calls(&s) != calls)
		fprintf(stderr, "c: a window opened after "
			"remove_deferred() returned called the subscription "
			"(uhmm.h: \"no new one does after this returns\")\n");
	CHECK_EQ(t_dev_calls(&s), calls);
	calls = t_dev_calls(&s);
	CHECK_EQ(c.done, 0);
	REQUIRE(uhmm_mm_invalidate_end(c.mm, &w) == 0);
	CHECK_EQ(c.done, 1);
	CHECK_EQ(c.tid, main_tid);
	CHECK_EQ(c.other_try, 0);	/* after the window closed */
	CHECK_EQ(c.insert_ret, 0);
	CHECK_EQ(c.remove_ret, 0);
	REQUIRE(uhmm_mm_invalidate(c.mm, 0x10000, 0x11000,
				   UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&s), calls);

	/* Two windows, two threads: done in the one that closes the last. */
	memset(&s, 0, sizeof(s));
	c.done = 0;
	c.tid = 0;
	c.other_try = 1;
	REQUIRE(t_dev_insert(&s, c.mm, 0x10000, 0x1000) == 0);
	sem_init(&cl.opened, 0, 0);
	sem_init(&cl.go, 0, 0);
	REQUIRE(uhmm_mm_invalidate_start(c.mm, &w) == 0);
	REQUIRE(pthread_create(&th, NULL, closer_main, &cl) == 0);
	sem_wait(&cl.opened);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&s.sub, c_done), 0);
	CHECK_EQ(c.done, 0);
	REQUIRE(uhmm_mm_invalidate_end(c.mm, &w) == 0);
	CHECK_EQ(c.done, 0);
	sem_post(&cl.go);
	pthread_join(th, NULL);
	CHECK_EQ(cl.ret, 0);
	CHECK_EQ(c.done, 1);
	CHECK_EQ(c.tid, cl.tid);
	CHECK_EQ(c.other_try, 0);

	REQUIRE(uhmm_interval_notifier_remove(&other.sub) == 0);
	REQUIRE(uhmm_mm_close(c.mm) == 0);
	printf("c. no monitor: done before the return outside windows, else "
	       "in the thread that closed the last window, after it\n");
}

/* ---- d. errors ---- */

static void noop_done(struct uhmm_interval_notifier *sub)
{
	(void)sub;
}

static void errors(void)
{
	struct uhmm_interval_notifier never = { 0 };
	struct t_dev s = { 0 };
	struct uhmm_mm *mm;

	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(t_dev_insert(&s, mm, 0x10000, 0x1000) == 0);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(NULL, noop_done),
		 -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&s.sub, NULL),
		 -EINVAL);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&never, noop_done),
		 -ENOENT);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&s.sub, noop_done), 0);
	CHECK_EQ(uhmm_interval_notifier_remove_deferred(&s.sub, noop_done),
		 -ENOENT);
	CHECK_EQ(uhmm_interval_notifier_remove(&s.sub), -ENOENT);
	REQUIRE(uhmm_mm_close(mm) == 0);
}

/* ---- e. churn ---- */

struct slot {
	pthread_mutex_t lock;	/* the device's: callbacks and done take it */
	struct hsub *sub;	/* [lock] */
	bool removing;		/* [lock] */
	int removed_by_callback;
	int done;		/* atomic */
	int calls_after_done;	/* atomic */
	pid_t done_tid;
};

struct hsub {
	struct uhmm_interval_notifier sub;
	struct slot *slot;
	unsigned int calls;
};

static struct slot slots[CHURN_SUBS];
static int churn_stop;		/* atomic */
static long churn_changes;	/* atomic: the changer's progress */

static void churn_done(struct uhmm_interval_notifier *sub)
{
	struct hsub *h = (struct hsub *)sub;
	struct slot *s = h->slot;

	pthread_mutex_lock(&s->lock);
	s->done_tid = t_gettid();
	s->sub = NULL;
	pthread_mutex_unlock(&s->lock);
	__atomic_add_fetch(&s->done, 1, __ATOMIC_RELEASE);
	memset(h, 0x5a, sizeof(*h));
	free(h);
}

static bool churn_invalidate(struct uhmm_interval_notifier *sub,
			     const struct uhmm_notifier_range *range,
			     unsigned long cur_seq)
{
	struct hsub *h = (struct hsub *)sub;
	struct slot *s = h->slot;

	(void)range;
	saw_dispatcher();
	if (__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
		__atomic_add_fetch(&s->calls_after_done, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&s->lock);
	uhmm_interval_set_seq(sub, cur_seq);
	/* Every other call removes its own subscription. */
	if (!s->removing && h->calls++ % 2) {
		s->removing = true;
		s->removed_by_callback = 1;
		CHECK_EQ(uhmm_interval_notifier_remove_deferred(sub,
								churn_done),
			 0);
	}
	pthread_mutex_unlock(&s->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops churn_ops = {
	.invalidate = churn_invalidate,
};

static void *changer_main(void *arg)
{
	char *area = arg;
	unsigned int seed = 3;

	while (!__atomic_load_n(&churn_stop, __ATOMIC_ACQUIRE)) {
		char *p = area + (rand_r(&seed) % CHURN_PAGES) * t_page;

		if (rand_r(&seed) % 2) {
			REQUIRE(mmap(p, t_page, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				     -1, 0) == p);
			p[0] = 1;
		} else {
			REQUIRE(madvise(p, t_page, MADV_DONTNEED) == 0);
		}
		__atomic_add_fetch(&churn_changes, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Until the changer has made n more changes: progress, not time. */
static void wait_changes(long n)
{
	long until = __atomic_load_n(&churn_changes, __ATOMIC_ACQUIRE) + n;

	while (__atomic_load_n(&churn_changes, __ATOMIC_ACQUIRE) < until)
		sched_yield();
}

static void churn(struct uhmm_mm *mm)
{
	int gens = (int)(CHURN_GENERATIONS * t_scale()) ?: 1;
	long by_callback = 0, by_main = 0, total = 0;
	char *area = t_map(CHURN_PAGES);
	unsigned int seed = 11;
	pthread_t th;

	for (int i = 0; i < CHURN_SUBS; i++)
		pthread_mutex_init(&slots[i].lock, NULL);
	REQUIRE(pthread_create(&th, NULL, changer_main, area) == 0);
	for (int g = 0; g < gens; g++) {
		/* Insert a generation while the pages change. */
		for (int i = 0; i < CHURN_SUBS; i++) {
			struct slot *s = &slots[i];
			struct hsub *h = calloc(1, sizeof(*h));

			REQUIRE(h);
			h->slot = s;
			pthread_mutex_lock(&s->lock);
			s->sub = h;
			s->removing = false;
			s->removed_by_callback = 0;
			__atomic_store_n(&s->done, 0, __ATOMIC_RELEASE);
			s->calls_after_done = 0;
			s->done_tid = 0;
			REQUIRE(uhmm_interval_notifier_insert(
					&h->sub, mm,
					(unsigned long)area +
						(i % CHURN_PAGES) * t_page,
					t_page, &churn_ops) == 0);
			pthread_mutex_unlock(&s->lock);
		}
		/* Remove in a random order, under each one's lock, one
		 * every change or so, while callbacks remove theirs. */
		for (int k = 0; k < CHURN_SUBS; k++) {
			struct slot *s = &slots[rand_r(&seed) % CHURN_SUBS];

			wait_changes(1);
			pthread_mutex_lock(&s->lock);
			if (!s->removing) {
				s->removing = true;
				CHECK_EQ(uhmm_interval_notifier_remove_deferred(
						 &s->sub->sub, churn_done),
					 0);
			}
			pthread_mutex_unlock(&s->lock);
		}
		for (int i = 0; i < CHURN_SUBS; i++) {
			struct slot *s = &slots[i];

			pthread_mutex_lock(&s->lock);
			if (!s->removing) {
				s->removing = true;
				CHECK_EQ(uhmm_interval_notifier_remove_deferred(
						 &s->sub->sub, churn_done),
					 0);
			}
			pthread_mutex_unlock(&s->lock);
		}
		REQUIRE(uhmm_mm_sync(mm) == 0);
		for (int i = 0; i < CHURN_SUBS; i++) {
			struct slot *s = &slots[i];

			total++;
			if (s->removed_by_callback)
				by_callback++;
			else
				by_main++;
			if (__atomic_load_n(&s->done, __ATOMIC_ACQUIRE) != 1) {
				fprintf(stderr, "e: generation %d sub %d: done "
					"ran %d times\n", g, i, s->done);
				t_failed = 1;
			}
			CHECK_EQ(s->calls_after_done, 0);
			CHECK(s->sub == NULL);
			CHECK(s->done_tid != main_tid);
			CHECK_EQ(s->done_tid, dispatcher_tid);
		}
	}
	__atomic_store_n(&churn_stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	for (int i = 0; i < CHURN_SUBS; i++)
		CHECK_EQ(slots[i].done, 1);
	printf("e. churn: %ld subscriptions over %d pages, %ld page changes; "
	       "removed by their callback %ld, by the main thread %ld; every "
	       "done ran once\n", total, CHURN_PAGES, churn_changes, by_callback,
	       by_main);
	CHECK(by_callback > 0);
	REQUIRE(munmap(area, CHURN_PAGES * t_page) == 0);
}

/* ---- f. done and the dispatcher's own windows ---- */

static struct {
	struct t_dev *other;	/* on mm2: removed from the callback */
	struct t_dev *watcher;	/* on mm1, over the discarded page */
	int removed;		/* the callback's remove_deferred() */
	int done;		/* atomic */
	int watcher_try;	/* try_begin(watcher) in done */
	int watcher_timeout;	/* read_begin_timeout(watcher, 1) in done */
	int fired;
} f;

static void f_done(struct uhmm_interval_notifier *sub)
{
	unsigned long seq;

	(void)sub;
	f.watcher_try = uhmm_interval_read_try_begin(&f.watcher->sub, &seq);
	f.watcher_timeout =
		uhmm_interval_read_begin_timeout(&f.watcher->sub, 1, &seq);
	__atomic_add_fetch(&f.done, 1, __ATOMIC_RELEASE);
}

static bool f_hook(struct t_dev *dev, const struct uhmm_notifier_range *r)
{
	(void)dev;
	if (r->event == UHMM_EVENT_CLEAR && !f.fired) {
		f.fired = 1;
		f.removed = uhmm_interval_notifier_remove_deferred(
			&f.other->sub, f_done);
	}
	return true;
}

static void done_outside_windows(struct uhmm_mm *mm)
{
	struct t_dev trigger = { .hook = f_hook }, watcher = { 0 },
		     other = { 0 };
	struct uhmm_mm *mm2 = t_open();
	char *p = t_map(1), *q = t_map(1);

	f.other = &other;
	f.watcher = &watcher;
	f.removed = 1;
	REQUIRE(t_dev_insert(&trigger, mm, (unsigned long)p, t_page) == 0);
	REQUIRE(t_dev_insert(&watcher, mm, (unsigned long)p, t_page) == 0);
	REQUIRE(t_dev_insert(&other, mm2, (unsigned long)q, t_page) == 0);
	/* A discard's window stays open until the zap is over; other's
	 * mm does not collide, so its removal takes effect at once. */
	REQUIRE(madvise(p, t_page, MADV_DONTNEED) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(f.removed, 0);
	CHECK_EQ(f.done, 1);
	printf("f. in a done triggered from a discard's callback: try_begin "
	       "of a subscription that discard hit %d, read_begin_timeout "
	       "%d\n", f.watcher_try, f.watcher_timeout);
	if (f.watcher_try == -EAGAIN || f.watcher_timeout == -ETIMEDOUT) {
		fprintf(stderr, "f: done ran while a window the dispatcher "
			"holds open was still open (the discard's): a "
			"read_begin() or remove() in done would wait for the "
			"thread running done, forever\n");
		t_failed = 1;
	}
	REQUIRE(uhmm_interval_notifier_remove(&trigger.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&watcher.sub) == 0);
	REQUIRE(uhmm_mm_close(mm2) == 0);
	REQUIRE(munmap(p, t_page) == 0);
	REQUIRE(munmap(q, t_page) == 0);
}

/* ---- g. sync after a removal ---- */

static int g_done;		/* atomic */

static void g_done_fn(struct uhmm_interval_notifier *sub)
{
	(void)sub;
	__atomic_add_fetch(&g_done, 1, __ATOMIC_RELEASE);
}

static void sync_waits_for_done(struct uhmm_mm *mm)
{
	int rounds = (int)(SYNC_ROUNDS * t_scale()), late = 0;
	char *p = t_map(1);

	for (int i = 0; i < rounds; i++) {
		struct t_dev s = { 0 };

		REQUIRE(t_dev_insert(&s, mm, (unsigned long)p, t_page) == 0);
		REQUIRE(uhmm_interval_notifier_remove_deferred(&s.sub,
							       g_done_fn) == 0);
		REQUIRE(uhmm_mm_sync(mm) == 0);
		if (__atomic_load_n(&g_done, __ATOMIC_ACQUIRE) != i + 1)
			late++;
		/* s leaves scope: its done must have run. */
		while (__atomic_load_n(&g_done, __ATOMIC_ACQUIRE) != i + 1)
			sched_yield();
	}
	if (late)
		fprintf(stderr, "g: uhmm_mm_sync() returned before done in %d "
			"of %d rounds\n", late, rounds);
	CHECK_EQ(late, 0);
	printf("g. %d removals, each followed by uhmm_mm_sync(): done had run "
	       "in every one\n", rounds);
	REQUIRE(munmap(p, t_page) == 0);
}

int main(void)
{
	struct uhmm_mm *mm;

	main_tid = t_gettid();
	sem_init(&L, 0, 1);
	sem_init(&x_entered, 0, 0);
	errors();
	no_monitor();

	mm = t_open();
	removes_itself(mm);
	under_callback_lock(mm);
	sync_waits_for_done(mm);
	churn(mm);
	done_outside_windows(mm);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
