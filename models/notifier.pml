/*
 * notifier.pml - a Promela model of uhmm's notifier protocol, checked with
 * spin by tests/model-spin.sh (ctest model-spin).
 *
 * WHAT IS MODELLED
 *
 * One address space (struct uhmm_mm) fed by the userfaultfd event source,
 * one page of memory, and around it, as concurrent processes:
 *
 *   munmap_thread   the kernel side of munmap(): the page goes (and the
 *                   address may be reused: a new version of the page) with
 *                   mmap_changing raised, then UNMAP is queued and the
 *                   thread sleeps until the event is read
 *   madvise_thread  madvise(MADV_DONTNEED): REMOVE queued, sleep until read,
 *                   mmap_changing lowered, mmap_lock taken for reading and
 *                   the page zapped: the page changes after the read
 *   uffd_reader     uhmm's reader thread: ticket up, read() the queued
 *                   messages (each read wakes its thread), push the batch
 *   dispatcher      uhmm's dispatcher thread: one window per message on
 *                   the mm; UNMAP opens and closes; REMOVE opens and stays
 *                   open until zaps_over() (probe of mmap_changing, then
 *                   the mmap_lock barrier); done_ticket published per batch
 *   dev_A           a device (an rcache) on subscription A, inserted at
 *                   the start and kept: the driver loop read_begin -> take
 *                   a translation of the page -> read_retry under the
 *                   device lock -> commit; then a lookup that hits (wait
 *                   for events in flight, trust the valid registration)
 *   dev_B           a device on subscription B: insert (perhaps into an
 *                   open window: deferred, or colliding), the driver loop
 *                   once or not at all, remove (perhaps while a window
 *                   calls B, perhaps while the insert is still deferred)
 *   parity_monitor  checks the seq parity in every state
 *
 * Both subscriptions and both events cover the page. The callbacks do
 * what README's my_invalidate does: device lock, set_seq, zap the mirror.
 *
 * PROPERTIES (each a named assertion; spin prints the name)
 *
 *   (a) stale_commit   no device commits a translation that goes stale with
 *                      no callback left to zap it: at the commit, for each
 *                      event certain to happen (munmap begun, madvise
 *                      begun) whose change comes after the translation was
 *                      taken (or has not come yet), that event's window
 *                      must not have passed the subscription already.
 *                      (Not "the page did not change since read_begin":
 *                      an UNMAP changes the page before its event exists,
 *                      so a commit of the old page before the callback is
 *                      legal; the callback still to come zaps it.)
 *       final_stale    at the end, what device A holds is what is mapped
 *       hb_missed      invariant 8: a read_begin that starts after munmap
 *                      or madvise returned finds that event's window past
 *                      its subscription
 *       stale_hit      invariant 8, lookup side: a hit that starts after
 *                      munmap/madvise returned never finds the translation
 *                      that event invalidated
 *   (b) cb_after_remove, remove_while_cb: no callback of B starts after, or
 *                      is running when, uhmm_interval_notifier_remove(B)
 *                      returns
 *   (c) PARITY (monitor): mm seq odd => a window is open; a window open
 *                      (all of them hit A) => odd; sub seqs always odd.
 *       rb_open_seq    read_begin returns an odd seq that is not the seq of
 *                      a window still open. (uhmm, like the kernel, keeps
 *                      every sub seq odd, so read_begin always returns an
 *                      odd seq; what it never returns is the current one.)
 *       end of init    every window closed, mm seq even, queues empty
 *   (d) no deadlock: spin's invalid end states (every process must end;
 *                      only the monitor may stop at its end label)
 *
 * ABSTRACTED AWAY
 *
 *   - several mms, the mm lifetime (open/close/release, fork), the interval
 *     tree's shape (two subs on one page; the walk order is A then B),
 *     ranges and arming (the page is always registered: A arms it);
 *   - REMAP events, uhmm_mm_sync() and its sync tickets, the reader's
 *     spinning and batch memory, explicit uhmm_mm_invalidate*() callers,
 *     non-blockable windows (-EAGAIN), read_begin timeouts;
 *   - the grace period is assumed not to expire before the zap (time is
 *     not modelled; GRACE_EXPIRES lets it expire at any moment), and the
 *     discarding thread is not preempted between its mmap_changing
 *     decrement and mmap_read_lock() (KERNEL_GAP lifts that);
 *   - C11 memory ordering: every step is sequentially consistent; each
 *     step is one load, store or critical section of the C code;
 *   - the rcache's own locks and refcounts: a commit is one step under the
 *     device lock, a hit is one step after the wait.
 *
 * Steps merged where the merge loses no ordering (each argued where it is
 * done): the translation is taken in the step read_begin returns (the page
 * is written only by the kernel threads, which read nothing read_begin's
 * return writes and vice versa); the dispatcher's receive is merged with
 * the window's open (only it reads the batch queue, which never fills);
 * the end of B's callback is merged with what follows the walk; the
 * dispatcher's busy poll is a blocking wait (a round that changes nothing
 * is a stutter); the eventfd wake-up is merged with take_pending().
 *
 * CORRESPONDENCE
 *
 *   model                          C
 *   WINDOW_OPEN                    window_open_locked()        core/notifier.c
 *   CALLBACK_A_AND_START_B,        window_call() + ops->invalidate() +
 *   END_CALLBACK_B                 uhmm_interval_set_seq()     core/notifier.c
 *   WINDOW_CLOSE                   window_close(), apply_deferred_locked()
 *                                                              core/notifier.c
 *   read_begin(), RB_RETURN        uhmm_interval_read_begin_until()
 *                                                              core/notifier.c
 *     its first two steps          uhmm_mm_wait_events() (core/internal.h)
 *                                  -> uhmm_clock_wait(), _wait_slow()
 *                                                 core/source.h, core/clock.c
 *   read_cycle() commit step       uhmm_interval_read_retry() under the
 *                                  device lock: rcache.c region_create(),
 *                                  range/fault.c uhmm_range_fault_lock()
 *   insert_B()                     uhmm_interval_notifier_insert()
 *                                                              core/notifier.c
 *   remove_B()                     uhmm_interval_notifier_remove()
 *                                                              core/notifier.c
 *   uffd_reader                    reader_main()               source/uffd.c
 *   dispatcher                     dispatcher_main(), take_pending(),
 *                                  publish() -> uhmm_clock_done()
 *                                                 source/uffd.c, core/clock.c
 *   dispatch()                     dispatch_batch(); UNMAP: uhmm_mm_
 *                                  invalidate(); REMOVE: remove_window_open()
 *                                                              source/uffd.c
 *   poll()                         remove_windows_poll(), zaps_over(),
 *                                  remove_window_close()       source/uffd.c
 *     probe / barrier              uhmm_prim_uffd_changing(),
 *                                  uhmm_prim_mmap_barrier()    prim/uffd.c
 *   dev_A hit                      uhmm_rcache_get(): uhmm_mm_wait_
 *                                  events() then hit()         cache/rcache.c
 *   uffd_reader's ticket step      uhmm_clock_read_start()     core/source.h
 *   munmap_thread                  kernel: userfaultfd_unmap_prep/_complete,
 *                                  userfaultfd_event_wait_completion()
 *   madvise_thread                 kernel: madvise_dontneed_free(),
 *                                  userfaultfd_remove()
 *   globals                        struct uhmm_mm (invalidate_seq, active_
 *                                  invalidate_ranges), struct
 *                                  uhmm_interval_notifier (invalidate_seq,
 *                                  state), struct uhmm_event_clock
 *                                  (read_ticket, done_ticket; core/source.h),
 *                                  struct uffd_source (pending, removes;
 *                                  source/uffd.c)
 *
 * BOUND
 *
 *   8 processes (init, monitor, 2 kernel threads, reader, dispatcher, 2
 *   devices); 2 events (one UNMAP, one REMOVE), at most 2 batches; one
 *   page, two subscriptions, one insert and one remove; each device
 *   commits once (retrying as often as it collides, at most twice).
 *   Configuration NO_DEV_A: no A, so windows can miss every subscription
 *   (the "open, miss" state of notifier.c, and insert's branch for it).
 *
 * VARIANTS (spin -D...): bugs put back, and what catches them
 *
 *   BAD_CLOSE_AT_DISPATCH   REMOVE window closed at dispatch, as with
 *                           UHMM_REMOVE_GRACE_US=0 (what tests/rcache-
 *                           dontneed-race.c, range-dontneed-race.c catch)
 *                                                          stale_commit
 *   BAD_NO_BARRIER          zaps_over() without uhmm_prim_mmap_barrier()
 *                                                          stale_commit
 *   BAD_NO_TICKET_WAIT      read_begin and the rcache hit do not wait for
 *                           events read but not dispatched     hb_missed
 *   BAD_TICKET_AFTER_READ   the reader takes its ticket after read()
 *                                                              hb_missed
 *   BAD_READ_BEGIN_NO_WAIT  read_begin does not wait while the sub's seq is
 *                           the open window's                rb_open_seq
 *     + NO_RB_CHECK         (that check off: the consequence) stale_commit
 *   BAD_INSERT_IDLE_SEQ     insert into an open window does not start out
 *                           colliding (also with NO_DEV_A)  stale_commit
 *   BAD_REMOVE_NO_WAIT      remove does not wait for the windows that may
 *                           be calling the sub             remove_while_cb
 *   BAD_DISPATCHER_WAITS    a callback waits for the events in flight
 *                           (no dispatching test in uhmm_clock_wait_slow())
 *                                                      invalid end state
 *   and kernel behaviours the protocol does not cover:
 *   KERNEL_GAP              README "Known limits", discards (1): preempted
 *                           between the decrement and mmap_read_lock()
 *                                                          stale_commit
 *   GRACE_EXPIRES           Known limits (2): the grace period ends before
 *                           the zap                        stale_commit
 *   KERNEL_MADV_REMOVE      MADV_REMOVE: madvise_remove() punches the hole
 *                           with vfs_fallocate() and mmap_lock dropped, so
 *                           the barrier does not wait for it  stale_commit
 *
 * FIGURES (spin 6.5.2, gcc 12, this machine kind: 2 vCPU, shared), as
 * tests/model-spin.sh runs them:
 *   spin [-DX ...] -a notifier.pml
 *   cc -O1 -DSAFETY -DP_REVERSE -o pan pan.c  (-O0 for all but the good run)
 *   ./pan -m10000 -w22                        (-w20 for all but the good run)
 * Exhaustive search, states stored uncompressed.
 *
 *   run                     stored  transitions  memory  time  first error
 *   (good)                 1694867    5199119   211 MB  4.6 s  none
 *   NO_DEV_A                 63810     175761    15 MB  0.3 s  none
 *   BAD_CLOSE_AT_DISPATCH     1310       2927   8.8 MB  <0.1s  stale_commit
 *   BAD_NO_BARRIER            2058       4972   8.9 MB  <0.1s  stale_commit
 *   BAD_NO_TICKET_WAIT         837       1831   8.7 MB  <0.1s  hb_missed
 *   BAD_TICKET_AFTER_READ     2383       5761   8.9 MB  <0.1s  hb_missed
 *   BAD_READ_BEGIN_NO_WAIT     327        597   8.7 MB  <0.1s  rb_open_seq
 *     + NO_RB_CHECK           3038       7279   9.0 MB  <0.1s  stale_commit
 *   BAD_INSERT_IDLE_SEQ       2893       6967   9.0 MB  <0.1s  stale_commit
 *     + NO_DEV_A               963       1824   8.7 MB  <0.1s  stale_commit
 *   BAD_REMOVE_NO_WAIT         678       1413   8.7 MB  <0.1s  remove_while_cb
 *   BAD_DISPATCHER_WAITS        19         19   8.7 MB  <0.1s  invalid end
 *   KERNEL_GAP                4648      12521   9.2 MB  <0.1s  stale_commit
 *   GRACE_EXPIRES             4646      12518   9.2 MB  <0.1s  stale_commit
 *   KERNEL_MADV_REMOVE        2058       4972   8.9 MB  <0.1s  stale_commit
 *   (memory: pan's "total actual memory usage", hash table included;
 *   time: pan's elapsed time)
 *
 *   The good model: state vector 128 bytes, depth 110, 3.5 s of CPU
 *   (up to 26 s elapsed when the 2 CPUs are busy with builds). With
 *   -DCOLLAPSE it needs half the memory and 70% more time; not needed.
 *   The whole script (15 spin + cc + pan runs): about 21 s of CPU,
 *   compiling pan.c taking most of it; 22 s elapsed on a quiet machine,
 *   50-85 s on a loaded one.
 *
 *   Statements never executed in the good run (spin's "unreached"): the
 *   apply-deferred branch of the close of an UNMAP window that follows a
 *   REMOVE window in the same batch, and poll's close of a window that is
 *   not the last - both impossible: the dispatcher runs UNMAP windows to
 *   their end and REMOVE windows are the only ones left open - and insert's
 *   branch for an open window that missed, which NO_DEV_A runs.
 */

