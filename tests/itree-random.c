/* SPDX-License-Identifier: MIT */
/*
 * Randomized property test of the interval tree against a brute-force model
 * (the array of live nodes). Each seed runs a reproducible mix of inserts,
 * removes and overlap queries; the live set swings between a few nodes and
 * several thousand so that every tree height and every rebalancing case is
 * visited. A query's enumeration (first, next, ...) must equal the model's
 * overlap set, in non-decreasing start order, without duplicates.
 *
 *	./itree-random        run the default seeds
 *	./itree-random SEED   run one seed (to replay a reported failure)
 */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "core/itree.h"
#include "test.h"

#define POOL		8192	/* most nodes ever live at once */
#define BASE_OPS	200000	/* per seed, at scale 1 (>= 10^5) */
#define CHECK_EVERY	1000

struct tnode {
	struct uhmm_itree_node n;
	unsigned long stamp;	/* query generation that last reported it */
	int live;		/* index in live[], or -1 if not in the tree */
};

static struct tnode pool[POOL];
static int live[POOL], nlive;
static int freelist[POOL], nfree;

static uint64_t rng_state;

/* splitmix64: tiny, full-period, and good enough for test inputs. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform enough in [0, n) for n far below 2^64. */
static unsigned long below(unsigned long n)
{
	return (unsigned long)(rnd() % n);
}

static unsigned long rnd_ulong(void)
{
	return (unsigned long)rnd();
}

/*
 * A few hot spots per seed, including both ends of the address space, so
 * that many intervals overlap, nest and share starts.
 */
static unsigned long clusters[8];

static unsigned long add_clamped(unsigned long a, unsigned long b)
{
	return a > ULONG_MAX - b ? ULONG_MAX : a + b;
}

static void random_interval(unsigned long *startp, unsigned long *lastp)
{
	unsigned long s, l, c = clusters[below(8)];

	/*
	 * Mostly narrow intervals, so that queries must prune; a few wide
	 * ones, so that subtree_last matters far from a node's start.
	 */
	switch (below(64)) {
	case 0 ... 27:
		/* Small, near a cluster: the common case. */
		s = add_clamped(c, below(1 << 16));
		l = add_clamped(s, below(4096));
		break;
	case 28 ... 43:
		/* Tiny and tightly clustered: many equal and nested. */
		s = add_clamped(c, below(64));
		l = add_clamped(s, below(64));
		break;
	case 44 ... 47:
		/* Small, anywhere. */
		s = rnd_ulong();
		l = add_clamped(s, below(1 << 12));
		break;
	case 48 ... 50:
		/* Large, from a cluster, of any order of magnitude. */
		s = add_clamped(c, below(1 << 20));
		/* Separate statements fix the order of the draws. */
		l = below(64);
		l = (unsigned long)(rnd() >> l);
		l = add_clamped(s, l);
		break;
	case 51 ... 58:
		/* A copy of a live interval. */
		if (nlive) {
			const struct tnode *t = &pool[live[below(nlive)]];

			s = t->n.start;
			l = t->n.last;
			break;
		}
		/* fall through */
	case 59:
		/* Anywhere, any size. */
		s = rnd_ulong();
		l = rnd_ulong();
		if (s > l) {
			unsigned long t = s;

			s = l;
			l = t;
		}
		break;
	default:
		/* Edges of the address space. */
		switch (below(6)) {
		case 0:
			s = 0;
			l = below(1 << 16);
			break;
		case 1:
			s = ULONG_MAX - below(1 << 16);
			l = ULONG_MAX;
			break;
		case 2:
			s = 0;
			l = ULONG_MAX;
			break;
		case 3:
			s = l = below(2) ? 0 : ULONG_MAX;
			break;
		case 4:
			s = rnd_ulong();
			l = ULONG_MAX;
			break;
		default:
			s = 0;
			l = rnd_ulong();
			break;
		}
		break;
	}
	*startp = s;
	*lastp = l;
}

static struct tnode *to_tnode(struct uhmm_itree_node *n)
{
	uintptr_t p = (uintptr_t)n;

