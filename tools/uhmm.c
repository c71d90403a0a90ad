/* SPDX-License-Identifier: MIT */
/*
 * uhmm - the command-line tool: one subcommand per file (tools/NAME.c),
 * dispatched from here. See uhmm(1).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: uhmm <command> [options]   (see uhmm(1))\n"
    "\n"
    "commands:\n"
    "  demo [--json]   show a stale io_uring fixed-buffer read after an\n"
    "                  address is reused without uhmm, and the read\n"
    "                  landing right with uhmm; --json: one JSON object\n"
    "  trace [-o FILE] [--json] -- CMD [ARGS...]\n"
    "                  run CMD and report every invalidation of its\n"
    "                  memory as it happens, and a summary at its end\n"
    "  bench [--json] [--quick] [--plot DIR]\n"
    "                  run the benchmark programs and print one table of\n"
    "                  figures against their baselines; --plot DIR also\n"
    "                  draws PNG plots there (gnuplot)\n"
    "  probe [--json]  report what this kernel and process allow, and\n"
    "                  which uhmm features work here; --json prints one\n"
    "                  JSON object (null: unknown, or unlimited memlock)\n"
    "  help            show this help (also --help)\n";

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{"demo", cmd_demo},
	{"trace", cmd_trace},
	{"bench", cmd_bench},
	{"probe", cmd_probe},
};

/* "EPERM"; glibc knows every name, other libcs get the number. */
const char *errname(int err)
{
	static char buf[32];
	const char *name = NULL;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	name = strerrorname_np(err);
#endif
	if (name)
		return name;
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}

int json_only_options(const char *cmd, const char *usage, int argc,
		      char **argv, bool *json)
{
	*json = false;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			*json = true;
		} else if (!strcmp(argv[i], "--help") ||
			   !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "uhmm %s: unknown option '%s'\n%s", cmd,
				argv[i], usage);
			return 2;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	int ret = -1;

	if (!cmd) {
		fputs(usage, stderr);
		return 2;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		ret = 0;
	}
	for (size_t i = 0; ret < 0 && i < sizeof(commands) / sizeof(*commands);
	     i++)
		if (!strcmp(cmd, commands[i].name))
			ret = commands[i].run(argc - 2, argv + 2);
	if (ret < 0) {
		fprintf(stderr, "uhmm: unknown command '%s'\n%s", cmd, usage);
		return 2;
	}
	/* A full disk or closed pipe must not look like success. */
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "uhmm: writing output: %s\n", strerror(errno));
		return 1;
	}
	return ret;
}