/* ------------------------------------------------------------------ */
/* Constants                                                          */
/* ------------------------------------------------------------------ */

#define NEV		2	/* kernel events in a run: one UNMAP, one REMOVE */
#define EV_UNMAP	1	/* message codes (uffd queue, batches); 0: none */
#define EV_REMOVE	2
#define E_UNMAP		0	/* ghost index of an event: its code - 1 */
#define E_REMOVE	1
#define SUB_A		0	/* subscription / device index */
#define SUB_B		1

/* the enum in src/core/internal.h */
#define UNLINKED	0	/* UHMM_SUB_UNLINKED */
#define LINKED		1	/* UHMM_SUB_LINKED */
#define DEF_INSERT	2	/* UHMM_SUB_DEFERRED_INSERT */
#define DEF_REMOVE	3	/* UHMM_SUB_DEFERRED_REMOVE */

#define ODD(x)		(((x) % 2) == 1)
#define IN_TREE(x)	(st[x] == LINKED || st[x] == DEF_REMOVE)

/* ------------------------------------------------------------------ */
/* State                                                              */
/* ------------------------------------------------------------------ */

/* struct uhmm_mm (src/core/internal.h) */
byte mm_seq = 2;		/* invalidate_seq, UHMM_SEQ_INIT */
byte nactive = 0;		/* active_invalidate_ranges */
/* struct uhmm_interval_notifier A and B. A was inserted while idle
 * (seq = UHMM_SEQ_INIT - 1; init links it) and stays; dev_B inserts and
 * removes B. */
