// DNS blocklist zone health (doc/behaviour.md §9, step 10; RFC 5782 5): a
// zone is used only while it lists 127.0.0.2 and not 127.0.0.1. The test
// client connects from 127.0.0.1, so the listed client is a PROXY
// protocol claimed address (every per-IP decision uses it).
#include <algorithm>

#include "bb.h"
#include "blackbox/ternctl_run.h"

namespace {

const std::string claimed_client = "192.0.2.9";

// A sending domain without SPF (so SPF does not decide) and forward-
// confirmed reverse DNS for the claimed client.
void add_claimed_client_zone(DnsServer& dns) {
	dns.add("listed-sender.example", "A", claimed_client);
	dns.add("listed-sender.example", "MX", "10 listed-sender.example");
	dns.add("9.2.0.192.in-addr.arpa", "PTR", "client.listed-sender.example");
	dns.add("client.listed-sender.example", "A", claimed_client);
}

// A zone that lists the claimed client, and 127.0.0.2 when `healthy`.
void add_zone(DnsServer& dns, const std::string& zone, bool healthy) {
	dns.add("9.2.0.192." + zone, "A", "127.0.0.2");
	if (healthy) dns.add("2.0.0.127." + zone, "A", "127.0.0.2");
}

Transaction deliver_from_claimed_client(TernDaemon& d) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(c.send("PROXY TCP4 " + claimed_client + " 127.0.0.1 5555 25\r\n"));
	REQUIRE(c.read_reply().code == 220);
	REQUIRE(c.cmd("EHLO client.listed-sender.example").code == 250);
	Transaction t = send_mail(c, "bob@listed-sender.example", {"alice@test.example"},
	                          make_message("dnsbl", "Hello Alice.\r\n", "bob@listed-sender.example"));
	c.cmd("QUIT");
	return t;
}

std::string proxied_dnsbl_patch(const std::string& zones) {
	return R"({"listeners": {"test": {"proxy_protocol": true, "trusted_proxies": ["127.0.0.0/8"],
	           "smtp": {"dnsbl_zones": [)" +
	    zones + "]}}}}";
}

}  // namespace

TEST_CASE("dnsbl health: a healthy zone that lists the client refuses 451 4.3.0") {
	TernDaemon d({.config_patch = proxied_dnsbl_patch(R"("bl.example")")});
	REQUIRE_RUNNING(d);
	add_claimed_client_zone(d.dns());
	add_zone(d.dns(), "bl.example", true);
	Transaction t = deliver_from_claimed_client(d);
	CHECK(t.step == "END");
	CHECK(t.reply.plain() == "451 4.3.0 error processing");
	usleep(300000);
	CHECK(maildir_files(d.maildir()).empty());
	auto queries = d.dns().queries();
	CHECK(std::count(queries.begin(), queries.end(), "2.0.0.127.bl.example A") == 1);
	CHECK(std::count(queries.begin(), queries.end(), "1.0.0.127.bl.example A") == 1);
	CHECK(std::count(queries.begin(), queries.end(), "9.2.0.192.bl.example A") == 1);
}

TEST_CASE("dnsbl health: a zone that does not list 127.0.0.2 is skipped, and asked again only after hours") {
	TernDaemon d({.config_patch = proxied_dnsbl_patch(R"("dead.example")")});
	REQUIRE_RUNNING(d);
	add_claimed_client_zone(d.dns());
	add_zone(d.dns(), "dead.example", false);
	for (int i = 0; i < 2; ++i) {
		Transaction t = deliver_from_claimed_client(d);
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
	}
	CHECK(wait_for_maildir(d.maildir(), 2).size() == 2);
	std::string log = d.log_text();
	CHECK(contains(log,
	               "msg=\"dnsbl zone unhealthy, not used\" zone=dead.example problem=\"does not list 127.0.0.2\""));
	CHECK(contains(log, "msg=\"dnsbl zone unhealthy, skipped\" zone=dead.example"));
	auto queries = d.dns().queries();
	// The listing itself is never looked up; the health test ran once.
	CHECK(std::count(queries.begin(), queries.end(), "9.2.0.192.dead.example A") == 0);
	CHECK(std::count(queries.begin(), queries.end(), "2.0.0.127.dead.example A") == 1);
}

TEST_CASE("dnsbl health: a zone that lists 127.0.0.1 lists everyone and is skipped") {
	TernDaemon d({.config_patch = proxied_dnsbl_patch(R"("all.example")")});
	REQUIRE_RUNNING(d);
	add_claimed_client_zone(d.dns());
	add_zone(d.dns(), "all.example", true);
	d.dns().add("1.0.0.127.all.example", "A", "127.0.0.2");
	Transaction t = deliver_from_claimed_client(d);
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(contains(d.log_text(), "problem=\"lists 127.0.0.1\""));
}

TEST_CASE("ternctl dnsbl check: the health test and the listing of an address") {
	DnsServer dns;
	add_zone(dns, "bl.example", true);
	add_zone(dns, "dead.example", false);
	ProgramResult r = run_ternctl({"--dns", dns.address(), "dnsbl", "check", "bl.example"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "healthy\n");
	r = run_ternctl({"--dns", dns.address(), "dnsbl", "check", "bl.example", claimed_client});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "healthy\n192.0.2.9: listed\n");
	r = run_ternctl({"--dns", dns.address(), "dnsbl", "check", "bl.example", "198.51.100.1"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "healthy\n198.51.100.1: not listed\n");
	r = run_ternctl({"--dns", dns.address(), "dnsbl", "check", "dead.example."});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "unhealthy: does not list 127.0.0.2\n");
	r = run_ternctl({"--dns", dns.address(), "dnsbl", "check", "bl.example", "not-an-ip"});
	CHECK(r.exit_code == 2);
	r = run_ternctl({"--dns", dns.address(), "dnsbl", "lookup"});
	CHECK(r.exit_code == 2);
}