	if (p < (uintptr_t)&pool[0] || p >= (uintptr_t)&pool[POOL])
		return NULL;
	return (struct tnode *)((char *)n - offsetof(struct tnode, n));
}

static bool overlaps(const struct uhmm_itree_node *n, unsigned long s,
		     unsigned long l)
{
	return n->start <= l && s <= n->last;
}

struct stats {
	unsigned long ops, max_live, queries, overlaps;
};

/* Where we are, for a crash report: a corrupt tree may crash a walk. */
static volatile uint64_t cur_seed;
static volatile unsigned long cur_op;

static void crash(int sig)
{
	char buf[128];
	int len;

	/* snprintf is not async-signal-safe, but the program is dying. */
	len = snprintf(buf, sizeof(buf),
		       "FAIL seed %llu op %lu: signal %d (replay: itree-random %llu)\n",
		       (unsigned long long)cur_seed, cur_op, sig,
		       (unsigned long long)cur_seed);
	if (len > 0)
		len = (int)write(2, buf, (size_t)len);
	_exit(T_FAIL);
}

static void fail(uint64_t seed, unsigned long op, const char *what)
{
	fprintf(stderr, "FAIL seed %llu op %lu: %s (replay: itree-random %llu)\n",
		(unsigned long long)seed, op, what, (unsigned long long)seed);
}

/* Returns 0 if the enumeration of [s, l] matches the model. */
static int query(struct uhmm_itree *tree, unsigned long s, unsigned long l,
		 unsigned long gen, struct stats *st, const char **why)
{
	struct uhmm_itree_node *n;
	unsigned long found = 0, expected = 0, prev_start = 0;
	int i;

	for (n = uhmm_itree_first(tree, s, l); n;
	     n = uhmm_itree_next(n, s, l)) {
		struct tnode *t = to_tnode(n);

		if (!t || t->live < 0) {
			*why = "enumeration returned a node not in the tree";
			return -1;
		}
		if (!overlaps(n, s, l)) {
			*why = "enumeration returned a non-overlapping node";
			return -1;
		}
		if (t->stamp == gen) {
			*why = "enumeration returned a node twice";
			return -1;
		}
		if (n->start < prev_start) {
			*why = "enumeration out of start order";
			return -1;
		}
		prev_start = n->start;
		t->stamp = gen;
		if (++found > (unsigned long)nlive) {
			*why = "enumeration longer than the live set";
			return -1;
		}
	}
	for (i = 0; i < nlive; i++) {
		const struct tnode *t = &pool[live[i]];

		if (!overlaps(&t->n, s, l))
			continue;
		expected++;
		if (t->stamp != gen) {
			*why = "enumeration missed an overlapping node";
			return -1;
		}
	}
	/* Every reported node overlaps and is distinct: counts settle it. */
	if (found != expected) {
		*why = "enumeration and model differ in size";
		return -1;
	}
	st->queries++;
	st->overlaps += found;
	return 0;
}

