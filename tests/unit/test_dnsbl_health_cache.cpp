// The DNSBL zone health cache (src/server/dnsbl_health_cache) over canned
// DNS: an unhealthy zone is filtered out, answers are kept for 4 hours, an
// error during the check counts as healthy.
#include <doctest/doctest.h>

#include "server/dnsbl_health_cache.h"

using namespace tern;
using mailauth::RrType;

namespace {

void list_test_address(mailauth::CannedResolver& r, const std::string& zone, const std::string& last_octet) {
	r.set_records(last_octet + ".0.0.127." + zone, RrType::A, {"127.0.0.2"});
}

}  // namespace

TEST_CASE("dnsbl health cache: only healthy zones pass, answers are kept 4 hours") {
	mailauth::CannedResolver dns;
	list_test_address(dns, "good.example", "2");        // lists 127.0.0.2 only
	list_test_address(dns, "everything.example", "2");  // lists the whole internet
	list_test_address(dns, "everything.example", "1");
	// dead.example lists nothing.
	mailauth::DnsAnswer servfail;
	servfail.status = mailauth::DnsStatus::temperror;
	dns.set("2.0.0.127.flaky.example", RrType::A, servfail);
	int64_t now = 1700000000;
	server::DnsblHealthCache cache(dns, [&] { return now; });

	std::vector<std::string> got;
	int calls = 0;
	auto ask = [&] {
		cache.healthy_zones(1, {"good.example", "dead.example", "everything.example", "flaky.example"},
		                    [&](const std::vector<std::string>& zones) {
					    got = zones;
					    ++calls;
				    });
	};
	ask();
	CHECK(calls == 1);
	CHECK(got == std::vector<std::string>{"good.example", "flaky.example"});
	CHECK(cache.unhealthy_count() == 2);
	int queries = dns.queries();
	CHECK(queries == 8);

	// Within 4 hours nothing is asked again, even when the zone has changed.
	list_test_address(dns, "dead.example", "2");
	now += 4 * 3600 - 1;
	ask();
	CHECK(calls == 2);
	CHECK(dns.queries() == queries);
	CHECK(got == std::vector<std::string>{"good.example", "flaky.example"});

	// After 4 hours each zone is asked again.
	now += 1;
	ask();
	CHECK(calls == 3);
	CHECK(dns.queries() == queries + 8);
	CHECK(got == std::vector<std::string>{"good.example", "dead.example", "flaky.example"});
	CHECK(cache.unhealthy_count() == 1);
}

TEST_CASE("dnsbl health cache: no zones, no lookups") {
	mailauth::CannedResolver dns;
	server::DnsblHealthCache cache(dns);
	bool called = false;
	cache.healthy_zones(1, {}, [&](const std::vector<std::string>& zones) {
		called = true;
		CHECK(zones.empty());
	});
	CHECK(called);
	CHECK(dns.queries() == 0);
}

TEST_CASE("dnsbl health: what a probe says about a zone") {
	mailauth::CannedResolver dns;
	list_test_address(dns, "all.example", "1");
	list_test_address(dns, "all.example", "2");
	server::DnsblZoneHealth seen;
	server::probe_dnsbl_zone(dns, 1, "all.example", [&](const server::DnsblZoneHealth& h) { seen = h; });
	CHECK_FALSE(seen.healthy);
	CHECK(seen.why() == "lists 127.0.0.1");
	server::probe_dnsbl_zone(dns, 1, "none.example", [&](const server::DnsblZoneHealth& h) { seen = h; });
	CHECK_FALSE(seen.healthy);
	CHECK(seen.why() == "does not list 127.0.0.2");
	CHECK(seen.test_127_0_0_2 == inbound::DnsblProbe::not_listed);
}
