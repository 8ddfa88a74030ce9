// Requests that finish out of order (util/latest_wins.h): the SIGHUP
// reload's configuration loads and the queue's loads of the verified TLS
// context.
#include <doctest/doctest.h>

#include "util/latest_wins.h"

using tern::LatestWins;

TEST_CASE("latest wins: only the last request started is the latest") {
	LatestWins loads;
	uint64_t first = loads.start();
	CHECK(loads.is_latest(first));
	uint64_t second = loads.start();
	CHECK_FALSE(loads.is_latest(first));  // finishing after the second started
	CHECK(loads.is_latest(second));
	// A request started only to make the ones under way stale.
	loads.start();
	CHECK_FALSE(loads.is_latest(second));
}

TEST_CASE("latest wins: a result is dropped once a later one is in force") {
	LatestWins reloads;
	uint64_t first = reloads.start();
	uint64_t second = reloads.start();
	uint64_t third = reloads.start();
	// The first finishes while the later ones run: it comes in force.
	CHECK_FALSE(reloads.overtaken(first));
	reloads.put_in_force(first);
	// The third finishes next; the second, finishing after it, is stale.
	CHECK_FALSE(reloads.overtaken(third));
	reloads.put_in_force(third);
	CHECK(reloads.overtaken(second));
	CHECK_FALSE(reloads.overtaken(third));
}

TEST_CASE("latest wins: a request that failed leaves an earlier one free to come in force") {
	LatestWins reloads;
	uint64_t first = reloads.start();
	uint64_t second = reloads.start();
	// The second failed and was not put in force; the first, finishing
	// after it, still counts.
	CHECK_FALSE(reloads.overtaken(second));
	CHECK_FALSE(reloads.overtaken(first));
}
