// DMARC (RFC 7489): record parsing, policy discovery over canned DNS,
// identifier alignment, the model's verdict; organizational domains.
#include <doctest/doctest.h>

#include "mailauth/dmarc.h"
#include "mailauth/publicsuffix.h"

using namespace tern;
using namespace tern::mailauth;

namespace {

dkim::Result dkim_result(dkim::Status status, const std::string& domain) {
	dkim::Result r;
	r.status = status;
	dkim::Signature sig;
	sig.domain = domain;
	sig.selector = "sel";
	r.signature = sig;
	return r;
}

DmarcLookup lookup(CannedResolver& resolver, const std::string& domain) {
	DmarcLookup out;
	bool called = false;
	dmarc_lookup(resolver, 1, domain, [&](DmarcLookup got) {
		out = std::move(got);
		called = true;
	});
	REQUIRE(called);
	return out;
}

struct Verify {
	std::vector<dkim::Result> dkim;
	SpfStatus spf = SpfStatus::none;
	std::string spf_domain;
	DmarcOptions options;
};

DmarcResult verify(CannedResolver& resolver, const std::string& from, const Verify& v) {
	DmarcResult out;
	bool called = false;
	dmarc_verify(
	    resolver, 1, from, v.dkim, v.spf, v.spf_domain,
	    [&](DmarcResult got) {
		    out = std::move(got);
		    called = true;
	    },
	    v.options);
	REQUIRE(called);
	return out;
}

CannedResolver with_record(const std::string& domain, const std::string& txt) {
	CannedResolver r;
	r.set_records("_dmarc." + domain, RrType::TXT, {txt});
	return r;
}

}  // namespace

TEST_CASE("organizational domain from the public suffix list") {
	CHECK(organizational_domain("a.b.example.co.uk") == "example.co.uk");
	CHECK(organizational_domain("example.co.uk") == "example.co.uk");
	CHECK(organizational_domain("mail.example.com") == "example.com");
	CHECK(organizational_domain("example.com") == "example.com");
	CHECK(organizational_domain("co.uk") == "co.uk");
	CHECK(organizational_domain("com") == "com");
	CHECK(organizational_domain("") == "");
	CHECK(is_public_suffix("co.uk"));
	CHECK(is_public_suffix("com"));
	CHECK_FALSE(is_public_suffix("example.com"));
	// Only the list's ICANN section counts, as in the model: names of its
	// private section (a hosting company's customers) are not suffixes.
	CHECK_FALSE(is_public_suffix("github.io"));
	CHECK(organizational_domain("foo.github.io") == "github.io");
	CHECK(organizational_domain("a.b.blogspot.com") == "blogspot.com");
	// Wildcard and exception rules of the ICANN section still apply.
	CHECK(is_public_suffix("anything.ck"));
	CHECK(organizational_domain("a.www.ck") == "www.ck");
	CHECK(organizational_domain("mail.example.anything.ck") == "example.anything.ck");
	CHECK(organizational_domain("a.b.example.unlistedtld") == "example.unlistedtld");
}

TEST_CASE("dmarc record: all tags") {
	DmarcParse p = parse_dmarc_record(
	    "v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; aspf=s; "
	    "rua=mailto:dmarc@example.org!10m, mailto:x@y.example; ruf=mailto:f@example.org!20; "
	    "fo=1:d; rf=afrf; ri=3600");
	CHECK(p.is_dmarc);
	CHECK(p.error == "");
	REQUIRE(p.record);
	const DmarcRecord& r = *p.record;
	CHECK(r.policy == DmarcPolicy::reject);
	CHECK(r.subdomain_policy == DmarcPolicy::quarantine);
	CHECK(r.percentage == 50);
	CHECK(r.adkim == DmarcAlign::strict);
	CHECK(r.aspf == DmarcAlign::strict);
	REQUIRE(r.aggregate_report_addresses.size() == 2);
	CHECK(r.aggregate_report_addresses[0].address == "mailto:dmarc@example.org");
	CHECK(r.aggregate_report_addresses[0].max_size == 10);
	CHECK(r.aggregate_report_addresses[0].unit == "m");
	CHECK(r.aggregate_report_addresses[1].address == "mailto:x@y.example");
	CHECK(r.aggregate_report_addresses[1].max_size == 0);
	REQUIRE(r.failure_report_addresses.size() == 1);
	CHECK(r.failure_report_addresses[0].address == "mailto:f@example.org");
	CHECK(r.failure_report_addresses[0].max_size == 20);
	CHECK(r.failure_report_addresses[0].unit == "");
	CHECK(r.failure_options == std::vector<std::string>{"1", "d"});
	CHECK(r.report_formats == std::vector<std::string>{"afrf"});
	CHECK(r.report_interval == 3600);
}

