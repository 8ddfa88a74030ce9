// PROXY protocol on the delivery port (doc/behaviour.md "PROXY protocol"): a v1 or
// v2 header from a trusted proxy replaces the peer address for every later
// decision (Received, iprev, SPF); an untrusted peer or a malformed header
// gets the connection closed without a greeting.
// The headers are written out by hand here, from the HAProxy specification
// (proxy-protocol.txt 2.1 and 2.2), not with the daemon's own builders.
#include <arpa/inet.h>

#include <algorithm>

#include "bb.h"

namespace {

const std::string proxied_client = "192.0.2.7";  // RFC 5737 documentation range

// Version 1, section 2.1: one text line.
const std::string v1_header = "PROXY TCP4 192.0.2.7 127.0.0.1 5555 25\r\n";

// Version 2, section 2.2: signature, version 2 / PROXY command, TCP over
// IPv4, 12 address bytes (source, destination, source port, destination port).
std::string v2_header(const std::string& source = proxied_client, uint16_t source_port = 5555) {
	std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
	h += char(0x21);
	h += char(0x11);
	h += char(0x00);
	h += char(0x0c);
	in_addr src{}, dst{};
	inet_pton(AF_INET, source.c_str(), &src);
	inet_pton(AF_INET, "127.0.0.1", &dst);
	h.append(reinterpret_cast<const char*>(&src), 4);
	h.append(reinterpret_cast<const char*>(&dst), 4);
	h += char(source_port >> 8);
	h += char(source_port & 0xff);
	h += char(0);
	h += char(25);
	return h;
}

std::string proxy_patch(const std::string& trusted) {
	return R"({"listeners": {"test": {"proxy_protocol": true, "trusted_proxies": [)" + trusted + "]}}}";
}

// DNS for the proxied client: a sending domain whose SPF passes only the
// claimed address, and forward-confirmed reverse DNS for it.
void add_proxied_zone(DnsServer& dns) {
	dns.add("proxied.example", "A", proxied_client);
	dns.add("proxied.example", "MX", "10 proxied.example");
	dns.add("proxied.example", "TXT", "v=spf1 ip4:192.0.2.7 -all");
	dns.add("7.2.0.192.in-addr.arpa", "PTR", "client.proxied.example");
	dns.add("client.proxied.example", "A", proxied_client);
}

// Sends the header, then a whole delivery from bob@proxied.example; returns
// the path of the delivered file ("" on failure, with CHECKs failed).
std::string deliver_proxied(TernDaemon& d, const std::string& header) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(c.send(header));
	Reply greeting = c.read_reply();
	CHECK(greeting.code == 220);
	if (greeting.code != 220) return "";
	REQUIRE(c.cmd("EHLO client.proxied.example").code == 250);
	Transaction t = send_mail(c, "bob@proxied.example", {"alice@test.example"},
	                          make_message("proxied", "Hello Alice.\r\n", "bob@proxied.example"));
	CHECK(t.step == "END");
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	c.cmd("QUIT");
	auto files = wait_for_maildir(d.maildir(), 1);
	CHECK(files.size() == 1);
	return files.empty() ? "" : files[0];
}

void check_claimed_address_used(const std::string& path) {
	std::string header = delivered_header(path);
	std::string received = header_field(header, "Received");
	std::string spf = header_field(header, "Received-SPF");
	std::string ar = header_field(header, "Authentication-Results");
	CAPTURE(received);
	CAPTURE(spf);
	CAPTURE(ar);
	CHECK(starts_with(received,
	                  "from client.proxied.example ([192.0.2.7]) by mx.test.example ([127.0.0.1]) via tcp "));
	CHECK_FALSE(contains(received, "[127.0.0.1]) by"));
	// SPF was evaluated for the claimed address: only 192.0.2.7 passes.
	CHECK(starts_with(spf, "pass (domain proxied.example) client-ip=192.0.2.7; "));
	CHECK(contains(spf, "envelope-from=\"bob@proxied.example\";"));
	CHECK(contains(spf, "mechanism=\"ip4:192.0.2.7\";"));
	CHECK(ar ==
	      "mx.test.example; iprev=pass policy.iprev=192.0.2.7; dkim=none reason=\"no dkim signatures\"; "
	      "spf=pass smtp.mailfrom=proxied.example; dmarc=none header.from=proxied.example");
}

}  // namespace

