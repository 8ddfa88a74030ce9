// The DNS records `ternctl setup records` prints (mailauth/dns_records.h).
#include <doctest/doctest.h>

#include "mailauth/dns_records.h"

using namespace tern::mailauth;

namespace {

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

DomainRecordFacts example() {
	DomainRecordFacts f;
	f.domain = "example.org";
	f.hostname = "mail.example.org";
	return f;
}

}  // namespace

TEST_CASE("dns records: without addresses, MX, SPF by mx, DMARC without rua and a PTR reminder") {
	std::string text = dns_records_text(example());
	CHECK(has(text, "example.org.                    IN MX    10 mail.example.org.\n"));
	CHECK(has(text, "example.org.                    IN TXT   \"v=spf1 mx -all\"\n"));
	CHECK(has(text, "_dmarc.example.org.             IN TXT   \"v=DMARC1; p=reject\"\n"));
	CHECK(has(text, "; mail.example.org needs A (and AAAA) records"));
	CHECK(has(text, "; <reverse name of each public address>  IN PTR  mail.example.org.\n"));
	CHECK(has(text, "; no DKIM selectors are configured for example.org"));
	// Every line is a record or a comment (zone-file syntax).
	size_t start = 0;
	while (start < text.size()) {
		size_t end = text.find('\n', start);
		std::string line = text.substr(start, end - start);
		CHECK((line.empty() || line[0] == ';' || has(line, " IN ")));
		start = end + 1;
	}
}

TEST_CASE("dns records: the server's addresses go into SPF, A/AAAA and the PTR lines") {
	DomainRecordFacts f = example();
	f.ips = {"192.0.2.7", "2001:db8::7"};
	std::string text = dns_records_text(f);
	CHECK(has(text, "\"v=spf1 ip4:192.0.2.7 ip6:2001:db8::7 mx -all\""));
	CHECK(has(text, "mail.example.org.               IN A     192.0.2.7\n"));
	CHECK(has(text, "mail.example.org.               IN AAAA  2001:db8::7\n"));
	CHECK(has(text, "; 7.2.0.192.in-addr.arpa."));
	CHECK(has(
	    text,
	    "; 7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. IN PTR   mail.example.org.\n"));
}

TEST_CASE("dns records: a host name outside the domain gets its address records as a comment") {
	DomainRecordFacts f = example();
	f.hostname = "mx.provider.example";
	f.ips = {"192.0.2.7"};
	std::string text = dns_records_text(f);
	CHECK(has(text, "; in the zone of mx.provider.example: mx.provider.example.            IN A     192.0.2.7\n"));
}

TEST_CASE("dns records: DKIM keys per selector, a key that did not load as a comment, DMARC with rua") {
	DomainRecordFacts f = example();
	f.dkim = {{"s1", "v=DKIM1; k=ed25519; p=AAAA", ""}, {"s2", "", "no such file"}};
	f.dmarc_report_address = "dmarc-reports@example.org";
	std::string text = dns_records_text(f);
	CHECK(has(text, "s1._domainkey.example.org.      IN TXT   \"v=DKIM1; k=ed25519; p=AAAA\"\n"));
	CHECK(has(text, "; s2._domainkey.example.org. cannot be given: no such file\n"));
	CHECK(has(text, "\"v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.org\""));
}

TEST_CASE("dns records: TXT data is split into strings of at most 255 octets, quotes escaped") {
	CHECK(zone_txt_strings("v=spf1 -all") == "\"v=spf1 -all\"");
	CHECK(zone_txt_strings("a\"b\\c") == "\"a\\\"b\\\\c\"");
	std::string long_text(600, 'k');
	CHECK(zone_txt_strings(long_text) ==
	      "\"" + std::string(255, 'k') + "\" \"" + std::string(255, 'k') + "\" \"" + std::string(90, 'k') + "\"");
	CHECK(zone_txt_strings(std::string(255, 'k')) == "\"" + std::string(255, 'k') + "\"");
}