TEST_CASE("dmarc record: defaults, case and separators") {
	DmarcParse p = parse_dmarc_record("v=DMARC1; p=none");
	REQUIRE(p.record);
	CHECK(p.record->policy == DmarcPolicy::none);
	CHECK(p.record->subdomain_policy == DmarcPolicy::unset);
	CHECK(p.record->percentage == 100);
	CHECK(p.record->adkim == DmarcAlign::relaxed);
	CHECK(p.record->aspf == DmarcAlign::relaxed);
	CHECK(p.record->report_interval == 86400);
	CHECK(p.record->failure_options == std::vector<std::string>{"0"});
	CHECK(p.record->report_formats == std::vector<std::string>{"afrf"});

	// Tag names and keyword values are case-insensitive; WSP around "=" and ";".
	p = parse_dmarc_record("V = DMARC1 ;\tP = Reject ; SP=None;");
	REQUIRE(p.record);
	CHECK(p.record->policy == DmarcPolicy::reject);
	CHECK(p.record->subdomain_policy == DmarcPolicy::none);

	// Unknown tags are ignored (RFC 7489 6.3).
	p = parse_dmarc_record("v=DMARC1; p=quarantine; future=thing");
	REQUIRE(p.record);
	CHECK(p.record->policy == DmarcPolicy::quarantine);
}

TEST_CASE("dmarc record: not a dmarc record") {
	for (const char* txt : {"v=spf1 -all", "v=DMARC2; p=none", "v=dmarc1; p=none", "p=none; v=DMARC1",
	                        " v=DMARC1; p=none", "v=DMARC1x; p=none", ""}) {
		CAPTURE(txt);
		DmarcParse p = parse_dmarc_record(txt);
		CHECK_FALSE(p.is_dmarc);
		CHECK_FALSE(p.record);
	}
}

TEST_CASE("dmarc record: invalid records") {
	auto error_of = [](const char* txt) {
		DmarcParse p = parse_dmarc_record(txt);
		CHECK(p.is_dmarc);
		CHECK_FALSE(p.record);
		return p.error;
	};
	const std::string prefix = "dmarc: malformed dmarc dns record: ";
	CHECK(error_of("v=DMARC1") == prefix + "invalid (subdomain)policy and no valid aggregate reporting address");
	CHECK(error_of("v=DMARC1; p=bogus") ==
	      prefix + "invalid (subdomain)policy and no valid aggregate reporting address");
	CHECK(error_of("v=DMARC1; p=none; sp=bogus") ==
	      prefix + "invalid (subdomain)policy and no valid aggregate reporting address");
	CHECK(error_of("v=DMARC1; sp=none; p=reject") == prefix + "p= (policy) must be first tag");
	CHECK(error_of("v=DMARC1; p=reject; p=none") == prefix + "duplicate tag \"p\"");
	CHECK(error_of("v=DMARC1; p=reject; pct=101") == prefix + "bad percentage \"101\"");
	CHECK(error_of("v=DMARC1; p=reject; pct=-1") == prefix + "bad percentage \"-1\"");
	CHECK(error_of("v=DMARC1; p=reject; pct=") == prefix + "bad percentage \"\"");
	CHECK(error_of("v=DMARC1; p=reject; adkim=x") == prefix + "bad adkim value \"x\", expected r or s");
	CHECK(error_of("v=DMARC1; p=reject; aspf=relaxed") == prefix + "bad aspf value \"relaxed\", expected r or s");
	CHECK(error_of("v=DMARC1; p=reject; junk") == prefix + "expected tag=value in \"junk\"");
}

