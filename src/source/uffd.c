/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd event source.
 *
 * One userfaultfd per process, opened user-mode-only with the UNMAP, REMOVE
 * and REMAP events and asynchronous write protection. Mappings are
 * registered in write-protect mode and never write-protected, so no page
 * fault is ever delivered: the file descriptor only reports changes to the
 * address space. Two threads, started with the first monitored mm, turn
 * each event into a blockable invalidation window on every attached mm: a
 * reader that only reads, and a dispatcher that runs the windows (why two:
 * source.h).
 *
 * Arming. The kernel reports only what happens to registered mappings, and
 * registers only mappings that exist when asked. So:
 *   - inserting a subscription registers every mapping in its range, whole
 *     (registering part of a mapping would split it; a heap split into
 *     thousands of VMAs can exhaust vm.max_map_count);
 *   - a mapping is unregistered when no subscription overlaps it any more;
 *   - mappings created later inside a subscribed range are not registered:
 *     the reader re-arms after every UNMAP/REMAP it sees there (that covers
 *     mmap(MAP_FIXED) over a range), and uhmm_interval_notifier_arm() - or
 *     uhmm_range_fault() - re-arms before a device trusts the range again
 *     (that covers a new mmap into a hole, which sends no event at all).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "core/internal.h"
#include "core/options.h"
#include "prim/prim.h"
#include "source/source.h"

#define arm_sub_of(n) \
	((struct uhmm_interval_notifier *)((char *)(n) - \
		offsetof(struct uhmm_interval_notifier, arm_node)))

static pthread_mutex_t source_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uhmm_source *the_source;	/* [source_lock] this process's */
static struct uhmm_source *parent_source; /* a fork child keeps it reachable */
static __thread bool on_dispatcher;

/* ---- arming ---- */

/*
 * Each armed subscription has a node in src->arms covering its range and
 * every mapping registered on its behalf (the "hull"): mappings are
 * registered whole, and may later be split, so a subscription over two
 * pages can hold a registration far wider than itself. A mapping stays
 * registered while any node overlaps it; removing a node re-examines
 * every mapping under its hull. Under arm_lock throughout.
 */

static bool armed_overlap(struct uhmm_source *src, unsigned long start,
			  unsigned long end)
{
	return uhmm_itree_first(&src->arms, start, end - 1) != NULL;
}

/* Grow sub's node to cover [start, end). */
static void hull_extend(struct uhmm_source *src,
			struct uhmm_interval_notifier *sub, unsigned long start,
			unsigned long end)
{
	struct uhmm_itree_node *n = &sub->arm_node;

	if (start >= n->start && end - 1 <= n->last)
		return;
	uhmm_itree_remove(&src->arms, n);
	if (start < n->start)
		n->start = start;
	if (end - 1 > n->last)
		n->last = end - 1;
	uhmm_itree_insert(&src->arms, n);
}

/*
 * Register every mapping that overlaps [start, end) for sub, whole. A
 * mapping can change between the lookup and the registration; the kernel
 * then answers EINVAL, and the lookup is retried to tell a race from a
 * mapping that cannot be registered.
 */
static int arm_vmas(struct uhmm_source *src, struct uhmm_interval_notifier *sub,
		    unsigned long start, unsigned long end)
{
	unsigned long addr = start;
	int races = 0;

	while (addr < end) {
		struct uhmm_vma vma, again;
		int ret;

		ret = uhmm_prim_vma_find(addr, &vma);
		if (ret == -ENOENT || (ret == 0 && vma.start >= end))
			return 0;
		if (ret)
			return ret;
		/* In the hull before the kernel registers it, so a failure
		 * half way still gets it unregistered. */
		hull_extend(src, sub, vma.start, vma.end);
		ret = uhmm_prim_uffd_register(src->uffd, vma.start,
					      vma.end - vma.start);
		if (ret == -EINVAL) {
			if (uhmm_prim_vma_find(addr, &again) == 0 &&
			    again.start == vma.start && again.end == vma.end)
				return -EOPNOTSUPP;
			if (++races < 16)
				continue;
		}
		if (ret)
			return ret;
		addr = vma.end;
	}
	return 0;
}

