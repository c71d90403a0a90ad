/* SPDX-License-Identifier: MIT */
/*
 * fork() write-protects the parent's private memory, and uhmm says so.
 *
 * fork() shares every anonymous page of a private writable mapping with
 * the child copy-on-write: the parent's page table entries lose their
 * write permission, and the next write by either process goes to a new
 * page. A device that keeps writing through a translation taken before
 * fork() writes into the page the child now sees too, and the parent's
 * next write moves it away from the device. So the kernel brackets the
 * copy of each such mapping with a protection window (mm/memory.c,
 * copy_page_range()):
 *
 *	is_cow = is_cow_mapping(src_vma->vm_flags);
 *	if (is_cow) {
 *		mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_PAGE,
 *					0, src_mm, addr, end);
 *		mmu_notifier_invalidate_range_start(&range);
 *		...
 *	}
 *	... copy the page tables ...
 *	if (is_cow) {
 *		...
 *		mmu_notifier_invalidate_range_end(&range);
 *	}
 *
 * where is_cow_mapping(flags) is
 * (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE. userfaultfd tells
 * the parent nothing of it, but uhmm sees fork() through pthread_atfork():
 * the prepare handler opens a blockable UHMM_EVENT_PROTECTION window on
 * every live mm over each private writable mapping that overlaps a
 * subscription, and the parent's handler closes them once the copy is
 * done. Shared mappings are not copied on write and hear nothing. A
 * private mapping that fork() does not copy (MADV_DONTFORK) cannot be told
 * from the others and gets a window too: one window too many is safe, one
 * missing is not. In the child the copies are dead: core/notifier.c ends
 * the windows that were open at fork.
 *
 * The mappings are looked up while the application's threads run on, so
 * the prepare handler checks its work with every mm lock held, and keeps
 * those locks across fork() once it holds:
 *
 *  - A subscription inserted after its range was looked at is held off if
 *    it collides with a window of ours (its seq is the mm's: its first
 *    read_begin waits for our windows to close); else its range is looked
 *    at in another round.
 *  - A mapping replaced after it was looked at (mmap(MAP_FIXED) or mremap
 *    of private memory over a shared one) sends an event whose window
 *    hits the subscriptions there. If that window already closed, the mm
 *    seq moved on past the collision we knew of, and the mm is looked at
 *    again. If it did not, the readers it concerns wait for it, and it
 *    cannot close (nor a queued one open) while we hold the mm lock.
 *  - A mapping created in a hole of a subscribed range sends no event at
 *    all: one that another thread creates, faults and commits while fork()
 *    runs is missed (uhmm.h says so). Windows over the holes would catch
 *    it, but would call every subscription of unmapped addresses at every
 *    fork, the explicit mms' included.
 *
 * After FORK_MAX_ROUNDS rounds, and whenever memory or a lookup fails, an
 * mm gets one window over its whole address space instead.
 *
 * All state here is guarded by core/mm.c's all_lock, held from the prepare
 * handler to the parent's or child's: forks are serialised. It is
 * allocated in the prepare handler, which glibc runs before it takes the
 * malloc locks for fork(), and freed in the parent's or child's handler.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "core/internal.h"
#include "prim/prim.h"
#include "source/fork.h"
#include "source/source.h"

#define FORK_MAX_ROUNDS 4
/* Records for this many mms live in static memory, for a malloc failure. */
#define FORK_RESERVE 16
#define WIN_CHUNK 32

/* [start, end), end ~0UL for a range reaching the top. */
struct span {
	unsigned long start, end;
};

/* Sorted by start, merged: no two overlap or touch. */
struct spans {
	struct span *v;
	size_t n, cap;
};

/* Open windows, in chunks: an open window's range never moves. */
struct win_chunk {
	struct win_chunk *next;
	size_t n;
	struct uhmm_notifier_range r[WIN_CHUNK];
};

struct fork_mm {
	struct uhmm_mm *mm;
	bool skip;		/* a fork child's dead copy, or released */
	bool whole;		/* done: a window over everything (or dead) */
	bool failed;		/* out of memory, or a lookup failed */
	unsigned long seq;	/* mm seq when `looked` was last confirmed */
	struct spans looked;	/* subscription ranges whose mappings were
				 * looked up, and windows opened over */
	struct spans todo;	/* ... still to look up */
	struct win_chunk *wins;
	size_t nwins;		/* open in wins */
	struct uhmm_notifier_range whole_range;
	bool whole_open;
};

static struct fork_mm *fmms;	/* [all_lock] */
static size_t nfmms;		/* [all_lock] */
static unsigned int rounds;	/* [all_lock] */
static struct fork_mm reserve[FORK_RESERVE];

