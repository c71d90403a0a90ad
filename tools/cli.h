/* SPDX-License-Identifier: MIT */
/*
 * What the uhmm command's subcommands share: their entry points (each in
 * its own file, tools/NAME.c), errno names, and a small JSON writer for
 * their --json output (tools/json.c).
 *
 * Exit status, for every subcommand: 0 success, 1 a failure (or, for a
 * check, a check that did not hold), 2 bad usage.
 */
#ifndef UHMM_CLI_H
#define UHMM_CLI_H

#include <stdbool.h>
#include <stdio.h>

int cmd_probe(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/*
 * The options of a subcommand whose only option is --json: sets *json;
 * -1 to go on, else the exit status (0 after --help, 2 on anything
 * else, with the usage).
 */
int json_only_options(const char *cmd, const char *usage, int argc,
		      char **argv, bool *json);

/* "EPERM"; other libcs than glibc get "errno 1". */
const char *errname(int err);

/* beside_self(): the command finds what it runs beside itself in the
 * build tree, and by the installed layout's relative path (UHMM_*_REL). */
#include "beside-self.h"

/*
 * JSON to stdout (or to out, if set): one document, two-space indent,
 * keys in the order written. A value's key is NULL inside an array.
 * Numbers that are unknown print as null (j_long: negative; j_double:
 * NaN).
 */
struct json {
	int depth;
	bool first;	/* nothing printed yet at this depth */
	FILE *out;	/* NULL: stdout */
};

void j_string(const char *s);	/* a quoted, escaped string, nothing else */
void j_string_to(FILE *f, const char *s); /* the same, to f */
void j_key(struct json *j, const char *key);
void j_open(struct json *j, const char *key);		/* { */
void j_close(struct json *j);				/* } */
void j_array_open(struct json *j, const char *key);	/* [ */
void j_array_close(struct json *j);			/* ] */
void j_bool(struct json *j, const char *key, bool v);
void j_long(struct json *j, const char *key, long long v);
void j_double(struct json *j, const char *key, double v);
void j_str(struct json *j, const char *key, const char *v);
void j_end(struct json *j);	/* after the outermost close: newline */

#endif
