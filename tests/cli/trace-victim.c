/* SPDX-License-Identifier: MIT */
/*
 * The program tests/cli-trace.sh runs under `uhmm trace`: each mode
 * changes its memory in known ways and prints on stdout what the trace
 * must show ("expect EVENT START END SIZE TID", TID "-" where the kernel
 * names no thread). A helper, not a test: it knows nothing of uhmm and
 * behaves the same with or without the trace.
 *
 *   events N        N buffers of 1..N pages munmap()ed, a page of one
 *                   discarded (MADV_DONTNEED), one unmapped with a raw
 *                   syscall(SYS_munmap), one munmap()ed by a thread
 *   many N          N one-page buffers munmap()ed, printing nothing else
 *   own-uffd        registers memory it just mmap()ed with its own
 *                   userfaultfd; exit 0 if that worked, 3 on EBUSY
 *   own-uffd-first  the same with memory from a raw mmap system call,
 *                   registered at once; then sleeps and unmaps a buffer
 *   fork            a child unmaps a buffer and exits; then the parent
 *   exec PROG ARGS  unmaps a buffer, then becomes PROG ARGS
 *   segv            dies of a real segmentation fault
 *   closefrom DIR   closes every descriptor from 3 up (as daemons do),
 *                   writes 8 files in DIR through new descriptors, then
 *                   unmaps a buffer: each file must hold what it wrote
 *   sigfork N       forks N times while another thread signals it; the
 *                   handler maps and unmaps a page (interrupting fork)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

static long page;

static char *map(long pages)
{
	char *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, 1, pages * page);
	return p;
}

static void expect(const char *event, char *p, long len, long tid)
{
	if (tid)
		printf("expect %s 0x%lx 0x%lx %ld %ld\n", event,
		       (unsigned long)p, (unsigned long)p + len, len, tid);
	else
		printf("expect %s 0x%lx 0x%lx %ld -\n", event,
		       (unsigned long)p, (unsigned long)p + len, len);
	fflush(stdout);
}

static void unmap(char *p, long len)
{
	expect("unmap", p, len, gettid());
	if (munmap(p, len)) {
		perror("munmap");
		exit(1);
	}
}

static void *thread_main(void *arg)
{
	unmap(arg, 2 * page);
	return NULL;
}

static int events(int n)
{
	pthread_t t;
	char *p;

	for (int i = 1; i <= n; i++)
		unmap(map(i), i * page);

	p = map(3);
	expect("clear", p + page, page, gettid());
	if (madvise(p + page, page, MADV_DONTNEED)) {
		perror("madvise");
		return 1;
	}
	unmap(p, 3 * page);

	/* The kernel reports it; no thread is known. */
	p = map(5);
	expect("unmap", p, 5 * page, 0);
	if (syscall(SYS_munmap, p, 5 * page)) {
		perror("SYS_munmap");
		return 1;
	}

	p = map(2);
	if (pthread_create(&t, NULL, thread_main, p) || pthread_join(t, NULL))
		return 1;
	return 0;
}

/* Quietly: only how many there were. */
static int many(int n)
{
	for (int i = 0; i < n; i++)
		if (munmap(map(1), page))
			return 1;
	printf("unmapped %d\n", n);
	return 0;
}

static int own_uffd(bool raw)
{
	long len = 4 * page;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct timespec ts = { 0, 400 * 1000 * 1000 };
	int fd, ret;
	char *p;

	if (raw)
		p = (char *)syscall(SYS_mmap, NULL, len,
				    PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) {
		printf("no userfaultfd: %s\n", strerror(errno));
		return 77;
	}
	reg.range.start = (unsigned long)p;
	reg.range.len = len;
	ret = ioctl(fd, UFFDIO_REGISTER, &reg);
	printf("register: %s\n", ret ? strerrorname_np(errno) : "ok");
	fflush(stdout);
	if (raw) {
		/* Arming passes meet it meanwhile. */
		nanosleep(&ts, NULL);
		unmap(map(1), page);
	}
	/* Unregisters: the munmap() after it waits for no reader. */
	close(fd);
	syscall(SYS_munmap, p, len);
	return ret ? 3 : 0;
}

static int do_fork(void)
{
	char *a = map(2);
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return 1;
	if (!pid) {
		printf("child %d\n", getpid());
		fflush(stdout);
		munmap(a, 2 * page);
		munmap(map(1), page);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || status)
		return 1;
	unmap(a, 2 * page);
	return 0;
}

/* Descriptors that the program did not open are its to close. */
static int closefrom_files(const char *dir)
{
	char path[4096], buf[32];
	int fds[8], bad = 0;
	char *a = map(1);

	closefrom(3);
	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "%s/file%d", dir, i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fds[i] < 0 || write(fds[i], "hello\n", 6) != 6)
			return 1;
	}
	unmap(a, page);
	a = map(1);
	syscall(SYS_munmap, a, page);	/* waits for the trace's reader */
	for (int i = 0; i < 8; i++) {
		ssize_t n = pread(fds[i], buf, sizeof(buf), 0);

		if (n != 6 || memcmp(buf, "hello\n", 6)) {
			printf("file%d: %zd bytes, not what was written\n", i, n);
			bad = 1;
		}
		close(fds[i]);
	}
	return bad;
}

static volatile sig_atomic_t handled;

static void map_in_handler(int sig)
{
	int err = errno;
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)sig;
	if (p != MAP_FAILED)
		munmap(p, (size_t)page);
	handled++;
	errno = err;
}

static void *signaller(void *arg)
{
	pthread_t main_thread = *(pthread_t *)arg;

	for (;;) {
		pthread_kill(main_thread, SIGUSR1);
		usleep(20);
	}
	return NULL;
}

static int sigfork(int n)
{
	pthread_t self = pthread_self(), t;
	struct sigaction sa = { .sa_handler = map_in_handler };

	sigaction(SIGUSR1, &sa, NULL);
	if (pthread_create(&t, NULL, signaller, &self))
		return 1;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		int status;

		if (pid < 0)
			return 1;
		if (!pid)
			_exit(0);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	printf("%d forks, %d signals handled\n", n, (int)handled);
	return 0;
}

int main(int argc, char **argv)
{
	page = sysconf(_SC_PAGESIZE);
	if (argc >= 3 && !strcmp(argv[1], "events"))
		return events(atoi(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "many"))
		return many(atoi(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "own-uffd"))
		return own_uffd(false);
	if (argc == 2 && !strcmp(argv[1], "own-uffd-first"))
		return own_uffd(true);
	if (argc == 2 && !strcmp(argv[1], "fork"))
		return do_fork();
	if (argc >= 3 && !strcmp(argv[1], "exec")) {
		unmap(map(1), page);
		execv(argv[2], argv + 2);
		perror(argv[2]);
		return 127;
	}
	if (argc == 2 && !strcmp(argv[1], "segv")) {
		/* Not NULL itself, which UBSan would catch first. */
		volatile int *volatile bad = (int *)(uintptr_t)16;

		fflush(stdout);
		*bad = 1;
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "closefrom"))
		return closefrom_files(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "sigfork"))
		return sigfork(atoi(argv[2]));
	fprintf(stderr, "usage: trace-victim events N | many N | own-uffd | "
		"own-uffd-first | fork | exec PROG ARGS | segv | "
		"closefrom DIR | sigfork N\n");
	return 2;
}