static int run_seed(uint64_t seed, unsigned long nops)
{
	struct uhmm_itree tree = UHMM_ITREE_INIT;
	struct stats st = { 0 };
	unsigned long op, gen = 0, target;
	const char *why = NULL;
	bool growing = true;
	int i, rc;

	cur_seed = seed;
	rng_state = seed;
	nlive = 0;
	nfree = POOL;
	for (i = 0; i < POOL; i++) {
		freelist[i] = POOL - 1 - i;
		pool[i].live = -1;
		pool[i].stamp = 0;
	}
	clusters[0] = 0;
	clusters[1] = ULONG_MAX - (1 << 16);
	for (i = 2; i < 8; i++)
		clusters[i] = rnd_ulong();
	target = 2000 + below(POOL - 2000);

	if (uhmm_itree_first(&tree, 0, ULONG_MAX) || !uhmm_itree_empty(&tree)) {
		fail(seed, 0, "empty tree is not empty");
		return -1;
	}

	for (op = 1; op <= nops; op++) {
		unsigned long r = below(100);

		cur_op = op;

		/* Swing the live set between small and several thousand. */
		if (growing && (unsigned long)nlive >= target) {
			growing = false;
			target = below(4) ? below(300) : 0;
		} else if (!growing && (unsigned long)nlive <= target) {
			growing = true;
			target = 2000 + below(POOL - 2000);
		}

		if (r < 25) {
			unsigned long s, l;

			/* Mostly intervals like the stored ones, so that
			 * results are small and pruning is exercised; a few
			 * points and whole-space queries. */
			if (below(16) == 0) {
				s = below(4) ? rnd_ulong() : 0;
				l = below(8) ? s : ULONG_MAX;
			} else {
				random_interval(&s, &l);
			}
			if (query(&tree, s, l, ++gen, &st, &why)) {
				fail(seed, op, why);
				fprintf(stderr, "  query [%#lx, %#lx], %d live\n",
					s, l, nlive);
				return -1;
			}
		} else if (nlive && (!nfree || r < (growing ? 40u : 85u))) {
			int k = (int)below(nlive), idx = live[k];
			struct tnode *t = &pool[idx];

			uhmm_itree_remove(&tree, &t->n);
			t->live = -1;
			live[k] = live[--nlive];
			if (k != nlive)
				pool[live[k]].live = k;
			freelist[nfree++] = idx;
		} else if (nfree) {
			int idx = freelist[--nfree];
			struct tnode *t = &pool[idx];

			random_interval(&t->n.start, &t->n.last);
			uhmm_itree_insert(&tree, &t->n);
			t->live = nlive;
			live[nlive++] = idx;
			if ((unsigned long)nlive > st.max_live)
				st.max_live = nlive;
		}
		if (uhmm_itree_empty(&tree) != (nlive == 0)) {
			fail(seed, op, "uhmm_itree_empty disagrees with model");
			return -1;
		}
		if (op % CHECK_EVERY == 0 || op == nops) {
			rc = uhmm_itree_check(&tree);
			if (rc) {
				char msg[64];

				snprintf(msg, sizeof(msg),
					 "uhmm_itree_check() = %d", rc);
				fail(seed, op, msg);
				return -1;
			}
		}
		st.ops++;
	}

	/* Drain, so every removal shape is also taken down to empty. */
	while (nlive) {
		struct tnode *t = &pool[live[--nlive]];

		uhmm_itree_remove(&tree, &t->n);
		t->live = -1;
		if (nlive % 512 == 0 && (rc = uhmm_itree_check(&tree))) {
			fail(seed, op, "uhmm_itree_check() failed while draining");
			return -1;
		}
	}
	if (!uhmm_itree_empty(&tree)) {
		fail(seed, op, "tree not empty after removing every node");
		return -1;
	}

	printf("seed %llu: %lu ops, max %lu live, %lu queries, "
	       "%lu overlaps checked\n", (unsigned long long)seed, st.ops,
	       st.max_live, st.queries, st.overlaps);
	return 0;
}

int main(int argc, char **argv)
{
	static const uint64_t seeds[] = { 1, 2, 3, 0x5eed, 0xdeadbeefcafeULL,
					  20240601 };
	double scale = t_scale();
	unsigned long nops = (unsigned long)(BASE_OPS * scale);
	size_t i;

	signal(SIGSEGV, crash);
	signal(SIGBUS, crash);
	/* The property needs its 10^5 operations per seed even in CI. */
	if (nops < 100000)
		nops = 100000;
	if (scale != 1.0)
		printf("UHMM_TEST_SCALE=%g: %lu ops per seed\n", scale, nops);

	if (argc > 2) {
		fprintf(stderr, "usage: %s [SEED]\n", argv[0]);
		return T_FAIL;
	}
	if (argc == 2) {
		char *end;
		uint64_t seed;

		errno = 0;
		seed = strtoull(argv[1], &end, 0);
		if (errno || end == argv[1] || *end) {
			fprintf(stderr, "bad seed '%s'\n", argv[1]);
			return T_FAIL;
		}
		CHECK(run_seed(seed, nops) == 0);
		return t_result();
	}
	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		CHECK(run_seed(seeds[i], nops) == 0);
	return t_result();
}