/* Append [start, end) to a set built in order of start. */
static int spans_add(struct spans *s, unsigned long start, unsigned long end)
{
	struct span *last = s->n ? &s->v[s->n - 1] : NULL;

	if (last && start <= last->end) {
		if (end > last->end)
			last->end = end;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct span *v = uhmm_realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct span){ start, end };
	return 0;
}

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Merge from into to; from is emptied. */
static int spans_merge(struct spans *to, struct spans *from)
{
	size_t n = to->n + from->n, k = 0;
	struct span *v;

	if (!from->n)
		return 0;
	v = uhmm_malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (to->n)
		memcpy(v, to->v, to->n * sizeof(*v));
	memcpy(v + to->n, from->v, from->n * sizeof(*v));
	qsort(v, n, sizeof(*v), span_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && v[i].start <= v[k - 1].end) {
			if (v[i].end > v[k - 1].end)
				v[k - 1].end = v[i].end;
		} else {
			v[k++] = v[i];
		}
	}
	free(to->v);
	*to = (struct spans){ .v = v, .n = k, .cap = n };
	from->n = 0;
	return 0;
}

static bool spans_contain(const struct spans *s, unsigned long start,
			  unsigned long end)
{
	size_t lo = 0, hi = s->n;

	/* The last span starting at or below start. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].start <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && s->v[lo - 1].end >= end;
}

static void protect_prepare(struct uhmm_mm *mms)
{
	struct uhmm_mm *mm;
	size_t n = 0, i = 0;

	for (mm = mms; mm; mm = mm->all_next)
		n++;
	rounds = 0;
	nfmms = n;
	fmms = n ? uhmm_calloc(n, sizeof(*fmms)) : NULL;
	if (n && !fmms) {
		/*
		 * No memory even for this: a window over everything on every
		 * mm, recorded in static memory. Past FORK_RESERVE mms, wait
		 * for memory rather than miss a window (plain calloc(): the
		 * test hook of core/alloc.h would make this wait forever).
		 */
		if (n <= FORK_RESERVE) {
			fmms = reserve;
			memset(reserve, 0, sizeof(reserve));
		} else {
			while (!(fmms = calloc(n, sizeof(*fmms))))
				uhmm_prim_yield();
		}
		for (i = 0; i < n; i++)
			fmms[i].failed = true;
	}
	for (mm = mms, i = 0; mm; mm = mm->all_next, i++) {
		fmms[i].mm = mm;
		/* A fork child's copy of its parent's mm is not ours to
		 * invalidate: its first touch delivers RELEASE. */
		fmms[i].skip = uhmm_mm_forked(mm) ||
			       !__atomic_load_n(&mm->users, __ATOMIC_ACQUIRE);
	}
}

/*
 * Open a window over [start, end), unless one of the first `old` windows
 * (those of earlier rounds) covers it: a round that looks again after a
 * mapping may have changed finds the same ones. The windows of one round
 * never overlap one another.
 */
static void window_open(struct fork_mm *f, unsigned long start,
			unsigned long end, size_t old)
{
	struct uhmm_notifier_range *r;
	struct win_chunk *c;
	size_t seen = 0;
	int ret;

	/* Chunks are newest first: skip the windows of this round. */
	for (c = f->wins; c && old; c = c->next) {
		for (size_t i = c->n; i-- > 0;) {
			if (seen++ < f->nwins - old)
				continue;
			if (c->r[i].start <= start && c->r[i].end >= end)
				return;
		}
	}
	c = f->wins;
	if (!c || c->n == WIN_CHUNK) {
		c = uhmm_calloc(1, sizeof(*c));
		if (!c) {
			f->failed = true;
			return;
		}
		c->next = f->wins;
		f->wins = c;
	}
	r = &c->r[c->n];
	*r = (struct uhmm_notifier_range){
		.start = start,
		.end = end,
		.event = UHMM_EVENT_PROTECTION,
		.flags = UHMM_RANGE_BLOCKABLE,
	};
	ret = uhmm_mm_invalidate_start(f->mm, r);
	if (ret == 0) {
		c->n++;
		f->nwins++;
	} else {
		/* -ESRCH: the last user closed meanwhile; its RELEASE
		 * supersedes us. */
		f->skip = true;
	}
}

static void window_open_whole(struct fork_mm *f)
{
	f->whole = true;
	f->whole_range = (struct uhmm_notifier_range){
		.start = 0,
		.end = ULONG_MAX,
		.event = UHMM_EVENT_PROTECTION,
		.flags = UHMM_RANGE_BLOCKABLE,
	};
	/* Fails only if the last user closed meanwhile. */
	f->whole_open = !uhmm_mm_invalidate_start(f->mm, &f->whole_range);
}

/*
 * Windows over the private writable mappings overlapping f->todo, whole
 * as the kernel's are: a run of adjacent ones is one window.
 */
