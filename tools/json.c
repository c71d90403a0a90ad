/* SPDX-License-Identifier: MIT */
/* The uhmm command's JSON writer (tools/cli.h). */
#include <math.h>
#include <stdio.h>

#include "cli.h"

void j_string(const char *s)
{
	unsigned char c;

	putchar('"');
	for (; (c = *s); s++) {
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

void j_key(struct json *j, const char *key)
{
	if (j->depth)
		printf("%s\n%*s", j->first ? "" : ",", 2 * j->depth, "");
	j->first = false;
	if (key) {
		j_string(key);
		fputs(": ", stdout);
	}
}

static void j_push(struct json *j, const char *key, char c)
{
	j_key(j, key);
	putchar(c);
	j->depth++;
	j->first = true;
}

static void j_pop(struct json *j, char c)
{
	j->depth--;
	if (j->first)	/* empty: {} or [] */
		putchar(c);
	else
		printf("\n%*s%c", 2 * j->depth, "", c);
	j->first = false;
}

void j_open(struct json *j, const char *key)
{
	j_push(j, key, '{');
}

void j_close(struct json *j)
{
	j_pop(j, '}');
}

void j_array_open(struct json *j, const char *key)
{
	j_push(j, key, '[');
}

void j_array_close(struct json *j)
{
	j_pop(j, ']');
}

void j_bool(struct json *j, const char *key, bool v)
{
	j_key(j, key);
	fputs(v ? "true" : "false", stdout);
}

void j_long(struct json *j, const char *key, long long v)
{
	j_key(j, key);
	if (v < 0)
		fputs("null", stdout);
	else
		printf("%lld", v);
}

void j_double(struct json *j, const char *key, double v)
{
	j_key(j, key);
	if (isfinite(v))
		printf("%.6g", v);
	else
		fputs("null", stdout);
}

void j_str(struct json *j, const char *key, const char *v)
{
	j_key(j, key);
	if (v)
		j_string(v);
	else
		fputs("null", stdout);
}

void j_end(struct json *j)
{
	(void)j;
	putchar('\n');
}
