#include "inbound/dnsbl_health.h"

namespace tern::inbound {

bool dnsbl_zone_healthy(DnsblProbe must_be_listed, DnsblProbe must_not_be_listed) {
	if (must_be_listed == DnsblProbe::not_listed) return false;
	if (must_not_be_listed == DnsblProbe::listed) return false;
	return true;
}

bool dnsbl_health_stale(int64_t checked_at, int64_t now) {
	return checked_at == 0 || now - checked_at >= dnsbl_health_ttl_s;
}

}  // namespace tern::inbound
