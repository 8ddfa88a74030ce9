// DNS blocklist lookups (RFC 5782): an address is listed in a zone when the
// zone has an A record for its reversed form.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "mailauth/resolver.h"
#include "util/ipaddr.h"

namespace tern::mailauth {

enum class DnsblStatus { pass, fail, temperror };  // fail: listed

// "4.3.2.1.<zone>" for IPv4, reversed nibbles for IPv6 (RFC 5782 2.1, 2.4).
std::string dnsbl_name(const IpAddr& ip, const std::string& zone);

void dnsbl_lookup(Resolver& r, uint64_t owner, const IpAddr& ip, const std::string& zone,
                  std::function<void(DnsblStatus)> done);

}  // namespace tern::mailauth
