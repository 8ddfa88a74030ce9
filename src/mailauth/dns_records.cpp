#include "mailauth/dns_records.h"

#include <algorithm>

#include "mailauth/iprev.h"
#include "util/ipaddr.h"

namespace tern::mailauth {

std::string zone_txt_strings(const std::string& text) {
	// RFC 1035 5.1: inside a quoted string, " and \ are escaped.
	std::string out;
	size_t in_string = 0;
	out += '"';
	for (char c : text) {
		if (in_string == 255) {
			out += "\" \"";
			in_string = 0;
		}
		if (c == '"' || c == '\\') out += '\\';
		out += c;
		in_string++;
	}
	out += '"';
	return out;
}

namespace {

// One record line: owner, class and type, data; owners padded to a column.
std::string record(const std::string& owner, const std::string& type, const std::string& data) {
	std::string line = owner;
	line.resize(std::max<size_t>(line.size() + 1, 32), ' ');
	return line + "IN " + type + std::string(type.size() < 6 ? 6 - type.size() : 1, ' ') + data + "\n";
}

std::string fqdn(const std::string& name) { return name + "."; }

bool in_zone(const std::string& name, const std::string& domain) {
	return name == domain ||
	    (name.size() > domain.size() && name.compare(name.size() - domain.size(), domain.size(), domain) == 0 &&
	     name[name.size() - domain.size() - 1] == '.');
}

}  // namespace

std::string dns_records_text(const DomainRecordFacts& f) {
	std::vector<IpAddr> addrs;
	for (const auto& text : f.ips)
		if (auto ip = IpAddr::parse(text)) addrs.push_back(*ip);
	std::string out;
	out += "; DNS records for " + f.domain + " (zone-file syntax; publish them at the domain's DNS host)\n";

	out += "\n; Mail for " + f.domain + " goes to " + f.hostname + " (RFC 5321 5.1).\n";
	out += record(fqdn(f.domain), "MX", "10 " + fqdn(f.hostname));
	// The MX target needs address records (RFC 5321 5.1: never a CNAME).
	if (addrs.empty()) {
		out += "; " + f.hostname + " needs A (and AAAA) records with the server's public addresses.\n";
	} else {
		std::string prefix = in_zone(f.hostname, f.domain) ? "" : "; in the zone of " + f.hostname + ": ";
		for (const auto& ip : addrs) {
			out += prefix + record(fqdn(f.hostname), ip.v6 ? "AAAA" : "A", ip.to_string());
		}
	}

	// RFC 7208: only this server sends for the domain.
	std::string spf = "v=spf1";
	for (const auto& ip : addrs) spf += (ip.v6 ? " ip6:" : " ip4:") + ip.to_string();
	spf += " mx -all";
	out += "\n; SPF (RFC 7208): mail from " + f.domain + " comes from its MX host only.\n";
	out += record(fqdn(f.domain), "TXT", zone_txt_strings(spf));

	out += "\n; DKIM (RFC 6376 3.6.2): the public key of each selector.\n";
	if (f.dkim.empty())
		out += "; no DKIM selectors are configured for " + f.domain + " (ternctl dkim genkey makes a key).\n";
	for (const auto& key : f.dkim) {
		std::string owner = fqdn(key.selector + "._domainkey." + f.domain);
		if (key.txt.empty())
			out += "; " + owner + " cannot be given: " + key.error + "\n";
		else
			out += record(owner, "TXT", zone_txt_strings(key.txt));
	}

	// RFC 7489 6.1, 6.3: reject what fails; aggregate reports when an address takes them.
	std::string dmarc = "v=DMARC1; p=reject";
	if (!f.dmarc_report_address.empty()) dmarc += "; rua=mailto:" + f.dmarc_report_address;
	out += "\n; DMARC (RFC 7489): reject mail that fails SPF and DKIM alignment.\n";
	out += record(fqdn("_dmarc." + f.domain), "TXT", zone_txt_strings(dmarc));

	out += "\n; PTR: at the provider of each server address, the reverse name must be " + f.hostname + "\n";
	out += "; (receivers check that it and the A/AAAA records agree, RFC 8601 3 iprev).\n";
	if (addrs.empty()) out += "; <reverse name of each public address>  IN PTR  " + fqdn(f.hostname) + "\n";
	for (const auto& ip : addrs) out += "; " + record(reverse_dns_name(ip) + ".", "PTR", fqdn(f.hostname));
	return out;
}

}  // namespace tern::mailauth
