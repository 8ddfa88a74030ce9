// The DNS records a domain publishes for mail served by tern, as zone-file
// text (RFC 1035 5.1): MX, SPF (RFC 7208), DKIM keys (RFC 6376 3.6.2),
// DMARC (RFC 7489 6.1), and the address and PTR records the host name
// needs. Pure: the caller gathers the facts from the config and the keys.
#pragma once
#include <string>
#include <vector>

namespace tern::mailauth {

struct DomainRecordFacts {
	std::string domain;    // ASCII, lower case, no trailing dot
	std::string hostname;  // the MX host (ternd's hostname), ASCII
	// The server's public addresses (IPv4 or IPv6 text); empty when the
	// listeners bind wildcard or loopback addresses only.
	std::vector<std::string> ips;
	struct DkimKey {
		std::string selector;
		std::string txt;    // "v=DKIM1; k=rsa; p=..." ("" when the key did not load)
		std::string error;  // why the key did not load
	};
	std::vector<DkimKey> dkim;
	// Where DMARC aggregate reports go (RFC 7489 7.2), "" for none.
	std::string dmarc_report_address;
};

// The zone-file lines for `facts`, commented, owner names fully qualified.
std::string dns_records_text(const DomainRecordFacts& facts);

// `text` as one or more quoted character-strings of at most 255 octets
// each (RFC 1035 3.3.14; RFC 7208 3.3 and RFC 6376 3.6.2.2 join them).
std::string zone_txt_strings(const std::string& text);

}  // namespace tern::mailauth
