/* SPDX-License-Identifier: MIT */
/*
 * Interval tree: an AVL tree of closed intervals [start, last] ordered by
 * start (equal starts keep insertion order, since ties go right and
 * rotations preserve the in-order sequence), augmented with subtree_last,
 * the greatest last of any node in the subtree.
 *
 * Why the augmentation lets a search prune: a node's interval overlaps the
 * query [qs, ql] iff node->start <= ql && qs <= node->last. A subtree whose
 * subtree_last < qs holds no interval reaching qs, so it can be skipped
 * whole. And since the in-order sequence is sorted by start, once a node
 * has start > ql so has every node after it: the walk can stop there.
 * Together these bound a first-overlap search to one root-to-leaf path and
 * make each step of the iteration O(log n), as in the kernel's
 * interval_tree_iter_first/next.
 *
 * subtree_last and height are both recomputed from a node's children, so
 * every structural change refreshes them bottom-up along the one path it
 * touched; that path is also where AVL rebalancing may be needed. All walks
 * are iterative, using the parent pointers.
 */
#include "core/itree.h"

/*
 * Links, bounds and subtree_last are stored with STORE and read by
 * uhmm_itree_find_lockless() with LOAD: a lockless reader may run beside
 * a writer (itree.h). Relaxed atomics compile to plain moves; they only
 * make the race a defined one. The writer's own reads stay plain.
 */
#define STORE(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

static inline int height(const struct uhmm_itree_node *n)
{
	return n ? n->height : 0;
}

/* Recompute the augmented fields from the (already correct) children. */
static void update(struct uhmm_itree_node *n)
{
	int hl = height(n->left), hr = height(n->right);
	unsigned long last = n->last;

	if (n->left && n->left->subtree_last > last)
		last = n->left->subtree_last;
	if (n->right && n->right->subtree_last > last)
		last = n->right->subtree_last;
	STORE(n->subtree_last, last);
	n->height = 1 + (hl > hr ? hl : hr);
}

static void replace_child(struct uhmm_itree *tree,
			  struct uhmm_itree_node *parent,
			  struct uhmm_itree_node *old,
			  struct uhmm_itree_node *new)
{
	if (!parent)
		STORE(tree->root, new);
	else if (parent->left == old)
		STORE(parent->left, new);
	else
		STORE(parent->right, new);
}

/* x's right child takes x's place; returns it. */
static struct uhmm_itree_node *rotate_left(struct uhmm_itree *tree,
					   struct uhmm_itree_node *x)
{
	struct uhmm_itree_node *y = x->right;

	STORE(x->right, y->left);
	if (y->left)
		STORE(y->left->parent, x);
	STORE(y->parent, x->parent);
	replace_child(tree, x->parent, x, y);
	STORE(y->left, x);
	STORE(x->parent, y);
	/* x is now below y: refresh it first. */
	update(x);
	update(y);
	return y;
}

/* x's left child takes x's place; returns it. */
static struct uhmm_itree_node *rotate_right(struct uhmm_itree *tree,
					    struct uhmm_itree_node *x)
{
	struct uhmm_itree_node *y = x->left;

	STORE(x->left, y->right);
	if (y->right)
		STORE(y->right->parent, x);
	STORE(y->parent, x->parent);
	replace_child(tree, x->parent, x, y);
	STORE(y->right, x);
	STORE(x->parent, y);
	update(x);
	update(y);
	return y;
}

/*
 * Restore balance at n, whose subtrees are balanced AVL trees differing in
 * height by at most 2, and refresh its augmented fields. Returns the node
 * now at n's place.
 */
static struct uhmm_itree_node *rebalance(struct uhmm_itree *tree,
					 struct uhmm_itree_node *n)
{
	int bf = height(n->left) - height(n->right);

	if (bf > 1) {
		/* A left-right shape needs the double rotation. */
		if (height(n->left->left) < height(n->left->right))
			rotate_left(tree, n->left);
		return rotate_right(tree, n);
	}
	if (bf < -1) {
		if (height(n->right->right) < height(n->right->left))
			rotate_right(tree, n->right);
		return rotate_left(tree, n);
	}
	update(n);
	return n;
}

/*
 * Walk from n towards the root, rebalancing and refreshing. A node's
 * height and subtree_last depend only on its children's and its own
 * last, so once a node keeps its place and both its values, nothing
 * above it changes: stop there - but not below stale, a node whose
 * values are not its own yet (remove()'s successor, moved up with the
 * removed node's values), which the walk must reach first.
 */
