// The queue's MTA-STS policies in memory (queue/sts_cache.h): a policy is
// found until its max_age passes, and the cache keeps at most its bound of
// domains, dropping the expired first and then the least recently used
// (doc/behaviour.md D44); what it drops is handed back for the table.
#include <doctest/doctest.h>

#include "queue/sts_cache.h"

using namespace tern;
namespace sts = tern::mailauth::mta_sts;

namespace {

const int64_t now = 1800000000;

store::StoredStsPolicy policy(const std::string& domain, int64_t fetched, int64_t max_age = 86400) {
	store::StoredStsPolicy p;
	p.domain = domain;
	p.id = "id-" + domain;
	p.policy.mode = sts::Mode::enforce;
	p.policy.max_age = max_age;
	p.policy.mx = {"mx." + domain};
	p.expires = fetched + max_age;
	return p;
}

}  // namespace

TEST_CASE("MTA-STS cache: a policy is found, in any case, until its max_age passes") {
	queue::StsCache cache(10);
	std::vector<std::string> dropped;
	const store::StoredStsPolicy& kept = cache.put(policy("example.com", now, 100), now, dropped);
	CHECK(kept.id == "id-example.com");
	CHECK(dropped.empty());
	REQUIRE(cache.find("Example.COM", now + 99) != nullptr);
	CHECK(cache.find("example.com", now + 99)->policy.mx == std::vector<std::string>{"mx.example.com"});
	CHECK(cache.find("example.com", now + 100) == nullptr);
	CHECK(cache.find("other.example", now) == nullptr);
	// A new policy of the domain replaces its old one without dropping it.
	cache.put(policy("example.com", now + 50, 200), now + 50, dropped);
	CHECK(dropped.empty());
	CHECK(cache.size() == 1);
	CHECK(cache.find("example.com", now + 200) != nullptr);
}

TEST_CASE("MTA-STS cache: beyond its bound the least recently used domain goes (D44)") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	cache.put(policy("a.example", now), now, dropped);
	cache.put(policy("b.example", now + 1), now + 1, dropped);
	cache.put(policy("c.example", now + 2), now + 2, dropped);
	CHECK(dropped.empty());
	// a.example is mailed again: b.example is now the one used longest ago.
	CHECK(cache.find("a.example", now + 3) != nullptr);
	cache.put(policy("d.example", now + 4), now + 4, dropped);
	CHECK(dropped == std::vector<std::string>{"b.example"});
	CHECK(cache.size() == 3);
	CHECK(cache.find("b.example", now + 5) == nullptr);
	CHECK(cache.find("a.example", now + 5) != nullptr);
	CHECK(cache.find("d.example", now + 5) != nullptr);
	// Many domains mailed once each keep the cache at its bound.
	dropped.clear();
	for (int i = 0; i < 10; i++)
		cache.put(policy("many" + std::to_string(i) + ".example", now + 10 + i), now + 10 + i, dropped);
	CHECK(cache.size() == 3);
	CHECK(dropped.size() == 10);
}

TEST_CASE("MTA-STS cache: expired policies go first, whatever their last use") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	cache.put(policy("short.example", now, 10), now, dropped);
	cache.put(policy("b.example", now), now, dropped);
	cache.put(policy("c.example", now), now, dropped);
	cache.put(policy("d.example", now + 20), now + 20, dropped);
	CHECK(dropped == std::vector<std::string>{"short.example"});
	CHECK(cache.find("b.example", now + 20) != nullptr);
	CHECK(cache.find("c.example", now + 20) != nullptr);
}

TEST_CASE("MTA-STS cache: policies read from the database count as used when fetched") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	// Fetched while the table was read: it stays, the table's copy does not replace it.
	cache.put(policy("fresh.example", now), now, dropped);
	std::vector<store::StoredStsPolicy> loaded = {
	    policy("fresh.example", now - 500), policy("old.example", now - 300), policy("older.example", now - 400),
	    policy("recent.example", now - 100)};
	std::vector<std::string> gone = cache.add_loaded(std::move(loaded), now);
	CHECK(gone == std::vector<std::string>{"older.example"});
	CHECK(cache.size() == 3);
	REQUIRE(cache.find("fresh.example", now) != nullptr);
	CHECK(cache.find("fresh.example", now)->expires == now + 86400);
	CHECK(cache.find("old.example", now) != nullptr);
	CHECK(cache.find("recent.example", now) != nullptr);
}
