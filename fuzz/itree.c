/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the interval tree (src/core/itree.h) against a
 * brute-force model.
 *
 * The input is a stream of operations on a pool of POOL nodes: insert a
 * free node with an interval drawn from the input, remove a live one,
 * enumerate the overlaps of a query (first, next, ...), or call next()
 * from any live node with any query. Each answer is compared exactly with
 * the model (the array of live nodes):
 *
 *   - a query's enumeration is exactly the set of live nodes overlapping
 *     it, each once, in non-decreasing start order, and in the same
 *     relative order as the whole tree's in-order sequence (ties "in any
 *     stable order", itree.h);
 *   - next(n, q) is the first node after n in that sequence overlapping q;
 *   - empty() agrees with the model.
 *
 * After every operation the tree is checked twice: with uhmm_itree_check()
 * and with an independent recursive walk here, which also checks that the
 * tree holds exactly the live nodes (uhmm_itree_check() cannot know them).
 * Any disagreement aborts with a description.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/itree.h"

#define POOL 96

struct tnode {
	struct uhmm_itree_node n;
	unsigned long stamp;	/* last walk that saw it */
	int live;		/* index in live[], or -1 */
	unsigned long order;	/* insertion number */
};

static struct tnode pool[POOL];
static int live[POOL], nlive;
static struct uhmm_itree tree;
static unsigned long gen, inserts;

/* Where the input is read from: out of bytes reads zeros. */
struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	uint8_t v;

	if (!in->n)
		return 0;
	v = *in->p++;
	in->n--;
	return v;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

#define FAIL(...)                                                              \
	do {                                                                   \
		fprintf(stderr, "fuzz-itree: " __VA_ARGS__);                   \
		fprintf(stderr, "\n");                                         \
		abort();                                                       \
	} while (0)

/* Points that many intervals share, so that they overlap, nest, tie. */
static const unsigned long anchors[] = {
	0, 1, 0x1000, 0x10000, 1UL << 32, 1UL << 47, ULONG_MAX / 2,
	ULONG_MAX - 0x10000, ULONG_MAX - 1, ULONG_MAX,
};
#define NANCHORS (sizeof(anchors) / sizeof(anchors[0]))

static unsigned long add_sat(unsigned long a, unsigned long b)
{
	return a > ULONG_MAX - b ? ULONG_MAX : a + b;
}

static unsigned long sub_sat(unsigned long a, unsigned long b)
{
	return a < b ? 0 : a - b;
}

/* A point: near an anchor, near a live node's ends, or anything. */
static unsigned long point(struct in *in)
{
	uint8_t k = u8(in);
	unsigned long base;

	switch (k & 3) {
	case 0:
		base = anchors[(k >> 2) % NANCHORS];
		break;
	case 1:
		if (nlive) {
			const struct tnode *t = &pool[live[(k >> 2) % nlive]];

			base = (k & 0x80) ? t->n.last : t->n.start;
			break;
		}
		base = anchors[(k >> 2) % NANCHORS];
		break;
	case 2:
		return (unsigned long)u64(in);
	default:
		base = anchors[(k >> 2) % NANCHORS];
		return (k & 0x80) ? sub_sat(base, u8(in)) : add_sat(base, u8(in));
	}
	/* Small signed offset. */
	{
		int8_t d = (int8_t)u8(in);

		return d < 0 ? sub_sat(base, (unsigned long)-(int)d)
			     : add_sat(base, (unsigned long)d);
	}
}

/* An interval [*s, *l], s <= l. */
static void interval(struct in *in, unsigned long *s, unsigned long *l)
{
	uint8_t k = u8(in);
	unsigned long a = point(in), b;

	switch (k & 3) {
	case 0:			/* short */
		b = add_sat(a, u8(in));
		break;
	case 1:			/* any length */
		b = add_sat(a, (unsigned long)u64(in) >> (u8(in) & 63));
		break;
	case 2:			/* one point */
		b = a;
		break;
	default:		/* two points */
		b = point(in);
		break;
	}
	if (a > b) {
		unsigned long t = a;

		a = b;
		b = t;
	}
	*s = a;
	*l = b;
}

static struct tnode *tnode_of(const struct uhmm_itree_node *n)
{
	uintptr_t p = (uintptr_t)n;