TEST_CASE("dmarc record: missing or invalid p with a usable rua reads as p=none") {
	// RFC 7489 6.6.3 step 6.
	DmarcParse p = parse_dmarc_record("v=DMARC1; p=bogus; sp=reject; rua=mailto:d@example.org");
	REQUIRE(p.record);
	CHECK(p.record->policy == DmarcPolicy::none);
	CHECK(p.record->subdomain_policy == DmarcPolicy::unset);

	p = parse_dmarc_record("v=DMARC1; rua=mailto:d@example.org");
	REQUIRE(p.record);
	CHECK(p.record->policy == DmarcPolicy::none);

	// An rua without a valid URI does not rescue it.
	p = parse_dmarc_record("v=DMARC1; rua=not-a-uri");
	CHECK(p.is_dmarc);
	CHECK_FALSE(p.record);
}

TEST_CASE("dmarc record: reporting tags are parsed leniently") {
	DmarcParse p = parse_dmarc_record(
	    "v=DMARC1; p=reject; rua=notauri, mailto:a@example.org, mailto:b@example.org!x; ruf=:bad; ri=soon; fo=x:1; rf=-");
	REQUIRE(p.record);
	REQUIRE(p.record->aggregate_report_addresses.size() == 1);
	CHECK(p.record->aggregate_report_addresses[0].address == "mailto:a@example.org");
	CHECK(p.record->failure_report_addresses.empty());
	CHECK(p.record->report_interval == 86400);
	CHECK(p.record->failure_options == std::vector<std::string>{"0"});
	CHECK(p.record->report_formats == std::vector<std::string>{"afrf"});
}

TEST_CASE("dmarc lookup: the From domain's own record") {
	CannedResolver r = with_record("example.org", "v=DMARC1; p=reject");
	DmarcLookup l = lookup(r, "Example.ORG");
	CHECK(l.status == DmarcStatus::none);
	CHECK(l.domain == "example.org");
	REQUIRE(l.record);
	CHECK(l.record->policy == DmarcPolicy::reject);
	CHECK(l.txt == "v=DMARC1; p=reject");
	CHECK(l.error == "");
	CHECK(r.queries() == 1);
}

TEST_CASE("dmarc lookup: falls back to the organizational domain") {
	CannedResolver r = with_record("example.co.uk", "v=DMARC1; p=quarantine");
	DmarcLookup l = lookup(r, "a.b.example.co.uk");
	CHECK(l.status == DmarcStatus::none);
	CHECK(l.domain == "example.co.uk");
	REQUIRE(l.record);
	CHECK(l.record->policy == DmarcPolicy::quarantine);
	CHECK(l.txt == "v=DMARC1; p=quarantine");
	CHECK(r.queries() == 2);

	// Other TXT records at the From domain's name do not count.
	r.set_records("_dmarc.a.b.example.co.uk", RrType::TXT, {"v=spf1 -all", "hello"});
	l = lookup(r, "a.b.example.co.uk");
	CHECK(l.domain == "example.co.uk");
	CHECK(l.record);
}

TEST_CASE("dmarc lookup: no record anywhere") {
	CannedResolver r;
	DmarcLookup l = lookup(r, "example.org");
	CHECK(l.status == DmarcStatus::none);
	CHECK_FALSE(l.record);
	CHECK(l.domain == "example.org");
	CHECK(l.error == "dmarc: no dmarc dns record");
	CHECK(r.queries() == 1);  // the organizational domain is the same name

	CannedResolver r2;
	l = lookup(r2, "mail.example.org");
	CHECK_FALSE(l.record);
	CHECK(l.domain == "example.org");
	CHECK(r2.queries() == 2);
}

TEST_CASE("dmarc lookup: multiple records mean no policy") {
	CannedResolver r;
	r.set_records("_dmarc.mail.example.org", RrType::TXT, {"v=DMARC1; p=reject", "v=DMARC1; p=none"});
	r.set_records("_dmarc.example.org", RrType::TXT, {"v=DMARC1; p=reject"});
	DmarcLookup l = lookup(r, "mail.example.org");
	CHECK(l.status == DmarcStatus::none);
	CHECK_FALSE(l.record);
	CHECK(l.error == "dmarc: multiple dmarc dns records");
	// RFC 7489 6.6.3 step 5: discovery ends, no organizational lookup.
	CHECK(r.queries() == 1);
}

