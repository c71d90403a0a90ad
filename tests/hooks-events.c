/* SPDX-License-Identifier: MIT */
/*
 * libuhmm_hooks (linked in): each hooked call is reported before it
 * happens, in the calling thread, while the memory is still as it was;
 * mprotect() and shmdt(), which the kernel never reports, are reported;
 * what a call leaves or creates in a subscribed range is watched again.
 * A raw syscall() is not hooked and is still reported by the kernel, on
 * uhmm's dispatcher thread, after the fact. A callback that unmaps other
 * registered memory does not deadlock; nor does a call before uhmm is in
 * use, nor one in a fork child.
 *
 * "Still as it was" is read in the callback: the mapping's permissions in
 * /proc/self/maps, and the first byte of a page that is being discarded
 * or replaced.
 */
#include <pthread.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "events.h"

#define MARK 0x5a

struct sub {
	struct uhmm_interval_notifier n;
	char *addr;
	int calls;
	enum uhmm_event event;
	bool same_thread;	/* ran in the thread that made the change */
	char perms[5];		/* of addr's mapping, as the callback saw it */
	int first_byte;		/* addr[0] if readable then, else -1 */
	char *unmap_too;	/* munmap() this from the callback */
};

static pthread_t main_thread;

/* addr's mapping's permissions ("rw-p"), or "" if it is unmapped. */
static void perms_of(const void *addr, char out[5])
{
	unsigned long a = (unsigned long)addr, s, e;
	char line[512], p[5];
	FILE *f = fopen("/proc/self/maps", "r");

	out[0] = 0;
	REQUIRE(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) == 3 && a >= s &&
		    a < e) {
			memcpy(out, p, 5);
			break;
		}
	}
	fclose(f);
}

static bool cb(struct uhmm_interval_notifier *n,
	       const struct uhmm_notifier_range *range, unsigned long seq)
{
	struct sub *s = (struct sub *)n;	/* its first member */

	(void)range;
	uhmm_interval_set_seq(n, seq);
	s->calls++;
	s->event = range->event;
	s->same_thread = pthread_equal(pthread_self(), main_thread);
	perms_of(s->addr, s->perms);
	s->first_byte = s->perms[0] == 'r' ? (unsigned char)s->addr[0] : -1;
	if (s->unmap_too) {
		CHECK_EQ(munmap(s->unmap_too, t_page), 0);
		s->unmap_too = NULL;
	}
	return true;
}

static const struct uhmm_interval_notifier_ops ops = { .invalidate = cb };