	if (p < (uintptr_t)&pool[0] || p >= (uintptr_t)&pool[POOL] ||
	    (p - (uintptr_t)&pool[0]) % sizeof(pool[0]) !=
		    offsetof(struct tnode, n))
		return NULL;
	return (struct tnode *)((char *)n - offsetof(struct tnode, n));
}

static bool overlaps(const struct uhmm_itree_node *n, unsigned long s,
		     unsigned long l)
{
	return n->start <= l && s <= n->last;
}

/* ---- independent structural check ---- */

static unsigned long walked;

/* Height of the subtree at n; checks it and every node in it. */
static int check_sub(const struct uhmm_itree_node *n,
		     const struct uhmm_itree_node *parent, unsigned long lo,
		     unsigned long hi, int depth)
{
	struct tnode *t;
	int hl, hr;
	unsigned long sl;

	if (!n)
		return 0;
	if (depth > 64)
		FAIL("tree deeper than 64: a cycle?");
	t = tnode_of(n);
	if (!t)
		FAIL("a node in the tree is not one of ours");
	if (t->live < 0)
		FAIL("a removed node is still in the tree");
	if (t->stamp == gen)
		FAIL("a node is in the tree twice");
	t->stamp = gen;
	walked++;
	if (n->parent != parent)
		FAIL("parent link wrong at [%#lx, %#lx]", n->start, n->last);
	if (n->start > n->last)
		FAIL("node with start > last");
	if (n->start < lo || n->start > hi)
		FAIL("start %#lx out of order (bounds %#lx..%#lx)", n->start,
		     lo, hi);
	hl = check_sub(n->left, n, lo, n->start, depth + 1);
	hr = check_sub(n->right, n, n->start, hi, depth + 1);
	if (hl - hr > 1 || hr - hl > 1)
		FAIL("unbalanced: heights %d and %d", hl, hr);
	if (n->height != 1 + (hl > hr ? hl : hr))
		FAIL("stored height %d, real %d", n->height,
		     1 + (hl > hr ? hl : hr));
	sl = n->last;
	if (n->left && n->left->subtree_last > sl)
		sl = n->left->subtree_last;
	if (n->right && n->right->subtree_last > sl)
		sl = n->right->subtree_last;
	if (n->subtree_last != sl)
		FAIL("subtree_last %#lx, real %#lx", n->subtree_last, sl);
	return n->height;
}

static void check_tree(void)
{
	int rc = uhmm_itree_check(&tree);

	if (rc)
		FAIL("uhmm_itree_check() = %d", rc);
	gen++;
	walked = 0;
	check_sub(tree.root, NULL, 0, ULONG_MAX, 0);
	if (walked != (unsigned long)nlive)
		FAIL("tree has %lu nodes, model %d", walked, nlive);
	/* walked == nlive and no node twice: every live node was seen. */
	if (uhmm_itree_empty(&tree) != (nlive == 0))
		FAIL("uhmm_itree_empty() disagrees with the model");
}

/* ---- the in-order sequence, through the API ---- */

static struct tnode *seq[POOL];
static int nseq;

/* The whole tree in order, through first/next over everything. */
static void in_order(void)
{
	const struct uhmm_itree_node *n;

	nseq = 0;
	for (n = uhmm_itree_first(&tree, 0, ULONG_MAX); n;
	     n = uhmm_itree_next(n, 0, ULONG_MAX)) {
		struct tnode *t = tnode_of(n);

		if (!t || t->live < 0)
			FAIL("whole-range walk returned a foreign node");
		if (nseq == nlive)
			FAIL("whole-range walk longer than the live set");
		if (nseq && seq[nseq - 1]->n.start > n->start)
			FAIL("whole-range walk out of start order");
		seq[nseq++] = t;
	}
	if (nseq != nlive)
		FAIL("whole-range walk found %d of %d nodes", nseq, nlive);
}

static int seq_index(const struct tnode *t)
{
	for (int i = 0; i < nseq; i++)
		if (seq[i] == t)
			return i;
	FAIL("node missing from the in-order sequence");
}