/* Unregister the mappings overlapping [start, end] that no node overlaps. */
static void disarm_vmas(struct uhmm_source *src, unsigned long start,
			unsigned long last)
{
	unsigned long addr = start;
	struct uhmm_vma vma;

	while (addr <= last && uhmm_prim_vma_find(addr, &vma) == 0 &&
	       vma.start <= last) {
		/* Another uffd's mapping refuses with EINVAL: not ours. */
		if (!armed_overlap(src, vma.start, vma.end))
			uhmm_prim_uffd_unregister(src->uffd, vma.start,
						  vma.end - vma.start);
		addr = vma.end;
	}
}

static void disarm_locked(struct uhmm_source *src,
			  struct uhmm_interval_notifier *sub)
{
	if (!sub->armed)
		return;
	uhmm_itree_remove(&src->arms, &sub->arm_node);
	sub->armed = 0;
	disarm_vmas(src, sub->arm_node.start, sub->arm_node.last);
}

int uhmm_source_arm(struct uhmm_source *src, struct uhmm_interval_notifier *sub)
{
	int ret;

	pthread_mutex_lock(&src->arm_lock);
	sub->arm_node.start = sub->node.start;
	sub->arm_node.last = sub->node.last;
	uhmm_itree_insert(&src->arms, &sub->arm_node);
	sub->armed = 1;
	ret = arm_vmas(src, sub, sub->node.start, uhmm_sub_end(sub));
	if (ret)
		disarm_locked(src, sub);
	pthread_mutex_unlock(&src->arm_lock);
	return ret;
}

int uhmm_source_rearm(struct uhmm_source *src, struct uhmm_interval_notifier *sub,
		      unsigned long start, unsigned long end)
{
	int ret = 0;

	pthread_mutex_lock(&src->arm_lock);
	/* Not armed: its mm was released, nothing is watched for it. */
	if (sub->armed)
		ret = arm_vmas(src, sub, start, end);
	pthread_mutex_unlock(&src->arm_lock);
	return ret;
}

void uhmm_source_disarm(struct uhmm_source *src,
			struct uhmm_interval_notifier *sub)
{
	pthread_mutex_lock(&src->arm_lock);
	disarm_locked(src, sub);
	pthread_mutex_unlock(&src->arm_lock);
}

/*
 * After an UNMAP or REMAP over [start, end): a new mapping may have taken
 * the place of the old one (mmap(MAP_FIXED)), unregistered. Register it
 * where a subscription's range covers it, before the in-flight mark comes
 * down. Nodes grow while registering, so the overlapping subscriptions
 * are collected first.
 */
