#include "mailauth/dnsbl.h"

#include "mailauth/iprev.h"

namespace tern::mailauth {

std::string dnsbl_name(const IpAddr& ip, const std::string& zone) {
	// The reversed labels are those of the PTR name, without its suffix.
	std::string rev = reverse_dns_name(ip);
	std::string_view suffix = ip.v6 ? "ip6.arpa" : "in-addr.arpa";
	rev.resize(rev.size() - suffix.size());
	return rev + zone;
}

void dnsbl_lookup(Resolver& r, uint64_t owner, const IpAddr& ip, const std::string& zone,
                  std::function<void(DnsblStatus)> done) {
	r.query(owner, dnsbl_name(ip, zone), RrType::A, [done = std::move(done)](const DnsAnswer& a) {
		if (a.found())
			done(DnsblStatus::fail);
		else if (a.not_found())
			done(DnsblStatus::pass);
		else
			done(DnsblStatus::temperror);
	});
}

}  // namespace tern::mailauth