TEST_CASE("dmarc lookup: dns errors and invalid records") {
	CannedResolver r;
	r.set("_dmarc.mail.example.org", RrType::TXT, DnsAnswer{DnsStatus::temperror, {}, {}});
	DmarcLookup l = lookup(r, "mail.example.org");
	CHECK(l.status == DmarcStatus::temperror);
	CHECK_FALSE(l.record);
	CHECK(r.queries() == 1);

	CannedResolver r2;
	r2.set_records("_dmarc.mail.example.org", RrType::TXT, {});  // nodata: fall back
	r2.set("_dmarc.example.org", RrType::TXT, DnsAnswer{DnsStatus::temperror, {}, {}});
	l = lookup(r2, "mail.example.org");
	CHECK(l.status == DmarcStatus::temperror);
	CHECK(l.domain == "example.org");

	CannedResolver r3 = with_record("example.org", "v=DMARC1; p=sometimes");
	l = lookup(r3, "example.org");
	CHECK(l.status == DmarcStatus::permerror);
	CHECK_FALSE(l.record);
	CHECK(l.txt == "v=DMARC1; p=sometimes");
	CHECK(l.error ==
	      "dmarc: malformed dmarc dns record: invalid (subdomain)policy and no valid aggregate reporting address");
}

TEST_CASE("alignment: a DKIM d= written in Unicode aligns with the From domain's A-labels") {
	auto parsed = dkim::parse_signature(
	    "DKIM-Signature: v=1; a=rsa-sha256; d=b\xc3\xbc"
	    "cher.example; s=a; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==");
	REQUIRE(parsed.signature);
	dkim::Result r;
	r.status = dkim::Status::pass;
	r.signature = *parsed.signature;
	CHECK(from_alignment("xn--bcher-kva.example", {r}, SpfStatus::none, "") == Alignment::strict);
	CHECK(from_alignment("mail.xn--bcher-kva.example", {r}, SpfStatus::none, "") == Alignment::relaxed);
}

TEST_CASE("alignment of the From domain") {
	using S = dkim::Status;
	// Strict: exact d= or exact SPF domain.
	CHECK(from_alignment("example.org", {dkim_result(S::pass, "example.org")}, SpfStatus::none, "") ==
	      Alignment::strict);
	CHECK(from_alignment("example.org", {}, SpfStatus::pass, "example.org") == Alignment::strict);
	CHECK(from_alignment("Example.Org", {}, SpfStatus::pass, "EXAMPLE.org") == Alignment::strict);
	// Strict wins over an earlier relaxed signature.
	CHECK(from_alignment("example.org",
	                     {dkim_result(S::pass, "mail.example.org"), dkim_result(S::pass, "example.org")},
	                     SpfStatus::none, "") == Alignment::strict);
	// Relaxed: same organizational domain.
	CHECK(from_alignment("example.org", {dkim_result(S::pass, "mail.example.org")}, SpfStatus::fail, "other.net") ==
	      Alignment::relaxed);
	CHECK(from_alignment("news.example.org", {}, SpfStatus::pass, "bounce.example.org") == Alignment::relaxed);
	CHECK(from_alignment("a.example.co.uk", {dkim_result(S::pass, "b.example.co.uk")}, SpfStatus::none, "") ==
	      Alignment::relaxed);
	// None: other organizations, or nothing passed.
	CHECK(from_alignment("a.example.co.uk", {dkim_result(S::pass, "other.co.uk")}, SpfStatus::none, "") ==
	      Alignment::none);
	CHECK(from_alignment("example.org", {dkim_result(S::fail, "example.org")}, SpfStatus::softfail,
	                     "example.org") == Alignment::none);
	CHECK(from_alignment("example.org", {dkim_result(S::temperror, "example.org")}, SpfStatus::temperror,
	                     "example.org") == Alignment::none);
	CHECK(from_alignment("example.org", {}, SpfStatus::pass, "") == Alignment::none);
	CHECK(from_alignment("example.org", {}, SpfStatus::pass, "example.net") == Alignment::none);
	CHECK(std::string(alignment_name(Alignment::relaxed)) == "relaxed");
}

