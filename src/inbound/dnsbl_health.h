// Whether a DNS blocklist zone can be trusted (doc/behaviour.md §9, step
// 10): RFC 5782 5 asks every list to list 127.0.0.2 and never 127.0.0.1. A
// zone that breaks either rule is dead or lists the whole internet, and is
// skipped. The answer is kept for a while so the test is not repeated for
// every message.
#pragma once
#include <cstdint>

namespace tern::inbound {

enum class DnsblProbe { listed, not_listed, error };

constexpr int64_t dnsbl_health_ttl_s = 4 * 3600;

// An error during the check counts as healthy: a resolver hiccup must not
// switch off a list.
bool dnsbl_zone_healthy(DnsblProbe test_address_127_0_0_2, DnsblProbe test_address_127_0_0_1);

// Whether a cached answer from `checked_at` must be checked again at `now`.
bool dnsbl_health_stale(int64_t checked_at, int64_t now);

}  // namespace tern::inbound
