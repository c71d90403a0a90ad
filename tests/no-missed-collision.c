/* SPDX-License-Identifier: MIT */
/*
 * Invariant 2, no missed collision: an invalidation overlapping sub after
 * read_begin(sub) == s makes read_retry(sub, s) true; one that does not
 * overlap (even by one byte short, on either side) leaves it false.
 */
#include "device.h"
#include "invariant.h"

#define START 0x40000UL
#define LEN 0x3000UL

struct probe {
	unsigned long start, end;
	bool hits;
};

int main(void)
{
	static const struct probe probes[] = {
		{ START - 0x1000, START, false },	  /* ends where sub starts */
		{ START + LEN, START + LEN + 1, false },  /* starts past it */
		{ 0, START, false },
		{ START - 1, START + 1, true },		  /* first byte */
		{ START + LEN - 1, START + LEN, true },	  /* last byte */
		{ START + 0x1000, START + 0x2000, true }, /* inside */
		{ 0, ~0UL, true },			  /* everything */
	};
	struct t_dev dev = { 0 };
	struct uhmm_mm *mm;

	mm = t_open_variant();
	REQUIRE(t_dev_insert(&dev, mm, START, LEN) == 0);

	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		const struct probe *p = &probes[i];
		unsigned long seq = uhmm_interval_read_begin(&dev.sub);
		bool retry;

		CHECK(!uhmm_interval_check_retry(&dev.sub, seq));
		REQUIRE(uhmm_mm_invalidate(mm, p->start, p->end,
					   UHMM_EVENT_UNMAP) == 0);
		pthread_mutex_lock(&dev.lock);
		retry = uhmm_interval_read_retry(&dev.sub, seq);
		pthread_mutex_unlock(&dev.lock);
		if (retry != p->hits)
			fprintf(stderr, "probe [%#lx, %#lx): retry %d\n",
				p->start, p->end, retry);
		CHECK_EQ(retry, p->hits);
		CHECK_EQ(uhmm_interval_check_retry(&dev.sub, seq), p->hits);
		if (p->hits) {
			CHECK_EQ(dev.last_range.start, p->start);
			CHECK_EQ(dev.last_range.end, p->end);
			CHECK_EQ(dev.last_range.event, UHMM_EVENT_UNMAP);
			CHECK(uhmm_range_blockable(&dev.last_range));
		}
	}

	/* The seq from a collided read stays stale: a fresh begin is needed. */
	unsigned long seq = uhmm_interval_read_begin(&dev.sub);
	REQUIRE(uhmm_mm_invalidate(mm, START, START + 1, UHMM_EVENT_CLEAR) == 0);
	CHECK(uhmm_interval_read_retry(&dev.sub, seq));
	CHECK(uhmm_interval_read_retry(&dev.sub, seq));
	seq = uhmm_interval_read_begin(&dev.sub);
	CHECK(!uhmm_interval_read_retry(&dev.sub, seq));
	CHECK_EQ(t_dev_calls(&dev), 5);

	REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
