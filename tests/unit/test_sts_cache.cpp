// The queue's MTA-STS policies in memory (queue/sts_cache.h): a policy is
// found until its max_age passes, and the cache keeps at most its bound of
// domains, dropping the expired first and then the least recently used
// (doc/behaviour.md D44), but never for room the policy of a domain with
// mail in the queue; what it drops is handed back for the table.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

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

// The queue holds no mail for any domain.
const queue::StsCache::HasQueuedMail no_queued_mail = [](const std::string&) { return false; };

queue::StsCache::HasQueuedMail queued_mail_for(const std::set<std::string>& domains) {
	return [domains](const std::string& domain) { return domains.count(domain) != 0; };
}

}  // namespace

TEST_CASE("MTA-STS cache: a policy is found, in any case, until its max_age passes") {
	queue::StsCache cache(10);
	std::vector<std::string> dropped;
	const store::StoredStsPolicy& kept = cache.put(policy("example.com", now, 100), now, no_queued_mail, dropped);
	CHECK(kept.id == "id-example.com");
	CHECK(dropped.empty());
	REQUIRE(cache.find("Example.COM", now + 99) != nullptr);
	CHECK(cache.find("example.com", now + 99)->policy.mx == std::vector<std::string>{"mx.example.com"});
	CHECK(cache.find("example.com", now + 100) == nullptr);
	CHECK(cache.find("other.example", now) == nullptr);
	// A new policy of the domain replaces its old one without dropping it.
	cache.put(policy("example.com", now + 50, 200), now + 50, no_queued_mail, dropped);
	CHECK(dropped.empty());
	CHECK(cache.size() == 1);
	CHECK(cache.find("example.com", now + 200) != nullptr);
}

TEST_CASE("MTA-STS cache: beyond its bound the least recently used domain goes (D44)") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	cache.put(policy("a.example", now), now, no_queued_mail, dropped);
	cache.put(policy("b.example", now + 1), now + 1, no_queued_mail, dropped);
	cache.put(policy("c.example", now + 2), now + 2, no_queued_mail, dropped);
	CHECK(dropped.empty());
	// a.example is mailed again: b.example is now the one used longest ago.
	CHECK(cache.find("a.example", now + 3) != nullptr);
	cache.put(policy("d.example", now + 4), now + 4, no_queued_mail, dropped);
	CHECK(dropped == std::vector<std::string>{"b.example"});
	CHECK(cache.size() == 3);
	CHECK(cache.find("b.example", now + 5) == nullptr);
	CHECK(cache.find("a.example", now + 5) != nullptr);
	CHECK(cache.find("d.example", now + 5) != nullptr);
	// Many domains mailed once each keep the cache at its bound.
	dropped.clear();
	for (int i = 0; i < 10; i++)
		cache.put(policy("many" + std::to_string(i) + ".example", now + 10 + i), now + 10 + i, no_queued_mail,
		          dropped);
	CHECK(cache.size() == 3);
	CHECK(dropped.size() == 10);
}

TEST_CASE("MTA-STS cache: expired policies go first, whatever their last use") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	cache.put(policy("short.example", now, 10), now, no_queued_mail, dropped);
	cache.put(policy("b.example", now), now, no_queued_mail, dropped);
	cache.put(policy("c.example", now), now, no_queued_mail, dropped);
	cache.put(policy("d.example", now + 20), now + 20, no_queued_mail, dropped);
	CHECK(dropped == std::vector<std::string>{"short.example"});
	CHECK(cache.find("b.example", now + 20) != nullptr);
	CHECK(cache.find("c.example", now + 20) != nullptr);
}

TEST_CASE("MTA-STS cache: policies read from the database count as used when fetched") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	// Fetched while the table was read: it stays, the table's copy does not replace it.
	cache.put(policy("fresh.example", now), now, no_queued_mail, dropped);
	std::vector<store::StoredStsPolicy> loaded = {
	    policy("fresh.example", now - 500), policy("old.example", now - 300), policy("older.example", now - 400),
	    policy("recent.example", now - 100)};
	std::vector<std::string> gone = cache.add_loaded(std::move(loaded), now, no_queued_mail);
	CHECK(gone == std::vector<std::string>{"older.example"});
	CHECK(cache.size() == 3);
	REQUIRE(cache.find("fresh.example", now) != nullptr);
	CHECK(cache.find("fresh.example", now)->expires == now + 86400);
	CHECK(cache.find("old.example", now) != nullptr);
	CHECK(cache.find("recent.example", now) != nullptr);
}

