// Per-IP limiters (src/server/limiter.h): the reload path keeps counts.
#include <doctest/doctest.h>

#include "server/limiter.h"

using tern::IpAddr;
using tern::server::Limiter;
using tern::server::limiter_window;

TEST_CASE("limiter: set_windows keeps the counts and judges them by the new limits") {
	const IpAddr client = *IpAddr::parse("192.0.2.7");
	const int64_t now = 600;  // start of a minute bucket
	Limiter limiter({limiter_window(60, {5, 30, 90}), limiter_window(86400, {50, 150, 450})});
	for (int i = 0; i < 3; i++) REQUIRE(limiter.add(client, now, 1));
	CHECK(limiter.can_add(client, now, 1));

	// Lowered below what was counted: refused at once.
	limiter.set_windows({limiter_window(60, {2, 30, 90}), limiter_window(86400, {50, 150, 450})});
	CHECK_FALSE(limiter.can_add(client, now + 1, 1));
	// Raised: the three stay counted, one more fits, a fifth does not.
	limiter.set_windows({limiter_window(60, {4, 30, 90}), limiter_window(86400, {50, 150, 450})});
	CHECK(limiter.add(client, now + 2, 1));
	CHECK_FALSE(limiter.can_add(client, now + 2, 1));
	// The minute bucket still rolls over as before.
	CHECK(limiter.can_add(client, now + 60, 1));

	// Windows of other lengths start afresh.
	limiter.set_windows({limiter_window(3600, {1, 1, 1})});
	CHECK(limiter.add(client, now + 61, 1));
	CHECK_FALSE(limiter.can_add(client, now + 61, 1));
}