byte seq[2] = 1;		/* sub->invalidate_seq */
byte st[2] = UNLINKED;		/* sub->state */

/* struct uhmm_event_clock (src/core/source.h), struct uffd_source
 * (src/source/uffd.c) and the kernel's userfaultfd ctx */
chan uffdq = [NEV] of { byte };			/* events queued, unread */
chan pending = [NEV] of { byte, byte, byte };	/* batches: ticket, 2 msgs */
byte read_ticket = 0;
byte done_ticket = 0;
byte mmap_changing = 0;		/* ctx->mmap_changing */
byte mm_readers = 0;		/* mmap_lock held for reading */
bit rd[2];			/* event e was read: its thread is woken */

/* the memory, and the devices' mirrors of it */
byte page = 1;			/* version of what is mapped at the page */
bit mvalid[2];			/* device X holds a committed translation */
byte mver[2];			/* ... of this version of the page */

/* ghosts: bookkeeping for the properties, nothing in C */
bit gen[2];		/* event e is certain: its syscall has begun it */
byte chg[2];		/* version of the page after e's change, 0: not yet */
bit passed[4];		/* [e*2+X]: e's window called X, or opened with X
			 * out of the tree: no callback of e for X is to come */
bit retd[2];		/* e's syscall (munmap, madvise) has returned */
bit cb_running_B;	/* a callback of B runs */
bit removed_B;		/* uhmm_interval_notifier_remove(B) returned */
byte finished = 0;	/* terminated processes, for the final check */