TEST_CASE("MTA-STS cache: a domain with queued mail keeps its policy however many domains come after (D44)") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	// waiting.example's mail waits hours for its next attempt: its policy,
	// used longest ago, is the one the next attempt relies on against a
	// blocked fetch (RFC 8461 10.2).
	const auto has_queued_mail = queued_mail_for({"waiting.example"});
	cache.put(policy("waiting.example", now), now, has_queued_mail, dropped);
	for (int i = 1; i <= 1000; i++)
		cache.put(policy("other" + std::to_string(i) + ".example", now + i), now + i, has_queued_mail, dropped);
	CHECK(cache.size() == 3);
	CHECK(dropped.size() == 998);
	CHECK(std::count(dropped.begin(), dropped.end(), "waiting.example") == 0);
	REQUIRE(cache.find("waiting.example", now + 1001) != nullptr);
	CHECK(cache.find("waiting.example", now + 1001)->id == "id-waiting.example");
	CHECK(cache.find("other1000.example", now + 1001) != nullptr);
}

TEST_CASE("MTA-STS cache: a domain with queued mail loses its policy when its max_age passes") {
	queue::StsCache cache(3);
	std::vector<std::string> dropped;
	const auto has_queued_mail = queued_mail_for({"waiting.example"});
	cache.put(policy("waiting.example", now, 100), now, has_queued_mail, dropped);
	cache.put(policy("b.example", now + 1), now + 1, has_queued_mail, dropped);
	CHECK(dropped.empty());
	// RFC 8461 5.1: past its max_age the policy is not in force, queued mail or not.
	CHECK(cache.find("waiting.example", now + 100) == nullptr);
	cache.put(policy("c.example", now + 100), now + 100, has_queued_mail, dropped);
	CHECK(dropped == std::vector<std::string>{"waiting.example"});
	CHECK(cache.size() == 2);
}

TEST_CASE("MTA-STS cache: beyond its bound only while the domains kept all have queued mail") {
	queue::StsCache cache(2);
	std::vector<std::string> dropped;
	std::set<std::string> queued = {"a.example", "b.example", "c.example"};
	const auto has_queued_mail = [&queued](const std::string& domain) { return queued.count(domain) != 0; };
	cache.put(policy("a.example", now), now, has_queued_mail, dropped);
	cache.put(policy("b.example", now + 1), now + 1, has_queued_mail, dropped);
	cache.put(policy("c.example", now + 2), now + 2, has_queued_mail, dropped);
	CHECK(dropped.empty());
	CHECK(cache.size() == 3);
	CHECK(cache.find("a.example", now + 3) != nullptr);
	// Once their mail has left the queue, the next policy kept brings the
	// cache back to its bound, the least recently used first.
	queued.clear();
	cache.put(policy("d.example", now + 4), now + 4, has_queued_mail, dropped);
	CHECK(dropped == std::vector<std::string>{"b.example", "c.example"});
	CHECK(cache.size() == 2);
	CHECK(cache.find("a.example", now + 5) != nullptr);
	CHECK(cache.find("d.example", now + 5) != nullptr);
}

TEST_CASE("MTA-STS cache: policies read from the database stay for domains with queued mail") {
	queue::StsCache cache(2);
	std::vector<store::StoredStsPolicy> loaded = {policy("waiting.example", now - 900),
	                                              policy("a.example", now - 300), policy("b.example", now - 200),
	                                              policy("c.example", now - 100)};
	std::vector<std::string> gone = cache.add_loaded(std::move(loaded), now, queued_mail_for({"waiting.example"}));
	CHECK(gone == std::vector<std::string>{"a.example", "b.example"});
	CHECK(cache.size() == 2);
	CHECK(cache.find("waiting.example", now) != nullptr);
	CHECK(cache.find("c.example", now) != nullptr);
}
