// EarlyLookup: a result started early, waited for later.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/early_lookup.h"

using tern::server::EarlyLookup;

TEST_CASE("early_lookup: a waiter registered before the result runs when it arrives, in order") {
	EarlyLookup<int> early;
	std::vector<std::string> seen;
	early.get([&](const int& v) { seen.push_back("a" + std::to_string(v)); });
	early.get([&](const int& v) { seen.push_back("b" + std::to_string(v)); });
	CHECK_FALSE(early.ready());
	CHECK(seen.empty());
	early.set(7);
	CHECK(early.ready());
	CHECK(seen == std::vector<std::string>{"a7", "b7"});
}

TEST_CASE("early_lookup: a waiter registered after the result runs at once, once") {
	EarlyLookup<std::string> early;
	early.set("pass");
	int calls = 0;
	std::string got;
	early.get([&](const std::string& v) {
		calls++;
		got = v;
	});
	CHECK(calls == 1);
	CHECK(got == "pass");
}

TEST_CASE("early_lookup: a waiter may register another waiter while the result is delivered") {
	EarlyLookup<int> early;
	int inner = 0;
	early.get([&](const int&) { early.get([&](const int& v) { inner = v; }); });
	early.set(3);
	CHECK(inner == 3);
}