/* Named assertions: each is set and asserted in one atomic step, so it is
 * 0 in every stored state. spin prints the name of the one violated. */
bit stale_commit;	/* (a) */
bit stale_hit;		/* (a) lookup side, invariant 8 */
bit hb_missed;		/* (a) read_begin side, invariant 8 */
bit final_stale;	/* (a) at the end */
bit cb_after_remove;	/* (b) */
bit remove_while_cb;	/* (b) */
bit rb_open_seq;	/* (c) */

/* (c) in every state. The mm seq is odd only while a window is open; A
 * lies in every window's range and is always in the tree, so every open
 * window hits it: then the seq is odd. Sub seqs are odd once inserted. */
#ifdef NO_DEV_A
/* without A a window can miss: the seq is then even while it is open */
#define PARITY	((!ODD(mm_seq) || nactive > 0) && \
		 (st[SUB_B] == UNLINKED || ODD(seq[SUB_B])))
#define NPROC	5
#else
#define PARITY	((!ODD(mm_seq) || nactive > 0) && \
		 (nactive == 0 || ODD(mm_seq)) && \
		 ODD(seq[SUB_A]) && (st[SUB_B] == UNLINKED || ODD(seq[SUB_B])))
#define NPROC	6
#endif

/* (a) The translation of version v, committed by device X, goes stale -
 * event e is about to change the page, or has changed it since v was
 * taken - while e's window has already passed X: nothing will zap it. */
