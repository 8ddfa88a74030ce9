// SPF evaluator (RFC 7208): the data-driven table of spf_cases.h replayed on
// CannedResolver (synchronous answers) and on a deferred resolver (answers
// from a later "loop turn"), the RFC 7208 7.4 macro examples, and the
// Received-SPF header text.
#include <doctest/doctest.h>

#include <deque>
#include <map>

#include "mailauth/spf.h"
#include "unit/spf_cases.h"

using namespace tern;
using namespace tern::mailauth;

namespace {

RrType rr_type(const std::string& t) {
	if (t == "A") return RrType::A;
	if (t == "AAAA") return RrType::AAAA;
	if (t == "MX") return RrType::MX;
	if (t == "PTR") return RrType::PTR;
	return RrType::TXT;
}

void load_zone(CannedResolver& r, const std::vector<spf_cases::ZoneRecord>& zone) {
	for (const auto& rec : zone) {
		RrType type = rr_type(rec.type);
		if (rec.status == "temperror" || rec.status == "nxdomain") {
			DnsAnswer a;
			a.status = rec.status == "temperror" ? DnsStatus::temperror : DnsStatus::nxdomain;
			r.set(rec.name, type, a);
		} else if (type == RrType::MX) {
			std::vector<MxRecord> mx;
			for (const auto& d : rec.data) {
				auto space = d.find(' ');
				MxRecord m;
				m.preference = std::stoi(d.substr(0, space));
				m.host = d.substr(space + 1);
				if (m.host == ".") m.host = "";
				mx.push_back(m);
			}
			r.set_mx(rec.name, mx);
		} else {
			r.set_records(rec.name, type, rec.data);
		}
	}
}

SpfArgs case_args(const spf_cases::Case& c) {
	SpfArgs args;
	auto ip = IpAddr::parse(c.ip);
	REQUIRE(ip);
	args.remote_ip = *ip;
	auto at = c.sender.rfind('@');
	if (at != std::string::npos) {
		args.mailfrom_localpart = c.sender.substr(0, at);
		args.mailfrom_domain = c.sender.substr(at + 1);
	}
	if (!c.helo.empty() && c.helo.front() == '[') {
		args.helo_ip = IpAddr::parse(c.helo.substr(1, c.helo.size() - 2));
		REQUIRE(args.helo_ip);
	} else {
		args.helo_domain = c.helo;
	}
	args.local_ip_text = "198.51.100.25";
	args.local_hostname = spf_cases::spf_case_receiver;
	args.now = spf_cases::spf_case_now;
	return args;
}

struct VerifyResult {
	bool called = false;
	int calls = 0;
	SpfReceived received;
	std::string explanation;
	bool authentic = true;
};

SpfVerifyDone capture(VerifyResult& out) {
	return [&out](SpfReceived r, std::string expl, bool authentic) {
		out.called = true;
		out.calls++;
		out.received = std::move(r);
		out.explanation = std::move(expl);
		out.authentic = authentic;
	};
}

// Answers from a "later loop turn": callbacks are queued and run by pump(),
// so nothing completes inside query().
class DeferredResolver : public Resolver {
public:
	explicit DeferredResolver(CannedResolver& inner) : inner_(inner) {}
	void query(uint64_t owner, const std::string& name, RrType type, Callback cb) override {
		inner_.query(owner, name, type, [this, owner, cb](const DnsAnswer& a) {
			pending_.push_back({owner, [cb, a] { cb(a); }});
		});
	}
	void cancel_owner(uint64_t owner) override {
		std::deque<std::pair<uint64_t, std::function<void()>>> keep;
		for (auto& p : pending_)
			if (p.first != owner) keep.push_back(std::move(p));
		pending_.swap(keep);
	}
	size_t pending() const { return pending_.size(); }
	void pump() {
		while (!pending_.empty()) {
			auto next = std::move(pending_.front());
			pending_.pop_front();
			next.second();
		}
	}

private:
	CannedResolver& inner_;
	std::deque<std::pair<uint64_t, std::function<void()>>> pending_;
};

void check_case(const spf_cases::Case& c, const VerifyResult& got) {
	INFO("case: ", c.name);
	REQUIRE(got.called);
	CHECK(got.calls == 1);
	CHECK(std::string(spf_status_name(got.received.result)) == c.result);
	if (c.mechanism != "*") CHECK(got.received.mechanism == c.mechanism);
	if (c.explanation != "*") CHECK(got.explanation == c.explanation);
	CHECK_FALSE(got.authentic);
}

}  // namespace

TEST_CASE("spf: the case table is large enough") {
	CHECK(spf_cases::cases().size() >= 150);
	CHECK(spf_cases::macro_cases().size() >= 40);
}