static void fixup(struct uhmm_itree *tree, struct uhmm_itree_node *n,
		  const struct uhmm_itree_node *stale)
{
	while (n) {
		int height = n->height;
		unsigned long last = n->subtree_last;
		struct uhmm_itree_node *top = rebalance(tree, n);

		if (n == stale)
			stale = NULL;
		if (!stale && top == n && n->height == height &&
		    n->subtree_last == last)
			return;
		n = top->parent;
	}
}

void uhmm_itree_insert(struct uhmm_itree *tree, struct uhmm_itree_node *node)
{
	struct uhmm_itree_node **link = &tree->root, *parent = NULL;

	while (*link) {
		parent = *link;
		/* Ties go right so equal starts keep insertion order. */
		if (node->start < parent->start)
			link = &parent->left;
		else
			link = &parent->right;
	}
	STORE(node->parent, parent);
	STORE(node->left, NULL);
	STORE(node->right, NULL);
	node->height = 1;
	STORE(node->subtree_last, node->last);
	/* Last: a lockless reader finds it complete. */
	__atomic_store_n(link, node, __ATOMIC_RELEASE);

	/*
	 * Rebalance up to the first node that keeps its place and height.
	 * Above it the only change is node itself in every subtree: each
	 * subtree_last grows to node->last or stays - the path the descent
	 * just read, no sibling (a new highest interval, the common case of
	 * ascending addresses, reaches the root).
	 */
	for (struct uhmm_itree_node *n = parent; n;) {
		int height = n->height;
		struct uhmm_itree_node *top = rebalance(tree, n);

		if (top != n || n->height != height) {
			n = top->parent;
			continue;
		}
		for (n = n->parent; n && n->subtree_last < node->last;
		     n = n->parent)
			STORE(n->subtree_last, node->last);
		break;
	}
}

void uhmm_itree_remove(struct uhmm_itree *tree, struct uhmm_itree_node *node)
{
	struct uhmm_itree_node *parent = node->parent, *from, *stale = NULL;

	if (!node->left || !node->right) {
		struct uhmm_itree_node *child = node->left ? node->left :
							     node->right;

		replace_child(tree, parent, node, child);
		if (child)
			STORE(child->parent, parent);
		from = parent;
	} else {
		/*
		 * The nodes are the caller's memory, so the in-order successor
		 * s cannot lend its key to node: relink s into node's place.
		 * s has no left child, and the sequence stays sorted because
		 * s comes right after node.
		 */
		struct uhmm_itree_node *s = node->right;

		while (s->left)
			s = s->left;
		if (s == node->right) {
			from = s;
		} else {
			from = s->parent;
			STORE(from->left, s->right);
			if (s->right)
				STORE(s->right->parent, from);
			STORE(s->right, node->right);
			STORE(s->right->parent, s);
		}
		STORE(s->left, node->left);
		STORE(s->left->parent, s);
		STORE(s->parent, parent);
		replace_child(tree, parent, node, s);
		/* What the ancestors were computed from, until the walk
		 * reaches s and refreshes it. */
		s->height = node->height;
		STORE(s->subtree_last, node->subtree_last);
		stale = s;
	}
	/* Catch a use after remove early rather than corrupt the tree. */
	STORE(node->parent, NULL);
	STORE(node->left, NULL);
	STORE(node->right, NULL);
	fixup(tree, from, stale);
}

/*
 * Leftmost node of the subtree at n overlapping [start, last], given that
 * n->subtree_last >= start. NULL means that no node in order from the
 * subtree's leftmost on overlaps: some node x here has x->last >= start,
 * and if it does not overlap then x->start > last, as has every later node.
 */
static struct uhmm_itree_node *subtree_search(struct uhmm_itree_node *n,
					      unsigned long start,
					      unsigned long last)
{
	for (;;) {
		/* Anything to the left comes first in order. */
		if (n->left && n->left->subtree_last >= start) {
			n = n->left;
			continue;
		}
		if (n->start > last)
			return NULL;
		if (n->last >= start)
			return n;
		/*
		 * Neither the left subtree nor n reaches start, so by the
		 * precondition the right subtree does.
		 */
		n = n->right;
	}
}

struct uhmm_itree_node *uhmm_itree_first(const struct uhmm_itree *tree,
					 unsigned long start,
					 unsigned long last)
{
	struct uhmm_itree_node *root = tree->root;

	if (!root || root->subtree_last < start)
		return NULL;
	return subtree_search(root, start, last);
}

