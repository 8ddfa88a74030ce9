// DNS blocklist zone health on the loop (doc/behaviour.md §9, step 10): a
// zone is asked whether it lists 127.0.0.2 (it must) and 127.0.0.1 (it must
// not, RFC 5782 5); a zone that fails is skipped until it is asked again
// after dnsbl_health_ttl_s (4 hours). The rule itself is pure
// (inbound/dnsbl_health.h); this keeps the answers and runs the probes
// through the asynchronous resolver, so the loop never waits on DNS.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "inbound/dnsbl_health.h"
#include "mailauth/resolver.h"

namespace tern::server {

// What a zone answered for the two test addresses, and the rule's verdict.
struct DnsblZoneHealth {
	inbound::DnsblProbe test_127_0_0_2 = inbound::DnsblProbe::error;
	inbound::DnsblProbe test_127_0_0_1 = inbound::DnsblProbe::error;
	bool healthy = true;
	std::string why() const;  // for logs and ternctl: what is wrong, "" when healthy
};

// Asks `zone` for both test addresses; `done` runs once on the loop thread
// (synchronously with a canned resolver).
void probe_dnsbl_zone(mailauth::Resolver& resolver, uint64_t owner, const std::string& zone,
                      std::function<void(const DnsblZoneHealth&)> done);

class DnsblHealthCache {
public:
	using Clock = std::function<int64_t()>;  // unix seconds
	explicit DnsblHealthCache(mailauth::Resolver& resolver, Clock now = {});
	~DnsblHealthCache();
	DnsblHealthCache(const DnsblHealthCache&) = delete;
	DnsblHealthCache& operator=(const DnsblHealthCache&) = delete;

	// Calls `done` with the zones of `zones` (same order) that are healthy,
	// after probing those never asked or asked too long ago; one probe per
	// zone at a time, later callers wait for it. A skipped zone is logged
	// for connection `cid`. `done` runs synchronously when no probe is needed.
	void healthy_zones(uint64_t cid, const std::vector<std::string>& zones,
	                   std::function<void(const std::vector<std::string>&)> done);

	// Zones whose last answer was unhealthy (the metrics gauge).
	size_t unhealthy_count() const;

private:
	struct Zone {
		int64_t checked_at = 0;
		bool healthy = true;
		bool probing = false;
		std::vector<std::function<void()>> waiters;
	};
	void probe(const std::string& zone);
	std::vector<std::string> filter(uint64_t cid, const std::vector<std::string>& zones) const;

	mailauth::Resolver& resolver_;
	Clock now_;
	std::map<std::string, Zone> zones_;
};

}  // namespace tern::server