TEST_CASE("spf: case table on synchronous canned answers") {
	for (const auto& c : spf_cases::cases()) {
		CannedResolver r;
		load_zone(r, c.zone);
		VerifyResult got;
		spf_verify(r, 1, case_args(c), capture(got));
		check_case(c, got);
	}
}

TEST_CASE("spf: case table on deferred answers") {
	for (const auto& c : spf_cases::cases()) {
		CannedResolver canned;
		load_zone(canned, c.zone);
		DeferredResolver r(canned);
		VerifyResult got;
		spf_verify(r, 7, case_args(c), capture(got));
		// Only the address-literal HELO case finishes without DNS.
		if (canned.queries() > 0) CHECK_FALSE(got.called);
		r.pump();
		check_case(c, got);
	}
}

TEST_CASE("spf: RFC 7208 7.4 macro examples and macro syntax") {
	for (const auto& m : spf_cases::macro_cases()) {
		INFO("macro: ", m.macro, " ip ", m.ip);
		SpfMacroContext ctx;
		ctx.ip = *IpAddr::parse(m.ip);
		ctx.sender_localpart = "strong-bad";
		ctx.sender_domain = "email.example.com";
		ctx.domain = "email.example.com";
		ctx.helo = "mx.example.org";
		ctx.validated_ptr = "mx.example.org";
		ctx.receiver = spf_cases::spf_case_receiver;
		ctx.now = spf_cases::spf_case_now;
		auto got = spf_expand_macros(m.macro, ctx, m.for_exp);
		if (m.valid) {
			REQUIRE(got);
			CHECK(*got == m.expansion);
		} else {
			CHECK_FALSE(got);
		}
	}
}

TEST_CASE("spf: empty localpart expands as postmaster") {
	SpfMacroContext ctx;
	ctx.ip = *IpAddr::parse("192.0.2.3");
	ctx.sender_domain = "email.example.com";
	CHECK(*spf_expand_macros("%{l}", ctx, false) == "postmaster");
	CHECK(*spf_expand_macros("%{s}", ctx, false) == "postmaster@email.example.com");
	CHECK(*spf_expand_macros("%{p}", ctx, false) == "unknown");
	CHECK(*spf_expand_macros("%{r}", ctx, true) == "unknown");
}

TEST_CASE("spf: status names") {
	CHECK(std::string(spf_status_name(SpfStatus::none)) == "none");
	CHECK(std::string(spf_status_name(SpfStatus::neutral)) == "neutral");
	CHECK(std::string(spf_status_name(SpfStatus::pass)) == "pass");
	CHECK(std::string(spf_status_name(SpfStatus::fail)) == "fail");
	CHECK(std::string(spf_status_name(SpfStatus::softfail)) == "softfail");
	CHECK(std::string(spf_status_name(SpfStatus::temperror)) == "temperror");
	CHECK(std::string(spf_status_name(SpfStatus::permerror)) == "permerror");
}

TEST_CASE("spf: Received-SPF header as the model writes it") {
	SpfReceived r;
	r.result = SpfStatus::pass;
	r.comment = "c";
	r.client_ip = *IpAddr::parse("0.0.0.0");
	r.envelope_from = "x@x";
	r.helo = "y";
	r.problem = "a b\"\\";
	r.receiver = "z";
	r.identity = SpfReceived::Identity::mailfrom;
	r.mechanism = "+ip4:0.0.0.0/0";
	CHECK(r.header() ==
	      "Received-SPF: pass (c) client-ip=0.0.0.0; envelope-from=\"x@x\"; helo=y;\r\n"
	      "\tproblem=\"a b\\\"\\\\\"; mechanism=\"+ip4:0.0.0.0/0\"; receiver=z; identity=mailfrom\r\n");

	SpfReceived s;
	s.result = SpfStatus::softfail;
	s.client_ip = *IpAddr::parse("2001:db8::1");
	s.envelope_from = "postmaster@mx.example.org";
	s.helo = "mx.example.org";
	s.receiver = "mail.example.net";
	s.identity = SpfReceived::Identity::helo;
	s.mechanism = "~all";
	CHECK(s.header() ==
	      "Received-SPF: softfail client-ip=\"2001:db8::1\";\r\n"
	      "\tenvelope-from=\"postmaster@mx.example.org\"; helo=mx.example.org;\r\n"
	      "\tmechanism=~all; receiver=mail.example.net; identity=helo\r\n");
}