struct uhmm_itree_node *uhmm_itree_next(const struct uhmm_itree_node *node,
					unsigned long start,
					unsigned long last)
{
	struct uhmm_itree_node *n = (struct uhmm_itree_node *)node;
	struct uhmm_itree_node *prev;

	for (;;) {
		/* Everything after n in its subtree is in its right subtree. */
		if (n->right && n->right->subtree_last >= start)
			return subtree_search(n->right, start, last);
		/*
		 * Climb until we come up from a left child: that parent is
		 * the next node in order, and its right subtree follows it.
		 */
		do {
			prev = n;
			n = n->parent;
			if (!n)
				return NULL;
		} while (n->right == prev);
		if (n->start > last)
			return NULL;
		if (n->last >= start)
			return n;
	}
}

/*
 * A depth-first walk with an explicit stack, pruned as subtree_search()
 * prunes, that never climbs: parent links are what a concurrent rotation
 * rewrites last. Against a tree that changes under it, a subtree it skips
 * or a node it reaches twice only costs a miss or a step; the stack and
 * the step budget bound it whatever it reads.
 */
#define LOCKLESS_STACK 64
#define LOCKLESS_STEPS 256

struct uhmm_itree_node *
uhmm_itree_find_lockless(const struct uhmm_itree *tree, unsigned long start,
			 unsigned long last,
			 bool (*match)(struct uhmm_itree_node *n, void *arg),
			 void *arg)
{
	struct uhmm_itree_node *stack[LOCKLESS_STACK];
	int depth = 0;

	stack[depth++] = __atomic_load_n(&tree->root, __ATOMIC_ACQUIRE);
	for (int steps = 0; depth && steps < LOCKLESS_STEPS; steps++) {
		struct uhmm_itree_node *n = stack[--depth];
		unsigned long n_start;

		if (!n || LOAD(n->subtree_last) < start)
			continue;
		n_start = LOAD(n->start);
		if (n_start <= last && LOAD(n->last) >= start && match(n, arg))
			return n;
		/* Right of n, every start is >= n's. */
		if (n_start <= last && depth < LOCKLESS_STACK)
			stack[depth++] = __atomic_load_n(&n->right,
							 __ATOMIC_ACQUIRE);
		if (depth < LOCKLESS_STACK)
			stack[depth++] = __atomic_load_n(&n->left,
							 __ATOMIC_ACQUIRE);
	}
	return NULL;
}

/*
 * Iterative walk over the parent pointers. A child is entered only if its
 * parent pointer points back and the two children differ, which (with a
 * root whose parent is NULL) rules out cycles, so the walk terminates even
 * on a corrupt tree.
 */
int uhmm_itree_check(const struct uhmm_itree *tree)
{
	const struct uhmm_itree_node *n = tree->root, *prev = NULL;
	const struct uhmm_itree_node *l, *r;
	unsigned long prev_start = 0;

	if (n && n->parent)
		return UHMM_ITREE_EPARENT;
	while (n) {
		l = n->left;
		r = n->right;
		if (prev == n->parent) {
			/* First visit, from above. */
			if (n->start > n->last)
				return UHMM_ITREE_ERANGE;
			if ((l && l == r) || (l && l->parent != n) ||
			    (r && r->parent != n))
				return UHMM_ITREE_EPARENT;
			if (l) {
				prev = n;
				n = l;
				continue;
			}
		}
		if (prev != r || !r) {
			/* Left subtree done (or absent): n's turn in order. */
			if (n->start < prev_start)
				return UHMM_ITREE_EORDER;
			prev_start = n->start;
			if (r) {
				prev = n;
				n = r;
				continue;
			}
		}
		/* Both subtrees done: their stored fields are checked. */
		{
			int hl = height(l), hr = height(r);
			unsigned long sl = n->last;

			if (n->height != 1 + (hl > hr ? hl : hr))
				return UHMM_ITREE_EHEIGHT;
			if (hl - hr > 1 || hr - hl > 1)
				return UHMM_ITREE_EBALANCE;
			if (l && l->subtree_last > sl)
				sl = l->subtree_last;
			if (r && r->subtree_last > sl)
				sl = r->subtree_last;
			if (n->subtree_last != sl)
				return UHMM_ITREE_ELAST;
		}
		prev = n;
		n = n->parent;
	}
	return 0;
}