TEST_CASE("proxy: a v1 header from a trusted proxy: Received, iprev and SPF use the claimed address") {
	TernDaemon d({.config_patch = proxy_patch(R"("127.0.0.0/8")")});
	REQUIRE_RUNNING(d);
	add_proxied_zone(d.dns());
	std::string path = deliver_proxied(d, v1_header);
	REQUIRE(!path.empty());
	check_claimed_address_used(path);
	// The reverse lookup was for the claimed address, never the real peer.
	auto queries = d.dns().queries();
	CHECK(std::count(queries.begin(), queries.end(), "7.2.0.192.in-addr.arpa PTR") >= 1);
	CHECK(std::count(queries.begin(), queries.end(), "1.0.0.127.in-addr.arpa PTR") == 0);
}

TEST_CASE("proxy: a v2 header from a trusted proxy: Received, iprev and SPF use the claimed address") {
	TernDaemon d({.config_patch = proxy_patch(R"("127.0.0.0/8")")});
	REQUIRE_RUNNING(d);
	add_proxied_zone(d.dns());
	std::string path = deliver_proxied(d, v2_header());
	REQUIRE(!path.empty());
	check_claimed_address_used(path);
}

TEST_CASE("proxy: the header and the first command in one segment") {
	TernDaemon d({.config_patch = proxy_patch(R"("127.0.0.0/8")")});
	REQUIRE_RUNNING(d);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	// Bytes after the header belong to the SMTP session.
	REQUIRE(c.send(v2_header() + "NOOP\r\n"));
	CHECK(c.read_reply().code == 220);
	CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");
}

TEST_CASE("proxy: an SPF policy for the real peer fails for the claimed address") {
	TernDaemon d({.config_patch = proxy_patch(R"("127.0.0.0/8")")});
	REQUIRE_RUNNING(d);
	// sender.example's SPF passes 127.0.0.1 (the real peer), not 192.0.2.7.
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(c.send(v1_header));
	REQUIRE(c.read_reply().code == 220);
	REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("spf"));
	CHECK(t.step == "END");
	CHECK(t.reply.plain() == "451 4.3.0 error processing");
	usleep(300000);
	CHECK(maildir_files(d.maildir()).empty());
}

TEST_CASE("proxy: a peer outside trusted_proxies is closed without a greeting") {
	TernDaemon d({.config_patch = proxy_patch(R"("10.0.0.0/8")")});
	REQUIRE_RUNNING(d);
	for (const std::string& header : {v1_header, v2_header()}) {
		SmtpClient c;
		c.timeout_ms = 5000;
		REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
		c.send(header);  // may already fail: the daemon closes at once
		CHECK(c.expect_closed());
		CHECK(c.unexpected() == "");
	}
	REQUIRE_RUNNING(d);
}

TEST_CASE("proxy: a malformed header is closed without a greeting") {
	TernDaemon d({.config_patch = proxy_patch(R"("127.0.0.0/8")")});
	REQUIRE_RUNNING(d);
	std::string bad_v2 = v2_header();
	bad_v2[12] = char(0x31);  // version 3
	for (const std::string& header : {std::string("EHLO x\r\n"), std::string("PROXY TCP4 192.0.2.7\r\n"),
	                                  std::string("PROXY TCP4 999.0.2.7 127.0.0.1 5555 25\r\n"), bad_v2}) {
		CAPTURE(header);
		SmtpClient c;
		c.timeout_ms = 5000;
		REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
		c.send(header);
		CHECK(c.expect_closed());
		CHECK(c.unexpected() == "");
	}
	// Still serving proxied clients.
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(c.send(v1_header));
	CHECK(c.read_reply().code == 220);
}