#define PREDATES(e, v)	(gen[e] && (chg[e] == 0 || (v) < chg[e]))
#define STALE(X, v)	((PREDATES(E_UNMAP, v) && passed[E_UNMAP * 2 + X]) || \
			 (PREDATES(E_REMOVE, v) && passed[E_REMOVE * 2 + X]))

/* ------------------------------------------------------------------ */
/* The core: src/core/notifier.c                                      */
/* ------------------------------------------------------------------ */

/* uhmm_mm_invalidate_start() -> window_open_locked(), under mm->lock.
 * The tree is frozen while the seq is odd, so the walk's subs are known
 * now (walkA, walkB); a sub out of the tree will not be called by e. */
#define WINDOW_OPEN(e) \
	nactive++; \
	walkA = IN_TREE(SUB_A); \
	walkB = IN_TREE(SUB_B); \
	if \
	:: (walkA || walkB) && !ODD(mm_seq) -> mm_seq++ \
	:: else -> skip \
	fi; \
	wseq = mm_seq; \
	if \
	:: !walkA -> passed[(e) * 2 + SUB_A] = 1 \
	:: else -> skip \
	fi; \
	if \
	:: !walkB -> passed[(e) * 2 + SUB_B] = 1 \
	:: else -> skip \
	fi

/* window_call(), without mm->lock: ops->invalidate() of each sub hit. The
 * callback (README's my_invalidate, rcache.c's) takes the device lock,
 * uhmm_interval_set_seq(sub, cur_seq), zaps the mirror. B's callback is
 * two steps, so that "a callback of B is running" is a state; its second
 * step is merged with what follows the walk (in dispatch()): nothing
 * can tell the two apart, since the window is open throughout. */
#ifdef BAD_DISPATCHER_WAITS
/* the callback calls something that waits for the events in flight
 * (uhmm_rcache_get() on another mm of the same source): without the
 * "dispatching == c" test in uhmm_clock_wait_slow() (core/clock.c) */
#define DISPATCHER_WAIT		done_ticket >= read_ticket;
#else
#define DISPATCHER_WAIT
#endif

#define CALLBACK_A_AND_START_B(e) \
	if \
	:: walkA -> \
		DISPATCHER_WAIT \
		seq[SUB_A] = wseq; \
		mvalid[SUB_A] = 0; \
		passed[(e) * 2 + SUB_A] = 1 \
	:: else -> skip \
	fi; \
	if \
	:: walkB -> \
		cb_after_remove = removed_B; \
		assert(!cb_after_remove); \
		cb_running_B = 1 \
	:: else -> skip \
	fi

#define END_CALLBACK_B(e) \
	if \
	:: walkB -> \
		seq[SUB_B] = wseq; \
		mvalid[SUB_B] = 0; \
		passed[(e) * 2 + SUB_B] = 1; \
		cb_running_B = 0 \
	:: else -> skip \
	fi; \
	walkA = 0; \
	walkB = 0

/* window_close() under mm->lock: the last window of a collision makes the
 * seq even and applies the deferred list (apply_deferred_locked()), then
 * broadcasts mm->wq. */
#define WINDOW_CLOSE \
	nactive--; \
	if \
	:: nactive == 0 && ODD(mm_seq) -> \
		mm_seq++; \
		if \
		:: st[SUB_B] == DEF_INSERT -> st[SUB_B] = LINKED \
		:: st[SUB_B] == DEF_REMOVE -> st[SUB_B] = UNLINKED \
		:: else -> skip \
		fi \
	:: else -> skip \
	fi

#ifdef NO_RB_CHECK	/* to see what follows from BAD_READ_BEGIN_NO_WAIT */
#define RB_OPEN_SEQ_CHECK
#else
#define RB_OPEN_SEQ_CHECK \
	rb_open_seq = (!ODD(s) || s == mm_seq); \
	assert(!rb_open_seq);
#endif

/* What read_begin returns, checked in the step that returns it; then the
 * device takes its translation of the page (tv = page). The take is done
 * in the same step: it reads only the page, which only the kernel
 * threads' steps change, and these touch nothing read_begin's return
 * reads, so the two steps commute and no ordering is lost. */