/* Enumerate [s, l]: exactly the overlapping subsequence of seq[]. */
static void query(unsigned long s, unsigned long l)
{
	const struct uhmm_itree_node *n = uhmm_itree_first(&tree, s, l);
	int i = 0;

	in_order();
	for (;;) {
		/* The next overlapping node of the sequence is expected. */
		while (i < nseq && !overlaps(&seq[i]->n, s, l))
			i++;
		if (i == nseq) {
			if (n)
				FAIL("query [%#lx, %#lx] returned [%#lx, %#lx] "
				     "past the last overlap", s, l, n->start,
				     n->last);
			return;
		}
		if (!n)
			FAIL("query [%#lx, %#lx] missed [%#lx, %#lx]", s, l,
			     seq[i]->n.start, seq[i]->n.last);
		if (n != &seq[i]->n)
			FAIL("query [%#lx, %#lx] returned [%#lx, %#lx], "
			     "expected [%#lx, %#lx]", s, l, n->start, n->last,
			     seq[i]->n.start, seq[i]->n.last);
		i++;
		n = uhmm_itree_next(n, s, l);
	}
}

/* next() from any live node with any query. */
static void next_from(int k, unsigned long s, unsigned long l)
{
	const struct uhmm_itree_node *n, *want = NULL;
	int i;

	in_order();
	i = seq_index(&pool[live[k]]);
	for (i++; i < nseq; i++) {
		if (overlaps(&seq[i]->n, s, l)) {
			want = &seq[i]->n;
			break;
		}
	}
	n = uhmm_itree_next(&pool[live[k]].n, s, l);
	if (n != want)
		FAIL("next from [%#lx, %#lx] for [%#lx, %#lx]: got %p, "
		     "expected %p", pool[live[k]].n.start, pool[live[k]].n.last,
		     s, l, (const void *)n, (const void *)want);
}

/* Equal starts: the header allows any stable order; itree.c keeps
 * insertion order (ties go right, rotations keep the sequence). Only
 * stability is checked, by query() against the whole-range walk. */

static void do_insert(struct in *in)
{
	struct tnode *t = NULL;

	for (int i = 0; i < POOL; i++) {
		if (pool[i].live < 0) {
			t = &pool[i];
			break;
		}
	}
	if (!t)
		return;
	interval(in, &t->n.start, &t->n.last);
	/* Garbage in the links: insert must not read them. */
	memset(&t->n.parent, 0xa5, sizeof(t->n.parent));
	memset(&t->n.left, 0x5a, sizeof(t->n.left));
	t->n.height = -7;
	uhmm_itree_insert(&tree, &t->n);
	t->live = nlive;
	t->order = inserts++;
	live[nlive++] = (int)(t - pool);
}

static void do_remove(int k)
{
	struct tnode *t = &pool[live[k]];

	uhmm_itree_remove(&tree, &t->n);
	t->live = -1;
	live[k] = live[--nlive];
	if (k != nlive)
		pool[live[k]].live = k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	unsigned long s, l;
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a of the input */

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;

	tree = (struct uhmm_itree)UHMM_ITREE_INIT;
	nlive = 0;
	for (int i = 0; i < POOL; i++) {
		memset(&pool[i], 0, sizeof(pool[i]));
		pool[i].live = -1;
	}
	if (uhmm_itree_first(&tree, 0, ULONG_MAX) || !uhmm_itree_empty(&tree))
		FAIL("empty tree is not empty");

	while (in.n) {
		uint8_t op = u8(&in);

		switch (op % 8) {
		case 0:
		case 1:
		case 2:
			do_insert(&in);
			break;
		case 3:
			/* Bulk insert: deep trees from short inputs. */
			for (int i = u8(&in) % 16; i >= 0; i--)
				do_insert(&in);
			break;
		case 4:
			if (nlive)
				do_remove(u8(&in) % nlive);
			break;
		case 5:
			interval(&in, &s, &l);
			query(s, l);
			break;
		case 6:
			if (nlive) {
				int k = u8(&in) % nlive;

				interval(&in, &s, &l);
				next_from(k, s, l);
			}
			break;
		default:
			/* A point, or everything. */
			s = l = point(&in);
			if (op & 0x80) {
				s = 0;
				l = ULONG_MAX;
			}
			query(s, l);
			break;
		}
		check_tree();
	}
	/* Drain in input-chosen order, checking the tree as it shrinks. */
	while (nlive) {
		h = h * 6364136223846793005ULL + 1442695040888963407ULL;
		do_remove((int)((h >> 33) % (uint64_t)nlive));
		check_tree();
	}
	if (!uhmm_itree_empty(&tree) || uhmm_itree_first(&tree, 0, ULONG_MAX))
		FAIL("tree not empty after removing every node");
	return 0;
}
