/* SPDX-License-Identifier: MIT */
/*
 * Augmented interval tree of closed intervals [start, last], keyed by start.
 * Internal to uhmm: no allocation, no locking; the caller serialises
 * insert, remove and first/next. One reader may run beside them without
 * the caller's lock: uhmm_itree_find_lockless(), below.
 */
#ifndef UHMM_CORE_ITREE_H
#define UHMM_CORE_ITREE_H

#include "uhmm.h"

struct uhmm_itree {
	struct uhmm_itree_node *root;
};

#define UHMM_ITREE_INIT { NULL }

/*
 * node->start and node->last must be set by the caller before insert;
 * start <= last. Duplicated intervals are allowed (several nodes with equal
 * start/last).
 */
void uhmm_itree_insert(struct uhmm_itree *tree, struct uhmm_itree_node *node);
void uhmm_itree_remove(struct uhmm_itree *tree, struct uhmm_itree_node *node);

/*
 * First node (in order of start, ties in any stable order) whose
 * [start,last] overlaps [start,last]; NULL if none.
 */
struct uhmm_itree_node *uhmm_itree_first(const struct uhmm_itree *tree,
					 unsigned long start,
					 unsigned long last);

/*
 * Next node after node, in the same order, that overlaps [start,last]; NULL
 * if none.
 */
struct uhmm_itree_node *uhmm_itree_next(const struct uhmm_itree_node *node,
					unsigned long start,
					unsigned long last);

/*
 * Without the writers' lock: some node overlapping [start, last] for which
 * match() returns true, or NULL. It may miss nodes (a writer moved them
 * while it looked) and may offer match() a node that a writer is moving
 * or has just removed, so match() must check what it finds against
 * something of the node's own that a writer cannot change under it (the
 * rcache's incarnation), and the nodes' memory must stay readable for as
 * long as readers may hold pointers into it (type-stable: never freed
 * while the tree is in use). It always terminates. node->start and
 * node->last of a node that may be in such a tree, or have been, must be
 * set with relaxed atomic stores.
 */
struct uhmm_itree_node *
uhmm_itree_find_lockless(const struct uhmm_itree *tree, unsigned long start,
			 unsigned long last,
			 bool (*match)(struct uhmm_itree_node *n, void *arg),
			 void *arg);

static inline bool uhmm_itree_empty(const struct uhmm_itree *tree)
{
	return tree->root == NULL;
}

/*
 * For tests only: walk the whole tree (O(n)) and return 0 if every
 * invariant holds, else the negative code of the first broken one found.
 */
#define UHMM_ITREE_EPARENT	(-1)	/* parent/child links disagree */
#define UHMM_ITREE_EORDER	(-2)	/* in-order starts decrease */
#define UHMM_ITREE_EHEIGHT	(-3)	/* stored height is wrong */
#define UHMM_ITREE_EBALANCE	(-4)	/* child heights differ by > 1 */
#define UHMM_ITREE_ELAST	(-5)	/* stored subtree_last is wrong */
#define UHMM_ITREE_ERANGE	(-6)	/* a node has start > last */

int uhmm_itree_check(const struct uhmm_itree *tree);

#endif
