// iprev (RFC 8601 3): the client's address must have a PTR name whose
// forward lookup contains the address again (doc/behaviour.md §9 step 3).
// Used in the Received and Authentication-Results headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mailauth/resolver.h"
#include "util/ipaddr.h"

namespace tern::mailauth {

// Of a PTR answer's names, the first ten are looked up forward, as SPF
// does for its "ptr" mechanism (RFC 7208 4.6.4): each is a query made for
// whoever connects (doc/behaviour.md D18).
inline constexpr size_t max_iprev_names = 10;

enum class IprevStatus { pass, fail, temperror, permerror };
const char* iprev_status_name(IprevStatus);

struct IprevResult {
	IprevStatus status = IprevStatus::temperror;
	std::string name;                // the verified name (pass), else ""
	std::vector<std::string> names;  // the PTR names, at most max_iprev_names
};

// The DNS name for a PTR lookup of an address: "4.3.2.1.in-addr.arpa" or
// the nibble form under ip6.arpa.
std::string reverse_dns_name(const IpAddr& ip);

void iprev_lookup(Resolver& r, uint64_t owner, const IpAddr& ip, std::function<void(const IprevResult&)> done);

}  // namespace tern::mailauth