#define RB_RETURN(X) \
	RB_OPEN_SEQ_CHECK \
	hb_missed = ((snap0 && !passed[E_UNMAP * 2 + X]) || \
		     (snap1 && !passed[E_REMOVE * 2 + X])); \
	assert(!hb_missed); \
	snap0 = 0; \
	snap1 = 0; \
	t = 0; \
	tv = page

/* uhmm_interval_read_begin() = uhmm_interval_read_begin_until(sub, 0):
 * uhmm_mm_wait_events() -> uhmm_clock_wait() (core/source.h: load
 * read_ticket, wait until done_ticket reaches it), load sub seq, load mm
 * seq, and if they are equal wait under mm->lock until the mm seq moves. */
inline read_begin(X)
{
	atomic {
		snap0 = retd[E_UNMAP];	/* ghost: returned before the call? */
		snap1 = retd[E_REMOVE];
		t = read_ticket
	};
#ifdef BAD_NO_TICKET_WAIT
	s = seq[X];
#else
	atomic { done_ticket >= t -> s = seq[X] }
#endif
	if
	:: atomic { s != mm_seq -> RB_RETURN(X) }
	:: atomic { s == mm_seq ->
#ifdef BAD_READ_BEGIN_NO_WAIT
		RB_RETURN(X) }
#else
		skip };
		atomic { mm_seq != s -> RB_RETURN(X) }	/* cond_wait loop */
#endif
	fi
}

/* The driver loop (README "The core API in one page"; rcache.c
 * region_create(); range/fault.c uhmm_range_fault_lock()): read_begin,
 * take a translation (pin / register / snapshot the page), then under
 * the device lock read_retry() and commit, or start again. */
inline read_cycle(X)
{
	do
	:: read_begin(X);		/* and tv = page, see RB_RETURN */
		atomic {
			if
			:: seq[X] != s ->	/* read_retry() true: again */
				s = 0;
				tv = 0
			:: else ->
				stale_commit = STALE(X, tv);
				assert(!stale_commit);
				mvalid[X] = 1;
				mver[X] = tv;
				s = 0;
				tv = 0;
				break
			fi
		}
	od
}

/* uhmm_interval_notifier_insert(), the part under mm->lock (arming the
 * range before it is abstracted away: B's range is A's, registered). */
inline insert_B()
{
	atomic {
		if
		:: nactive > 0 ->
			if
			:: ODD(mm_seq) -> st[SUB_B] = DEF_INSERT
			:: else ->
				mm_seq = mm_seq | 1;
				st[SUB_B] = LINKED
			fi;
#ifdef BAD_INSERT_IDLE_SEQ
			seq[SUB_B] = (ODD(mm_seq) -> mm_seq - 2 : mm_seq - 1)
#else
			seq[SUB_B] = mm_seq
#endif
		:: else ->
			seq[SUB_B] = mm_seq - 1;
			st[SUB_B] = LINKED
		fi
	}
}

/* uhmm_interval_notifier_remove(): unlink or defer under mm->lock, wait
 * while the seq is the one seen (a window may be calling B), return. */
inline remove_B()
{
	atomic {
		if
		:: st[SUB_B] == DEF_INSERT -> st[SUB_B] = UNLINKED
		:: st[SUB_B] == LINKED ->
			if
			:: ODD(mm_seq) ->
				st[SUB_B] = DEF_REMOVE;
				rseq = mm_seq
			:: else ->
				st[SUB_B] = UNLINKED
			fi
		fi;
		if				/* nothing to wait for: */
		:: rseq == 0 -> goto removed	/* return in this step */
		:: else -> skip
		fi
	};
	atomic {
#ifdef BAD_REMOVE_NO_WAIT
		true ->
#else
		mm_seq != rseq ->		/* cond_wait loop */
#endif
removed:
		remove_while_cb = cb_running_B;
		assert(!remove_while_cb);
		removed_B = 1;
		rseq = 0;
		finished++			/* dev_B's end */
	}
}

/* ------------------------------------------------------------------ */
/* The kernel                                                         */
/* ------------------------------------------------------------------ */

/* munmap (mm/vma.c, fs/userfaultfd.c userfaultfd_unmap_prep/_complete):
 * mmap_changing++ and the pages go, under the mmap write lock; the lock
 * is dropped, UNMAP queued, the thread sleeps until it is read
 * (userfaultfd_event_wait_completion() ends with mmap_changing--). The
 * address can be reused before the event is queued: a translation taken
 * then takes the new version. */