static char *map_page(void)
{
	char *p = mmap(NULL, t_page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	p[0] = MARK;
	return p;
}

static void watch(struct uhmm_mm *mm, struct sub *s, char *addr)
{
	memset(s, 0, sizeof(*s));
	s->addr = addr;
	REQUIRE(uhmm_interval_notifier_insert(&s->n, mm, (unsigned long)addr,
					      t_page, &ops) == 0);
}

/* One callback, in this thread, before the change. */
#define CHECK_BEFORE(s, ev, perm, byte)                                        \
	do {                                                                   \
		CHECK_EQ((s)->calls, 1);                                       \
		CHECK_EQ((s)->event, ev);                                      \
		CHECK((s)->same_thread);                                       \
		CHECK_EQ(strcmp((s)->perms, perm), 0);                         \
		CHECK_EQ((s)->first_byte, byte);                               \
	} while (0)

int main(void)
{
	struct sub a, b, c, d, e, f, g, h, shm;
	struct uhmm_mm *mm;
	char *p, *q;
	int id;

	main_thread = pthread_self();
	t_page = (unsigned long)sysconf(_SC_PAGESIZE);
	/* Before uhmm is in use: straight to the kernel. */
	p = map_page();
	CHECK_EQ(munmap(p, t_page), 0);

	mm = t_open();

	/* munmap: reported while the page is still mapped. */
	watch(mm, &a, map_page());
	CHECK_EQ(munmap(a.addr, t_page), 0);
	CHECK_BEFORE(&a, UHMM_EVENT_UNMAP, "rw-p", MARK);

	/* mprotect(PROT_NONE): reported, before. */
	watch(mm, &b, map_page());
	CHECK_EQ(mprotect(b.addr, t_page, PROT_NONE), 0);
	CHECK_BEFORE(&b, UHMM_EVENT_PROTECTION, "rw-p", MARK);

	/* MADV_DONTNEED: reported before the zap; still watched after. */
	watch(mm, &c, map_page());
	CHECK_EQ(madvise(c.addr, t_page, MADV_DONTNEED), 0);
	CHECK_BEFORE(&c, UHMM_EVENT_CLEAR, "rw-p", MARK);
	CHECK_EQ(c.addr[0], 0);

	/* mmap(MAP_FIXED) over it: reported while the old page is there;
	 * the new mapping is watched (a raw munmap of it is heard). */
	watch(mm, &d, map_page());
	q = mmap(d.addr, t_page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_FIXED, -1, 0);
	CHECK(q == d.addr);
	CHECK_BEFORE(&d, UHMM_EVENT_UNMAP, "rw-p", MARK);
	d.calls = 0;
	CHECK_EQ(syscall(SYS_munmap, d.addr, t_page), 0);
	CHECK_EQ(uhmm_mm_sync(mm), 0);
	CHECK_EQ(d.calls, 1);
	CHECK(!d.same_thread);

	/* mremap (move): REMAP before. */
	watch(mm, &e, map_page());
	q = mremap(e.addr, t_page, 2 * t_page, MREMAP_MAYMOVE);
	REQUIRE(q != MAP_FAILED);
	CHECK_BEFORE(&e, UHMM_EVENT_REMAP, "rw-p", MARK);
	CHECK_EQ(munmap(q, 2 * t_page), 0);

	/* shmdt: reported, before (the kernel sends nothing for it). */
	id = shmget(IPC_PRIVATE, t_page, IPC_CREAT | 0600);
	REQUIRE(id >= 0);
	p = shmat(id, NULL, 0);
	REQUIRE(p != (void *)-1);
	shmctl(id, IPC_RMID, NULL);
	p[0] = MARK;
	watch(mm, &shm, p);
	CHECK_EQ(shmdt(p), 0);
	CHECK_BEFORE(&shm, UHMM_EVENT_UNMAP, "rw-s", MARK);

	/* A raw system call: the kernel's event, on the dispatcher, after. */
	watch(mm, &f, map_page());
	CHECK_EQ(syscall(SYS_munmap, f.addr, t_page), 0);
	CHECK_EQ(uhmm_mm_sync(mm), 0);
	CHECK_EQ(f.calls, 1);
	CHECK_EQ(f.event, UHMM_EVENT_UNMAP);
	CHECK(!f.same_thread);
	CHECK_EQ(strcmp(f.perms, ""), 0);

	/* A callback that unmaps other registered memory (through the
	 * hook again): both are heard, nothing deadlocks. */
	watch(mm, &g, map_page());
	watch(mm, &h, map_page());
	g.unmap_too = h.addr;
	CHECK_EQ(munmap(g.addr, t_page), 0);
	CHECK_BEFORE(&g, UHMM_EVENT_UNMAP, "rw-p", MARK);
	CHECK_EQ(uhmm_mm_sync(mm), 0);
	CHECK_EQ(h.calls, 1);
	CHECK_EQ(h.event, UHMM_EVENT_UNMAP);

	/* A fork child: its mm copy is dead, its calls go to the kernel. */
	{
		pid_t pid;
		int status;

		p = map_page();
		pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			char *r = map_page();

			_exit(munmap(p, t_page) || munmap(r, t_page) ||
			      mprotect(b.addr, t_page, PROT_READ) ? 1 : 0);
		}
		REQUIRE(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		CHECK_EQ(munmap(p, t_page), 0);
	}

	CHECK_EQ(munmap(b.addr, t_page), 0);
	CHECK_EQ(munmap(c.addr, t_page), 0);
	{
		struct sub *all[] = { &a, &b, &c, &d, &e, &f, &g, &h, &shm };

		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			CHECK_EQ(uhmm_interval_notifier_remove(&all[i]->n), 0);
	}
	CHECK_EQ(uhmm_mm_close(mm), 0);
	return t_result();
}
