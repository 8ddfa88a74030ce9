#include "server/dnsbl_health_cache.h"

#include <ctime>
#include <memory>

#include "mailauth/dnsbl.h"
#include "util/log.h"

namespace tern::server {

namespace {

// Queries of the cache are no connection's: an owner no connection id
// takes, so closing a connection never cancels them.
constexpr uint64_t probe_owner = UINT64_MAX - 1;

inbound::DnsblProbe probe_result(const mailauth::DnsAnswer& a) {
	if (a.found()) return inbound::DnsblProbe::listed;
	if (a.not_found()) return inbound::DnsblProbe::not_listed;
	return inbound::DnsblProbe::error;
}

}  // namespace

std::string DnsblZoneHealth::why() const {
	if (healthy) return "";
	if (test_127_0_0_1 == inbound::DnsblProbe::listed) return "lists 127.0.0.1";
	return "does not list 127.0.0.2";
}

void probe_dnsbl_zone(mailauth::Resolver& resolver, uint64_t owner, const std::string& zone,
                      std::function<void(const DnsblZoneHealth&)> done) {
	auto health = std::make_shared<DnsblZoneHealth>();
	auto outstanding = std::make_shared<int>(2);
	auto finish = [health, outstanding, done = std::move(done)] {
		if (--*outstanding != 0) return;
		health->healthy = inbound::dnsbl_zone_healthy(health->test_127_0_0_2, health->test_127_0_0_1);
		done(*health);
	};
	// RFC 5782 5: both test addresses, as any address is looked up.
	resolver.query(owner, mailauth::dnsbl_name(*IpAddr::parse("127.0.0.2"), zone), mailauth::RrType::A,
	               [health, finish](const mailauth::DnsAnswer& a) {
			       health->test_127_0_0_2 = probe_result(a);
			       finish();
		       });
	resolver.query(owner, mailauth::dnsbl_name(*IpAddr::parse("127.0.0.1"), zone), mailauth::RrType::A,
	               [health, finish](const mailauth::DnsAnswer& a) {
			       health->test_127_0_0_1 = probe_result(a);
			       finish();
		       });
}

DnsblHealthCache::DnsblHealthCache(mailauth::Resolver& resolver, Clock now)
	: resolver_(resolver),
	  now_(now ? std::move(now) : Clock([] { return static_cast<int64_t>(std::time(nullptr)); })) {}

DnsblHealthCache::~DnsblHealthCache() { resolver_.cancel_owner(probe_owner); }

void DnsblHealthCache::healthy_zones(uint64_t cid, const std::vector<std::string>& zones,
                                     std::function<void(const std::vector<std::string>&)> done) {
	int64_t now = now_();
	std::vector<std::string> stale;
	for (const auto& z : zones) {
		const Zone& state = zones_[z];
		if (state.probing || inbound::dnsbl_health_stale(state.checked_at, now)) stale.push_back(z);
	}
	// One count per stale zone plus one held until every probe has started,
	// so probes that answer at once cannot finish early.
	auto outstanding = std::make_shared<size_t>(stale.size() + 1);
	auto join = [this, cid, zones, outstanding, done = std::move(done)] {
		if (--*outstanding == 0) done(filter(cid, zones));
	};
	for (const auto& z : stale) {
		Zone& state = zones_[z];
		state.waiters.push_back(join);
		if (!state.probing) probe(z);
	}
	join();
}

void DnsblHealthCache::probe(const std::string& zone) {
	zones_[zone].probing = true;
	probe_dnsbl_zone(resolver_, probe_owner, zone, [this, zone](const DnsblZoneHealth& h) {
		Zone& state = zones_[zone];
		if (state.healthy != h.healthy || state.checked_at == 0) {
			if (h.healthy)
				log::info("dnsbl zone healthy", {{"zone", zone}});
			else
				log::warn("dnsbl zone unhealthy, not used", {{"zone", zone}, {"problem", h.why()}});
		}
		state.healthy = h.healthy;
		state.checked_at = now_();
		state.probing = false;
		auto waiters = std::move(state.waiters);
		state.waiters.clear();
		for (auto& w : waiters) w();
	});
}

std::vector<std::string> DnsblHealthCache::filter(uint64_t cid, const std::vector<std::string>& zones) const {
	std::vector<std::string> out;
	for (const auto& z : zones) {
		auto it = zones_.find(z);
		if (it == zones_.end() || it->second.healthy) {
			out.push_back(z);
			continue;
		}
		log::event(log::Level::info, cid, "dnsbl zone unhealthy, skipped", {{"zone", z}});
	}
	return out;
}

size_t DnsblHealthCache::unhealthy_count() const {
	size_t n = 0;
	for (const auto& [zone, state] : zones_)
		if (!state.healthy) ++n;
	return n;
}

}  // namespace tern::server