proctype munmap_thread()
{
	atomic {
		mmap_changing++;
		page++;
		chg[E_UNMAP] = page;
		gen[E_UNMAP] = 1
	};
	uffdq ! EV_UNMAP;
	atomic {
		rd[E_UNMAP] ->			/* woken by the read */
		mmap_changing--;
		retd[E_UNMAP] = 1;
		finished++
	}
}

/* madvise(MADV_DONTNEED) (mm/madvise.c madvise_dontneed_free(),
 * userfaultfd_remove()): mmap_changing++ under the mmap read lock, lock
 * dropped, REMOVE queued, sleep until read, mmap_changing--; then
 * mmap_read_lock() again and zap: the page changes only now. */
proctype madvise_thread()
{
	atomic {
		mmap_changing++;
		gen[E_REMOVE] = 1;
		uffdq ! EV_REMOVE
	};
#if defined(KERNEL_MADV_REMOVE)
	/* MADV_REMOVE (madvise_remove()): the hole is punched by
	 * vfs_fallocate() with mmap_lock dropped, not taken again */
	atomic { rd[E_REMOVE] -> mmap_changing-- };
	atomic {
		page++;			/* the punch */
		chg[E_REMOVE] = page;
		retd[E_REMOVE] = 1;
		finished++
	}
#else
#if defined(KERNEL_GAP)
	atomic { rd[E_REMOVE] -> mmap_changing-- };
	mm_readers++;			/* README "Known limits", discards (1) */
#else
	atomic { rd[E_REMOVE] -> mmap_changing--; mm_readers++ };
#endif
	atomic {
		page++;			/* the zap, under mmap_lock */
		chg[E_REMOVE] = page;
		mm_readers--;
		retd[E_REMOVE] = 1;
		finished++
	}
#endif
}

/* ------------------------------------------------------------------ */
/* The event source: src/source/uffd.c                                */
/* ------------------------------------------------------------------ */

/* reader_main(): poll; uhmm_clock_read_start() puts read_ticket up
 * *before* read(); read() takes the messages queued one by one, each
 * waking its thread (fs/userfaultfd.c userfaultfd_ctx_read());
 * stack_push() the batch, signal the dispatcher. */
proctype uffd_reader()
{
	byte bt, e1, e2, nread;

	do
	:: atomic {
		nread < NEV && len(uffdq) > 0 ->	/* poll: readable */
#ifndef BAD_TICKET_AFTER_READ
		read_ticket++;
		bt = read_ticket
#else
		skip
#endif
	   };
		atomic { uffdq ? e1; rd[e1 - 1] = 1; nread++ };
		atomic {
			if
			:: len(uffdq) > 0 -> uffdq ? e2; rd[e2 - 1] = 1; nread++
			:: else -> e2 = 0
			fi
		};
#ifdef BAD_TICKET_AFTER_READ
		atomic { read_ticket++; bt = read_ticket };
#endif
		atomic { pending ! bt, e1, e2; bt = 0; e1 = 0; e2 = 0 }
	:: atomic { nread == NEV -> finished++ };
		break				/* the model's end */
	od
}

/* dispatch_batch() for one message, after take_pending(). The window opens
 * (mm->lock, atomic with the receive: nobody else sees pending's head);
 * UNMAP is a whole uhmm_mm_invalidate(); REMOVE is remove_window_open():
 * the window is started and kept on src->removes (grace 0: closed now). */
inline dispatch(ev)
{
	atomic { CALLBACK_A_AND_START_B((ev) - 1) };
	atomic {
		END_CALLBACK_B((ev) - 1);
		if
		:: (ev) == EV_UNMAP -> WINDOW_CLOSE	/* uhmm_mm_invalidate_end() */
		:: (ev) == EV_REMOVE ->
#ifdef BAD_CLOSE_AT_DISPATCH
			WINDOW_CLOSE
#else
			removes = 1
#endif
		fi
	}
}

/* remove_windows_poll(): zaps_over() = uhmm_prim_uffd_changing() == 0
 * (UFFDIO_COPY probe of mmap_changing) && uhmm_prim_mmap_barrier()
 * (mprotect: mmap_lock for writing, so it waits for zaps in progress);
 * then remove_window_close() -> uhmm_mm_invalidate_end(). When the probe
 * fails the C dispatcher goes round again (yield, or 20 us waits), taking
 * what is pending and probing again; a round in which the probe fails and
 * no batch came changes nothing, so the model blocks until the probe can
 * succeed or a batch is pending, which it takes (take_pending()). */