static void rearm_after_event(struct uhmm_source *src, unsigned long start,
			      unsigned long end)
{
	struct uhmm_interval_notifier **subs = NULL;
	struct uhmm_itree_node *n;
	size_t count = 0, cap = 0;

	pthread_mutex_lock(&src->arm_lock);
	for (n = uhmm_itree_first(&src->arms, start, end - 1); n;
	     n = uhmm_itree_next(n, start, end - 1)) {
		struct uhmm_interval_notifier *sub = arm_sub_of(n);

		/* Only the subscription's own range asks for arming. */
		if (sub->node.start >= end || sub->node.last < start)
			continue;
		if (count == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			void *p = realloc(subs, ncap * sizeof(*subs));

			if (!p) {
				__atomic_fetch_add(&src->arm_errors, 1,
						   __ATOMIC_RELAXED);
				break;
			}
			subs = p;
			cap = ncap;
		}
		subs[count++] = sub;
	}
	for (size_t i = 0; i < count; i++) {
		struct uhmm_interval_notifier *sub = subs[i];
		unsigned long s = sub->node.start > start ? sub->node.start
							  : start;
		unsigned long e = sub->node.last < end - 1 ? sub->node.last + 1
							   : end;

		if (arm_vmas(src, sub, s, e))
			__atomic_fetch_add(&src->arm_errors, 1,
					   __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&src->arm_lock);
	free(subs);
}

/* After a REMAP to [start, end): the moved mapping stays registered; keep
 * it so only where a subscription needs it. */
static void disarm_after_move(struct uhmm_source *src, unsigned long start,
			      unsigned long end)
{
	pthread_mutex_lock(&src->arm_lock);
	disarm_vmas(src, start, end - 1);
	pthread_mutex_unlock(&src->arm_lock);
}

/* ---- the dispatcher ---- */

/*
 * The next attached mm after prev (the first if prev is NULL) that still
 * has users, with a user reference taken, so it is neither released nor
 * unlinked while its windows run.
 */
static struct uhmm_mm *next_live_mm(struct uhmm_source *src,
				    struct uhmm_mm *prev)
{
	struct uhmm_mm *mm;

	pthread_mutex_lock(&src->mms_lock);
	mm = prev ? prev->source_next : src->mms;
	while (mm && uhmm_mm_get(mm))
		mm = mm->source_next;
	pthread_mutex_unlock(&src->mms_lock);
	return mm;
}

/* Decode an event; false for one uhmm did not ask for. */
static bool decode(const struct uffd_msg *msg, unsigned long *start,
		   unsigned long *end, enum uhmm_event *event)
{
	switch (msg->event) {
	case UFFD_EVENT_UNMAP:
		*start = msg->arg.remove.start;
		*end = msg->arg.remove.end;
		*event = UHMM_EVENT_UNMAP;
		break;
	case UFFD_EVENT_REMOVE:
		*start = msg->arg.remove.start;
		*end = msg->arg.remove.end;
		*event = UHMM_EVENT_CLEAR;
		break;
	case UFFD_EVENT_REMAP:
		*start = msg->arg.remap.from;
		*end = msg->arg.remap.from + msg->arg.remap.len;
		*event = UHMM_EVENT_REMAP;
		break;
	default:
		/* WP_ASYNC: no fault events; nothing else was asked for. */
		return false;
	}
	return *end > *start;
}

/*
 * Run one window per event on every attached mm, then fix the armed set:
 * mappings that replaced unmapped ones, and mappings moved by mremap.
 * Nothing here allocates, so no event is ever dropped for lack of memory.
 */
static void dispatch_batch(struct uhmm_source *src, struct uhmm_batch *b)
{
	unsigned long start, end;
	enum uhmm_event event;
	struct uhmm_mm *mm, *next;

	for (mm = next_live_mm(src, NULL); mm; mm = next) {
		for (size_t i = 0; i < b->n; i++) {
			if (!decode(&b->msgs[i], &start, &end, &event))
				continue;
			if (uhmm_mm_invalidate(mm, start, end, event) ==
			    -EPROTO)
				__atomic_fetch_add(&src->callback_bugs, 1,
						   __ATOMIC_RELAXED);
		}
		next = next_live_mm(src, mm);
		uhmm_mm_close(mm);
	}

	for (size_t i = 0; i < b->n; i++) {
		const struct uffd_msg *msg = &b->msgs[i];

		if (!decode(msg, &start, &end, &event) ||
		    event == UHMM_EVENT_CLEAR)
			continue;
		rearm_after_event(src, start, end);
		if (event == UHMM_EVENT_REMAP)
			disarm_after_move(src, msg->arg.remap.to,
					  msg->arg.remap.to +
						  msg->arg.remap.len);
	}
	__atomic_fetch_add(&src->events, b->n, __ATOMIC_RELAXED);
}

static void *dispatcher_main(void *arg)
{
	struct uhmm_source *src = arg;

	on_dispatcher = true;
	for (;;) {
		unsigned long ticket, sync_seen;
		struct uhmm_batch *b;

		pthread_mutex_lock(&src->queue_lock);
		while (!src->queue_head)
			pthread_cond_wait(&src->queue_cond, &src->queue_lock);
		b = src->queue_head;
		src->queue_head = b->next;
		if (!src->queue_head)
			src->queue_tail = &src->queue_head;
		pthread_mutex_unlock(&src->queue_lock);

		dispatch_batch(src, b);
		ticket = b->ticket;
		sync_seen = b->sync_seen;
		/* Freed before the batch is reported done: a thread that
		 * waited for it may fork(), and must not catch this one
		 * inside the allocator. */
		free(b);

		pthread_mutex_lock(&src->queue_lock);
		__atomic_store_n(&src->done_ticket, ticket, __ATOMIC_RELEASE);
		src->sync_done = sync_seen;
		pthread_mutex_unlock(&src->queue_lock);
		pthread_cond_broadcast(&src->done_cond);
	}
	return NULL;
}

/* ---- the reader ---- */

static struct uhmm_batch *batch_alloc(void)
{
	struct uhmm_batch *b;

	/* Events cannot be left unread: wait for memory instead. */
	while (!(b = malloc(sizeof(*b))))
		uhmm_prim_wait2(-1, -1, 1);
	b->next = NULL;
	return b;
}

/*
 * The reader runs no user code and frees nothing (free() may trim the
 * heap, an unmap this thread would then wait on forever). After a batch
 * it keeps polling, yielding in between, for UHMM_READER_SPIN_US before
 * it sleeps: the next unmap of a burst then finds the reader awake
 * instead of paying a wake-up (bench/events.c has the figures).
 */
static void *reader_main(void *arg)
{
	struct uhmm_source *src = arg;
	unsigned long long spin_ns =
		(unsigned long long)uhmm_option(UHMM_OPT_READER_SPIN_US) * 1000;
	unsigned long long spin_until = 0;

	for (;;) {
		struct uhmm_batch *b;
		ssize_t n;
		int ready;

		if (spin_until) {
			ready = uhmm_prim_wait2(src->uffd, src->wake_fd, 0);
			if (ready == 0) {
				/* Yield: the unmapping thread may need this
				 * CPU to send the next event. */
				if (uhmm_prim_now_ns() > spin_until)
					spin_until = 0;
				else
					uhmm_prim_yield();
				continue;
			}
		} else {
			ready = uhmm_prim_wait2(src->uffd, src->wake_fd, -1);
		}
		if (ready < 0)
			continue;
		if (ready & 2)
			uhmm_prim_eventfd_drain(src->wake_fd);

		/* The ticket goes up before read(): see source.h. */
		b = batch_alloc();
		pthread_mutex_lock(&src->queue_lock);
		b->sync_seen = src->sync_requested;
		b->ticket = src->read_ticket + 1;
		__atomic_store_n(&src->read_ticket, b->ticket, __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&src->queue_lock);

		n = uhmm_prim_uffd_read(src->uffd, b->msgs, UHMM_BATCH_MSGS);
		b->n = n > 0 ? (size_t)n : 0;

		pthread_mutex_lock(&src->queue_lock);
		*src->queue_tail = b;
		src->queue_tail = &b->next;
		pthread_mutex_unlock(&src->queue_lock);
		pthread_cond_signal(&src->queue_cond);

		if (n > 0 && spin_ns)
			spin_until = uhmm_prim_now_ns() + spin_ns;
	}
	return NULL;
}

void uhmm_source_wait_events_slow(struct uhmm_source *src, unsigned long ticket)
{
	/* The dispatcher cannot wait for the batch it is dispatching. */
	if (on_dispatcher)
		return;
	pthread_mutex_lock(&src->queue_lock);
	while ((long)(src->done_ticket - ticket) < 0)
		pthread_cond_wait(&src->done_cond, &src->queue_lock);
	pthread_mutex_unlock(&src->queue_lock);
}

int uhmm_source_sync(struct uhmm_source *src)
{
	unsigned long ticket;

	if (on_dispatcher)
		return -EDEADLK;
	pthread_mutex_lock(&src->queue_lock);
	ticket = ++src->sync_requested;
	pthread_mutex_unlock(&src->queue_lock);
	uhmm_prim_eventfd_signal(src->wake_fd);

	pthread_mutex_lock(&src->queue_lock);
	while ((long)(src->sync_done - ticket) < 0)
		pthread_cond_wait(&src->done_cond, &src->queue_lock);
	pthread_mutex_unlock(&src->queue_lock);
	return 0;
}

/* ---- the process's source ---- */

static int source_create(struct uhmm_source **srcp)
{
	struct uhmm_source *src;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thread;
	int ret;

	src = calloc(1, sizeof(*src));
	if (!src)
		return -ENOMEM;
	src->uffd = src->wake_fd = -1;
	ret = uhmm_prim_uffd_open(&src->uffd);
	if (!ret)
		ret = uhmm_prim_eventfd(&src->wake_fd);
	if (ret)
		goto fail;
	pthread_mutex_init(&src->queue_lock, NULL);
	pthread_cond_init(&src->queue_cond, NULL);
	pthread_cond_init(&src->done_cond, NULL);
	src->queue_tail = &src->queue_head;
	pthread_mutex_init(&src->mms_lock, NULL);
	pthread_mutex_init(&src->arm_lock, NULL);

	/*
	 * Neither thread takes signals: a handler running on the reader that
	 * unmapped registered memory would wait for the reader itself.
	 */
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&thread, &attr, dispatcher_main, src);
	if (!ret)
		ret = -pthread_create(&thread, &attr, reader_main, src);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	/* A dispatcher without a reader waits forever, harmlessly; the
	 * source is then not published and the next open tries again. */
	if (ret)
		goto fail;
	/*
	 * One full pass before the first open returns: both threads have
	 * started and are idle, so a fork() right after the open does not
	 * catch either of them half way through its start.
	 */
	uhmm_source_sync(src);
	*srcp = src;
	return 0;
fail:
	uhmm_prim_close(src->uffd);
	uhmm_prim_close(src->wake_fd);
	free(src);
	return ret;
}