static void look_up(struct fork_mm *f)
{
	unsigned long seen = 0, run_start = 0, run_end = 0;
	size_t old = f->nwins;
	int ret = 0;

	for (size_t i = 0; i < f->todo.n && !ret && !f->skip; i++) {
		unsigned long addr = f->todo.v[i].start;
		unsigned long end = f->todo.v[i].end;

		if (addr < seen)
			addr = seen;
		while (addr < end && !f->skip) {
			struct uhmm_vma vma;

			ret = uhmm_prim_vma_find(addr, &vma);
			if (ret == -ENOENT || (!ret && vma.start >= end)) {
				ret = 0;
				break;
			}
			if (!ret && vma.end <= addr)
				ret = -EIO;	/* cannot be: do not trust it */
			if (ret)
				break;
			if (!vma.shared && (vma.prot & PROT_WRITE)) {
				if (run_end != vma.start) {
					if (run_end)
						window_open(f, run_start,
							    run_end, old);
					run_start = vma.start;
				}
				run_end = vma.end;
			}
			addr = seen = vma.end;
		}
	}
	if (run_end && !f->skip)
		window_open(f, run_start, run_end, old);
	/* A lookup that failed leaves us unsure: everything, then. */
	if (ret)
		f->failed = true;
	if (spans_merge(&f->looked, &f->todo))
		f->failed = true;
}

static void protect_open(void)
{
	for (size_t i = 0; i < nfmms; i++) {
		struct fork_mm *f = &fmms[i];

		if (f->skip || f->whole)
			continue;
		/* Subscriptions keep coming, or mappings keep changing. */
		if (f->todo.n && rounds > FORK_MAX_ROUNDS)
			f->failed = true;
		if (!f->failed && f->todo.n)
			look_up(f);
		if (f->failed && !f->skip)
			window_open_whole(f);
	}
}

/* Under mm->lock: note what look_up() must see next; false if anything. */
static bool check_one_locked(struct fork_mm *f)
{
	struct uhmm_mm *mm = f->mm;
	unsigned long seq = mm->invalidate_seq;
	bool held = f->nwins && (seq & 1);
	struct uhmm_itree_node *n;

	uhmm_lock_assert_held(&f->mm->lock);
	if (f->skip || f->whole)
		return true;
	if (mm->dead) {
		/* Released: RELEASE supersedes us. */
		f->skip = true;
		return true;
	}
	if (f->failed)
		return false;
	/*
	 * A collision ended since we looked (an event's window closed), so
	 * a mapping we looked at may have been replaced: look again.
	 */
	if (seq != f->seq && seq != (f->seq | 1))
		f->looked.n = 0;
	f->seq = seq;
	f->todo.n = 0;	/* look_up() emptied it; added to in order below */
	for (n = uhmm_itree_first(&mm->itree, 0, ~0UL); n;
	     n = uhmm_itree_next(n, 0, ~0UL)) {
		struct uhmm_interval_notifier *sub = uhmm_container_of(
			n, struct uhmm_interval_notifier, node);
		unsigned long start = n->start, end = uhmm_sub_end(sub);

		/* Held off by our window until after fork(). */
		if (held && READ_ONCE_ACQ(sub->invalidate_seq) == seq)
			continue;
		if (spans_contain(&f->looked, start, end))
			continue;
		if (spans_add(&f->todo, start, end)) {
			f->failed = true;
			break;
		}
	}
	return !f->failed && !f->todo.n;
}

static bool protect_check(void)
{
	bool done = true;

	for (size_t i = 0; i < nfmms; i++)
		done &= check_one_locked(&fmms[i]);
	rounds++;
	return done;
}

static void fork_mm_free(struct fork_mm *f)
{
	struct win_chunk *c, *next;

	for (c = f->wins; c; c = next) {
		next = c->next;
		free(c);
	}
	free(f->looked.v);
	free(f->todo.v);
}

static void forget(void)
{
	for (size_t i = 0; i < nfmms; i++)
		fork_mm_free(&fmms[i]);
	if (fmms != reserve)
		free(fmms);
	fmms = NULL;
	nfmms = 0;
}

static void protect_parent(void)
{
	for (size_t i = 0; i < nfmms; i++) {
		struct fork_mm *f = &fmms[i];

		for (struct win_chunk *c = f->wins; c; c = c->next)
			for (size_t j = 0; j < c->n; j++)
				uhmm_mm_invalidate_end(f->mm, &c->r[j]);
		if (f->whole_open)
			uhmm_mm_invalidate_end(f->mm, &f->whole_range);
	}
	forget();
}

/* The windows were the parent's, and so are the kernel source and the
 * file descriptors prim/ keeps. */
static void protect_child(void)
{
	forget();
	uhmm_uffd_after_fork_child();
	uhmm_prim_after_fork_child();
}

static const struct uhmm_fork_ops protect_ops = {
	.prepare = protect_prepare,
	.open = protect_open,
	.check = protect_check,
	.parent = protect_parent,
	.child = protect_child,
};

static void protect_register_once(void)
{
	uhmm_fork_ops_register(&protect_ops);
}

void uhmm_fork_protect_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, protect_register_once);
}