inline poll()
{
	if
	:: atomic { mmap_changing == 0 -> zapped = 1 };	/* probe: 0 */
		atomic {
#ifdef BAD_NO_BARRIER
			true ->
#else
			mm_readers == 0 ->		/* barrier */
#endif
			WINDOW_CLOSE;
			removes = 0;
			zapped = 0
		}
	:: atomic {
		mmap_changing != 0 && len(pending) > 0 ->
		n = len(pending)			/* take_pending() */
	   }
#ifdef GRACE_EXPIRES
	:: atomic {
		mmap_changing != 0 ->		/* now >= rw->deadline_ns */
		WINDOW_CLOSE;
		removes = 0
	   }
#endif
	fi
}

/* dispatcher_main(): take_pending() grabs the batches pushed so far,
 * dispatches each and publish()es its ticket (done_ticket); then polls the
 * open REMOVE windows; sleeps on the eventfd when none is open, or else
 * goes round again. The eventfd wake-up and the take_pending() after it
 * are one step: nothing the dispatcher does separates them, so a later
 * wake-up takes whatever a later one would. */
proctype dispatcher()
{
	byte n, bt, e1, e2, ndisp, wseq;
	bit walkA, walkB, removes, zapped;

	atomic { n = len(pending) };		/* take_pending() */
	do
	:: atomic {
		n > 0 ->
		pending ? bt, e1, e2;
		ndisp++;
		WINDOW_OPEN(e1 - 1)
	   };
		dispatch(e1);
		if
		:: atomic {
			e2 != 0 ->
			ndisp++;
			WINDOW_OPEN(e2 - 1)
		   };
			dispatch(e2)
		:: e2 == 0
		fi;
		atomic {			/* publish(): uhmm_clock_done() */
			done_ticket = bt;
			n--;
			bt = 0;
			e1 = 0;
			e2 = 0
		}
	:: n == 0 ->
		if
		:: removes -> poll()
		:: atomic {
			!removes && ndisp < NEV && len(pending) > 0 ->
			n = len(pending)	/* eventfd, take_pending() */
		   }
		:: atomic { !removes && ndisp == NEV -> finished++ };
			break			/* the model's end */
		fi
	od
}

/* ------------------------------------------------------------------ */
/* The devices                                                        */
/* ------------------------------------------------------------------ */

/* Device A, a registration cache: a miss (the driver loop on sub A),
 * then a hit: uhmm_rcache_get() waits for the events in flight
 * (uhmm_mm_wait_events()) and trusts a valid registration. */
proctype dev_A()
{
	byte t, s, tv;
	bit snap0, snap1;

	read_cycle(SUB_A);
	atomic {
		snap0 = retd[E_UNMAP];
		snap1 = retd[E_REMOVE];
		t = read_ticket
	};
	atomic {
#ifndef BAD_NO_TICKET_WAIT
		done_ticket >= t ->
#endif
		stale_hit = (mvalid[SUB_A] &&
			     ((snap0 && mver[SUB_A] < chg[E_UNMAP]) ||
			      (snap1 && mver[SUB_A] < chg[E_REMOVE])));
		assert(!stale_hit);
		finished++
	}
}

/* Device B: inserts its subscription (into an open window, maybe),
 * reads once or not at all, removes it (while a window calls it, maybe). */
proctype dev_B()
{
	byte t, s, tv, rseq;
	bit snap0, snap1;

	insert_B();
	if
	:: read_cycle(SUB_B)
	:: skip
	fi;
	remove_B()
}

/* (c) in every state */
proctype parity_monitor()
{
end:	atomic { !PARITY -> assert(PARITY) }
}

init
{
	atomic {
#ifndef NO_DEV_A
		st[SUB_A] = LINKED;
#endif
		run parity_monitor();
		run munmap_thread();
		run madvise_thread();
		run uffd_reader();
		run dispatcher();
#ifndef NO_DEV_A
		run dev_A();
#endif
		run dev_B()
	};
	/* (a), (c) at the end: every event dispatched, every window closed,
	 * what device A holds is what is mapped. */
	(finished == NPROC);
	final_stale = (mvalid[SUB_A] && mver[SUB_A] != page);
	assert(!final_stale);
	assert(nactive == 0 && !ODD(mm_seq) && len(uffdq) == 0 &&
	       len(pending) == 0)
}