TEST_CASE("spf: Received-SPF problem is truncated and empty values quoted") {
	SpfReceived r;
	r.result = SpfStatus::permerror;
	r.client_ip = *IpAddr::parse("192.0.2.1");
	r.envelope_from = "";
	r.helo = "";
	r.problem = std::string(100, 'p');
	r.receiver = "r.example";
	r.identity = SpfReceived::Identity::none;
	CHECK(r.header() ==
	      "Received-SPF: permerror client-ip=192.0.2.1; envelope-from=\"\"; helo=\"\";\r\n"
	      "\tproblem=" +
	          std::string(67, 'p') +
	          ";\r\n"
	          "\treceiver=r.example; identity=\"\"\r\n");
}

TEST_CASE("spf: verify fills the Received-SPF fields for mailfrom") {
	CannedResolver r;
	r.set_records("example.com", RrType::TXT, {"v=spf1 ip4:192.0.2.0/24 -all"});
	SpfArgs args;
	args.remote_ip = *IpAddr::parse("192.0.2.1");
	args.mailfrom_localpart = "user";
	args.mailfrom_domain = "example.com";
	args.helo_domain = "mx.example.org";
	args.local_hostname = "mail.tern.example";
	VerifyResult got;
	spf_verify(r, 1, args, capture(got));
	REQUIRE(got.called);
	CHECK(got.received.result == SpfStatus::pass);
	CHECK(got.received.comment == "domain example.com");
	CHECK(got.received.envelope_from == "user@example.com");
	CHECK(got.received.helo == "mx.example.org");
	CHECK(got.received.receiver == "mail.tern.example");
	CHECK(got.received.identity == SpfReceived::Identity::mailfrom);
	CHECK(got.received.mechanism == "ip4:192.0.2.0/24");
	CHECK(got.received.problem == "");
	CHECK(got.received.header() ==
	      "Received-SPF: pass (domain example.com) client-ip=192.0.2.1;\r\n"
	      "\tenvelope-from=\"user@example.com\"; helo=mx.example.org;\r\n"
	      "\tmechanism=\"ip4:192.0.2.0/24\"; receiver=mail.tern.example; identity=mailfrom\r\n");

	// A localpart that needs quoting is quoted (RFC 5321 4.1.2), as the
	// model writes it; the header value is then quoted around it.
	args.mailfrom_localpart = "a b";
	VerifyResult quoted;
	spf_verify(r, 1, args, capture(quoted));
	REQUIRE(quoted.called);
	CHECK(quoted.received.envelope_from == "\"a b\"@example.com");
	CHECK(quoted.received.header().find("envelope-from=\"\\\"a b\\\"@example.com\";") != std::string::npos);
}

TEST_CASE("spf: verify with a null sender checks the HELO name") {
	CannedResolver r;
	r.set_records("mx.example.org", RrType::TXT, {"v=spf1 -all"});
	SpfArgs args;
	args.remote_ip = *IpAddr::parse("192.0.2.1");
	args.helo_domain = "mx.example.org";
	args.local_hostname = "mail.tern.example";
	VerifyResult got;
	spf_verify(r, 1, args, capture(got));
	REQUIRE(got.called);
	CHECK(got.received.result == SpfStatus::fail);
	CHECK(got.received.comment == "domain mx.example.org, from ehlo because mailfrom is empty");
	CHECK(got.received.envelope_from == "postmaster@mx.example.org");
	CHECK(got.received.identity == SpfReceived::Identity::helo);
	CHECK(got.received.mechanism == "-all");
}

TEST_CASE("spf: verify with address-literal HELO and null sender does no lookup") {
	CannedResolver r;
	SpfArgs args;
	args.remote_ip = *IpAddr::parse("192.0.2.1");
	args.helo_ip = IpAddr::parse("192.0.2.1");
	args.local_hostname = "mail.tern.example";
	VerifyResult got;
	spf_verify(r, 1, args, capture(got));
	REQUIRE(got.called);
	CHECK(r.queries() == 0);
	CHECK(got.received.result == SpfStatus::none);
	CHECK(got.received.header() ==
	      "Received-SPF: none (no domain, ehlo is an ip literal and mailfrom is empty)\r\n"
	      "\tclient-ip=192.0.2.1; envelope-from=\"@192.0.2.1\"; helo=192.0.2.1;\r\n"
	      "\treceiver=mail.tern.example; identity=\"\"\r\n");
}