int uhmm_source_attach(struct uhmm_mm *mm)
{
	struct uhmm_source *src;
	int ret = 0;

	pthread_mutex_lock(&source_lock);
	if (!the_source)
		ret = source_create(&the_source);
	src = the_source;
	pthread_mutex_unlock(&source_lock);
	if (ret)
		return ret;

	pthread_mutex_lock(&src->mms_lock);
	mm->source = src;
	mm->source_next = src->mms;
	src->mms = mm;
	pthread_mutex_unlock(&src->mms_lock);
	return 0;
}

void uhmm_source_detach(struct uhmm_mm *mm)
{
	struct uhmm_source *src = mm->source;
	struct uhmm_itree_node *n;
	struct uhmm_mm **pp;

	pthread_mutex_lock(&src->mms_lock);
	for (pp = &src->mms; *pp; pp = &(*pp)->source_next) {
		if (*pp == mm) {
			*pp = mm->source_next;
			break;
		}
	}
	pthread_mutex_unlock(&src->mms_lock);

	/*
	 * The mm is released: no window will run for its subscriptions, so
	 * nothing needs watching for them. Their removal later finds them
	 * disarmed. Lock order: arm_lock, then mm->lock.
	 */
	pthread_mutex_lock(&src->arm_lock);
	pthread_mutex_lock(&mm->lock);
	for (n = uhmm_itree_first(&mm->itree, 0, ~0UL); n;
	     n = uhmm_itree_next(n, 0, ~0UL)) {
		struct uhmm_interval_notifier *sub =
			(struct uhmm_interval_notifier *)((char *)n -
			offsetof(struct uhmm_interval_notifier, node));

		disarm_locked(src, sub);
	}
	pthread_mutex_unlock(&mm->lock);
	pthread_mutex_unlock(&src->arm_lock);
}

void uhmm_source_after_fork_child(void)
{
	/*
	 * The parent's userfaultfd: reading it here would steal the parent's
	 * events, and its reader thread does not exist in the child. Close
	 * it; the next monitored open creates the child's own source.
	 */
	if (the_source) {
		uhmm_prim_close(the_source->uffd);
		uhmm_prim_close(the_source->wake_fd);
		parent_source = the_source;
		the_source = NULL;
	}
	pthread_mutex_init(&source_lock, NULL);
}