TEST_CASE("dmarc verdict: policies") {
	CannedResolver reject = with_record("example.org", "v=DMARC1; p=reject");

	// Aligned SPF pass.
	DmarcResult res = verify(reject, "example.org", {{}, SpfStatus::pass, "example.org", {}});
	CHECK(res.status == DmarcStatus::pass);
	CHECK_FALSE(res.reject);
	CHECK(res.use);
	CHECK(res.aligned_spf_pass);
	CHECK_FALSE(res.aligned_dkim_pass);
	CHECK(res.domain == "example.org");
	CHECK(res.record_domain == "example.org");
	REQUIRE(res.record);
	CHECK(res.record->policy == DmarcPolicy::reject);

	// Aligned DKIM pass (relaxed by default).
	res = verify(reject, "example.org",
	             {{dkim_result(dkim::Status::pass, "mail.example.org")}, SpfStatus::fail, "other.net", {}});
	CHECK(res.status == DmarcStatus::pass);
	CHECK_FALSE(res.reject);
	CHECK(res.aligned_dkim_pass);
	CHECK_FALSE(res.aligned_spf_pass);

	// Passes for other domains only: fail and reject.
	res = verify(reject, "example.org",
	             {{dkim_result(dkim::Status::pass, "other.net")}, SpfStatus::pass, "other.net", {}});
	CHECK(res.status == DmarcStatus::fail);
	CHECK(res.reject);
	CHECK(res.use);

	// An aligned domain that did not pass.
	res = verify(reject, "example.org",
	             {{dkim_result(dkim::Status::fail, "example.org")}, SpfStatus::softfail, "example.org", {}});
	CHECK(res.status == DmarcStatus::fail);
	CHECK(res.reject);

	// Quarantine is treated as reject.
	CannedResolver quarantine = with_record("example.org", "v=DMARC1; p=quarantine");
	res = verify(quarantine, "example.org", {{}, SpfStatus::fail, "example.org", {}});
	CHECK(res.status == DmarcStatus::fail);
	CHECK(res.reject);

	// p=none: fails, never rejects.
	CannedResolver none = with_record("example.org", "v=DMARC1; p=none");
	res = verify(none, "example.org", {{}, SpfStatus::fail, "example.org", {}});
	CHECK(res.status == DmarcStatus::fail);
	CHECK_FALSE(res.reject);
	CHECK(res.use);
}

TEST_CASE("dmarc verdict: strict alignment modes") {
	CannedResolver strict = with_record("example.org", "v=DMARC1; p=reject; adkim=s; aspf=s");
	DmarcResult res = verify(
	    strict, "example.org",
	    {{dkim_result(dkim::Status::pass, "mail.example.org")}, SpfStatus::pass, "bounce.example.org", {}});
	CHECK(res.status == DmarcStatus::fail);
	CHECK(res.reject);
	CHECK_FALSE(res.aligned_dkim_pass);
	CHECK_FALSE(res.aligned_spf_pass);

	res = verify(strict, "example.org",
	             {{dkim_result(dkim::Status::pass, "example.org")}, SpfStatus::none, "", {}});
	CHECK(res.status == DmarcStatus::pass);
	CHECK_FALSE(res.reject);
}

TEST_CASE("dmarc verdict: sp= for subdomains") {
	CannedResolver r = with_record("example.org", "v=DMARC1; p=reject; sp=none");
	DmarcResult res = verify(r, "sub.example.org", {{}, SpfStatus::fail, "sub.example.org", {}});
	CHECK(res.status == DmarcStatus::fail);
	CHECK_FALSE(res.reject);
	CHECK(res.domain == "sub.example.org");
	CHECK(res.record_domain == "example.org");

	// The organizational domain itself uses p=.
	res = verify(r, "example.org", {{}, SpfStatus::fail, "example.org", {}});
	CHECK(res.reject);

	CannedResolver r2 = with_record("example.org", "v=DMARC1; p=none; sp=quarantine");
	res = verify(r2, "sub.example.org", {{}, SpfStatus::fail, "sub.example.org", {}});
	CHECK(res.status == DmarcStatus::fail);
	CHECK(res.reject);

	// Without sp=, p= applies to subdomains too.
	CannedResolver r3 = with_record("example.org", "v=DMARC1; p=reject");
	res = verify(r3, "sub.example.org", {{}, SpfStatus::fail, "sub.example.org", {}});
	CHECK(res.reject);

	// A subdomain's own record uses its p=, not sp=.
	CannedResolver r4 = with_record("sub.example.org", "v=DMARC1; p=reject; sp=none");
	res = verify(r4, "sub.example.org", {{}, SpfStatus::fail, "sub.example.org", {}});
	CHECK(res.record_domain == "sub.example.org");
	CHECK(res.reject);
}