TEST_CASE("spf: problems are reported") {
	CannedResolver r;
	r.set_records("example.com", RrType::TXT, {"v=spf1 a:v1.example.com a:v2.example.com a:v3.example.com +all"});
	std::string problem, mechanism;
	SpfStatus status = SpfStatus::pass;
	spf_check_host(r, 1, *IpAddr::parse("192.0.2.1"), "example.com", "user", "example.com", "h.example",
	               [&](SpfStatus s, std::string m, std::string, std::string p) {
			       status = s;
			       mechanism = m;
			       problem = p;
		       });
	CHECK(status == SpfStatus::permerror);
	CHECK(mechanism == "a:v3.example.com");
	CHECK(problem == "spf: too many void lookups");

	CannedResolver none;
	spf_check_host(none, 1, *IpAddr::parse("192.0.2.1"), "example.com", "user", "example.com", "h.example",
	               [&](SpfStatus s, std::string m, std::string, std::string p) {
			       status = s;
			       mechanism = m;
			       problem = p;
		       });
	CHECK(status == SpfStatus::none);
	CHECK(mechanism == "");
	CHECK(problem == "spf: no txt record for example.com.");

	// TXT records, none of them SPF: the model's shorter text.
	none.set_records("example.com", RrType::TXT, {"google-site-verification=abc"});
	spf_check_host(none, 1, *IpAddr::parse("192.0.2.1"), "example.com", "user", "example.com", "h.example",
	               [&](SpfStatus s, std::string, std::string, std::string p) {
			       status = s;
			       problem = p;
		       });
	CHECK(status == SpfStatus::none);
	CHECK(problem == "spf: no txt record");
}

TEST_CASE("spf: mx stops at the first matching host") {
	CannedResolver r;
	r.set_records("example.com", RrType::TXT, {"v=spf1 mx -all"});
	r.set_mx("example.com", {{20, "mx2.example.com"}, {10, "mx1.example.com"}});
	r.set_records("mx1.example.com", RrType::A, {"192.0.2.1"});
	r.set_records("mx2.example.com", RrType::A, {"192.0.2.2"});
	SpfStatus status = SpfStatus::none;
	spf_check_host(r, 1, *IpAddr::parse("192.0.2.1"), "example.com", "u", "example.com", "",
	               [&](SpfStatus s, std::string, std::string, std::string) { status = s; });
	CHECK(status == SpfStatus::pass);
	CHECK(r.queries() == 3);  // TXT, MX, A of mx1 (lowest preference first)
}

TEST_CASE("spf: a huge record evaluates without deep recursion") {
	std::string record = "v=spf1";
	for (int i = 0; i < 20000; i++)
		record += " ip4:10." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + ".1";
	record += " ?all";
	CannedResolver r;
	r.set_records("example.com", RrType::TXT, {record});
	SpfStatus status = SpfStatus::none;
	std::string mechanism;
	spf_check_host(r, 1, *IpAddr::parse("192.0.2.1"), "example.com", "u", "example.com", "",
	               [&](SpfStatus s, std::string m, std::string, std::string) {
			       status = s;
			       mechanism = m;
		       });
	CHECK(status == SpfStatus::neutral);
	CHECK(mechanism == "?all");
}

TEST_CASE("spf: cancelled queries never complete") {
	CannedResolver canned;
	canned.set_records("example.com", RrType::TXT, {"v=spf1 +all"});
	DeferredResolver r(canned);
	bool called = false;
	spf_check_host(r, 42, *IpAddr::parse("192.0.2.1"), "example.com", "u", "example.com", "",
	               [&](SpfStatus, std::string, std::string, std::string) { called = true; });
	CHECK(r.pending() == 1);
	r.cancel_owner(42);
	r.pump();
	CHECK_FALSE(called);
}

TEST_CASE("spf: validated PTR names are looked up once per evaluation") {
	CannedResolver r;
	r.set_records("example.com", RrType::TXT,
	              {"v=spf1 ptr:a.example ptr:b.example exists:%{p}.x.example.com -all"});
	r.set_records("1.2.0.192.in-addr.arpa", RrType::PTR, {"mail.example.com"});
	r.set_records("mail.example.com", RrType::A, {"192.0.2.1"});
	r.set_records("mail.example.com.x.example.com", RrType::A, {"127.0.0.2"});
	SpfStatus status = SpfStatus::none;
	spf_check_host(r, 1, *IpAddr::parse("192.0.2.1"), "example.com", "u", "example.com", "",
	               [&](SpfStatus s, std::string, std::string, std::string) { status = s; });
	CHECK(status == SpfStatus::pass);
	CHECK(r.queries() == 4);  // TXT, PTR, A mail.example.com, A for exists
}

TEST_CASE("spf: known python3-spf differences name existing cases") {
	for (const auto& [name, why] : spf_cases::pyspf_known_differences()) {
		INFO("case: ", name);
		bool found = false;
		for (const auto& c : spf_cases::cases()) found = found || c.name == name;
		CHECK(found);
		CHECK_FALSE(why.empty());
	}
}
