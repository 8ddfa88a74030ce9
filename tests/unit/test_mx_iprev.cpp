// Whether a sender domain accepts mail (doc/behaviour.md §6; RFC 7505, RFC 5321 5.1) and iprev (RFC 8601 3) on canned
// DNS answers.
#include <doctest/doctest.h>

#include "mailauth/iprev.h"
#include "mailauth/mx.h"

using namespace tern;
using namespace tern::mailauth;

namespace {
MxVerdict mx_verdict(CannedResolver& r, const std::string& domain) {
	MxVerdict v = MxVerdict::temporary_error;
	bool called = false;
	check_mx_records(r, 1, domain, [&](MxVerdict got) {
		v = got;
		called = true;
	});
	REQUIRE(called);
	return v;
}

IprevResult iprev(CannedResolver& r, const std::string& ip) {
	IprevResult out;
	bool called = false;
	iprev_lookup(r, 1, *IpAddr::parse(ip), [&](const IprevResult& got) {
		out = got;
		called = true;
	});
	REQUIRE(called);
	return out;
}

DnsAnswer status_only(DnsStatus s) { return DnsAnswer{s, {}, {}}; }
}  // namespace

TEST_CASE("mx: a single null MX means the domain takes no mail") {
	CannedResolver r;
	r.set_mx("nullmx.example", {{0, ""}});
	CHECK(mx_verdict(r, "nullmx.example") == MxVerdict::no_mail);
}

TEST_CASE("mx: a null MX among others is ignored") {
	CannedResolver r;
	r.set_mx("mixed.example", {{0, ""}, {10, "mx.mixed.example"}});
	r.set_records("mx.mixed.example", RrType::A, {"192.0.2.1"});
	CHECK(mx_verdict(r, "mixed.example") == MxVerdict::accepts_mail);
}

TEST_CASE("mx: no MX falls back to the domain's own address (implicit MX)") {
	CannedResolver r;
	r.set_records("implicit.example", RrType::AAAA, {"2001:db8::1"});
	CHECK(mx_verdict(r, "implicit.example") == MxVerdict::accepts_mail);
	CHECK(mx_verdict(r, "nothing.example") == MxVerdict::no_mail);
}

TEST_CASE("mx: MX hosts without addresses") {
	CannedResolver r;
	r.set_mx("dead.example", {{10, "gone.example"}});
	CHECK(mx_verdict(r, "dead.example") == MxVerdict::no_mail);
	r.set("gone.example", RrType::A, status_only(DnsStatus::temperror));
	CHECK(mx_verdict(r, "dead.example") == MxVerdict::temporary_error);
	// A later host with an address still wins.
	r.set_mx("dead.example", {{10, "gone.example"}, {20, "alive.example"}});
	r.set_records("alive.example", RrType::A, {"192.0.2.7"});
	CHECK(mx_verdict(r, "dead.example") == MxVerdict::accepts_mail);
}

TEST_CASE("mx: a failing MX lookup is temporary") {
	CannedResolver r;
	r.set("servfail.example", RrType::MX, status_only(DnsStatus::temperror));
	CHECK(mx_verdict(r, "servfail.example") == MxVerdict::temporary_error);
}

TEST_CASE("iprev: reverse names") {
	CHECK(reverse_dns_name(*IpAddr::parse("192.0.2.10")) == "10.2.0.192.in-addr.arpa");
	CHECK(reverse_dns_name(*IpAddr::parse("2001:db8::1")) ==
	      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST_CASE("iprev: pass, fail, temperror, permerror") {
	CannedResolver r;
	r.set_records("10.2.0.192.in-addr.arpa", RrType::PTR, {"other.example", "host.example"});
	r.set_records("host.example", RrType::A, {"192.0.2.10"});
	r.set_records("other.example", RrType::A, {"192.0.2.99"});
	IprevResult ok = iprev(r, "192.0.2.10");
	CHECK(ok.status == IprevStatus::pass);
	CHECK(ok.name == "host.example");
	CHECK(ok.names.size() == 2);

	r.set_records("11.2.0.192.in-addr.arpa", RrType::PTR, {"other.example"});
	CHECK(iprev(r, "192.0.2.11").status == IprevStatus::fail);

	r.set_records("12.2.0.192.in-addr.arpa", RrType::PTR, {"flaky.example"});
	r.set("flaky.example", RrType::A, status_only(DnsStatus::temperror));
	CHECK(iprev(r, "192.0.2.12").status == IprevStatus::temperror);

	CHECK(iprev(r, "192.0.2.13").status == IprevStatus::permerror);
	r.set("14.2.0.192.in-addr.arpa", RrType::PTR, status_only(DnsStatus::temperror));
	CHECK(iprev(r, "192.0.2.14").status == IprevStatus::temperror);
}

TEST_CASE("iprev: at most ten PTR names are looked up forward") {
	// A PTR answer may carry hundreds of names; each would be a forward
	// query made for a stranger (doc/behaviour.md D18).
	CannedResolver r;
	std::vector<std::string> names;
	for (int i = 0; i < 200; ++i) names.push_back("n" + std::to_string(i) + ".example");
	r.set_records("20.2.0.192.in-addr.arpa", RrType::PTR, names);
	r.set_records("n3.example", RrType::A, {"192.0.2.20"});
	IprevResult first = iprev(r, "192.0.2.20");
	CHECK(first.status == IprevStatus::pass);
	CHECK(first.names.size() == max_iprev_names);
	CHECK(r.queries() <= 1 + static_cast<int>(max_iprev_names));

	// A match past the tenth name does not count.
	names.erase(names.begin() + 3);
	r.set_records("21.2.0.192.in-addr.arpa", RrType::PTR, names);
	r.set_records("n150.example", RrType::A, {"192.0.2.21"});
	int before = r.queries();
	CHECK(iprev(r, "192.0.2.21").status == IprevStatus::fail);
	CHECK(r.queries() - before == 1 + static_cast<int>(max_iprev_names));
}

#include "mailauth/dnsbl.h"

TEST_CASE("dnsbl: names and listing (RFC 5782)") {
	CHECK(dnsbl_name(*IpAddr::parse("192.0.2.99"), "bl.example") == "99.2.0.192.bl.example");
	CHECK(dnsbl_name(*IpAddr::parse("2001:db8::1"), "bl.example").starts_with("1.0.0.0.0.0.0.0"));
	CHECK(dnsbl_name(*IpAddr::parse("2001:db8::1"), "bl.example").ends_with(".8.b.d.0.1.0.0.2.bl.example"));
	CannedResolver r;
	r.set_records("99.2.0.192.bl.example", RrType::A, {"127.0.0.2"});
	DnsblStatus got = DnsblStatus::temperror;
	dnsbl_lookup(r, 1, *IpAddr::parse("192.0.2.99"), "bl.example", [&](DnsblStatus s) { got = s; });
	CHECK(got == DnsblStatus::fail);
	dnsbl_lookup(r, 1, *IpAddr::parse("192.0.2.98"), "bl.example", [&](DnsblStatus s) { got = s; });
	CHECK(got == DnsblStatus::pass);
	r.set("97.2.0.192.bl.example", RrType::A, DnsAnswer{DnsStatus::temperror, {}, {}});
	dnsbl_lookup(r, 1, *IpAddr::parse("192.0.2.97"), "bl.example", [&](DnsblStatus s) { got = s; });
	CHECK(got == DnsblStatus::temperror);
}