TEST_CASE("dmarc verdict: pct sampling") {
	CannedResolver zero = with_record("example.org", "v=DMARC1; p=reject; pct=0");
	Verify v{{}, SpfStatus::fail, "example.org", {}};
	v.options.random_percent = [] { return 0; };
	DmarcResult res = verify(zero, "example.org", v);
	CHECK(res.status == DmarcStatus::fail);
	CHECK(res.reject);  // the verdict stands; "use" says whether to act on it
	CHECK_FALSE(res.use);

	CannedResolver half = with_record("example.org", "v=DMARC1; p=reject; pct=50");
	v.options.random_percent = [] { return 49; };
	CHECK(verify(half, "example.org", v).use);
	v.options.random_percent = [] { return 50; };
	CHECK_FALSE(verify(half, "example.org", v).use);

	// Not applying the percentage always uses the policy.
	v.options.apply_percentage = false;
	CHECK(verify(zero, "example.org", v).use);

	// pct=100 never draws.
	CannedResolver full = with_record("example.org", "v=DMARC1; p=reject");
	Verify w{{}, SpfStatus::fail, "example.org", {}};
	bool drawn = false;
	w.options.random_percent = [&] {
		drawn = true;
		return 99;
	};
	CHECK(verify(full, "example.org", w).use);
	CHECK_FALSE(drawn);
}

TEST_CASE("dmarc verdict: temporary errors") {
	CannedResolver r = with_record("example.org", "v=DMARC1; p=reject");

	DmarcResult res = verify(r, "example.org", {{}, SpfStatus::temperror, "example.org", {}});
	CHECK(res.status == DmarcStatus::temperror);
	CHECK_FALSE(res.reject);

	res = verify(r, "example.org",
	             {{dkim_result(dkim::Status::temperror, "example.org")}, SpfStatus::fail, "example.org", {}});
	CHECK(res.status == DmarcStatus::temperror);
	CHECK_FALSE(res.reject);

	// An aligned pass still wins over a temporary error elsewhere.
	res = verify(r, "example.org",
	             {{dkim_result(dkim::Status::temperror, "example.org")}, SpfStatus::pass, "example.org", {}});
	CHECK(res.status == DmarcStatus::pass);
	res = verify(r, "example.org",
	             {{dkim_result(dkim::Status::temperror, "x.net"), dkim_result(dkim::Status::pass, "example.org")},
	              SpfStatus::temperror,
	              "example.org",
	              {}});
	CHECK(res.status == DmarcStatus::pass);
	CHECK_FALSE(res.reject);

	// DNS failure looking up the policy.
	CannedResolver dns;
	dns.set("_dmarc.example.org", RrType::TXT, DnsAnswer{DnsStatus::temperror, {}, {}});
	res = verify(dns, "example.org", {{}, SpfStatus::pass, "example.org", {}});
	CHECK(res.status == DmarcStatus::temperror);
	CHECK_FALSE(res.reject);
	CHECK_FALSE(res.use);
	CHECK_FALSE(res.record);
}

TEST_CASE("dmarc verdict: no record or an invalid one") {
	CannedResolver r;
	DmarcResult res = verify(r, "example.org", {{}, SpfStatus::fail, "example.org", {}});
	CHECK(res.status == DmarcStatus::none);
	CHECK_FALSE(res.reject);
	CHECK_FALSE(res.use);
	CHECK_FALSE(res.record);
	CHECK(res.domain == "example.org");

	CannedResolver bad = with_record("example.org", "v=DMARC1; p=reject; pct=200");
	res = verify(bad, "example.org", {{}, SpfStatus::fail, "example.org", {}});
	CHECK(res.status == DmarcStatus::permerror);
	CHECK_FALSE(res.reject);
	CHECK_FALSE(res.use);
	CHECK(res.comment == "dmarc: malformed dmarc dns record: bad percentage \"200\"");
	CHECK(std::string(dmarc_status_name(DmarcStatus::permerror)) == "permerror");
}
