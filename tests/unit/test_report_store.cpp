// Kept DMARC and TLS reports (src/store/reports): the model's conditions for
// keeping one (doc/behaviour.md §9, step 3), the table and its listing.
#include <doctest/doctest.h>

#include "store/reports.h"
#include "unit/files.h"
#include "unit/report_samples.h"

using namespace tern;
using tern::testing::TempDir;
using tern::testing::write_file;

namespace {

std::shared_ptr<const config::Config> report_config(const std::string& dir) {
	return config::Config::load_text(R"({"hostname": "mx.example.org", "data_dir": ")" + dir +
	                                     R"(", "domains": {"example.org": {}, "company-y.example": {}},
	        "accounts": {"alice": {"domain": "example.org", "destinations": {
	            "alice@example.org": {},
	            "dmarc-reports@example.org": {"mailbox": "DMARC", "dmarc_reports": true},
	            "tls-reports@example.org": {"mailbox": "TLSRPT", "tls_reports": true}}}}})",
	                                 "test.json", dir);
}

const config::Destination& dest(const config::Config& cfg, const std::string& address) {
	return cfg.accounts.at("alice").destinations.at(address);
}

constexpr int64_t now = 1700000000;

}  // namespace

TEST_CASE("reports: a DMARC aggregate report is kept only under the model's conditions") {
	TempDir dir;
	auto cfg = report_config(dir.path);
	std::string file = dir.path + "/msg";
	write_file(file, testing::message_with("application/gzip", "r.xml.gz", testing::gzip(testing::dmarc_xml)));
	store::ReportFacts facts{true, "receiver.example", false};

	auto kept = store::keepable_reports(*cfg, dest(*cfg, "dmarc-reports@example.org"), facts, file, now);
	REQUIRE(kept.size() == 1);
	CHECK(kept[0].kind == store::ReportKind::dmarc);
	CHECK(kept[0].domain == "example.org");
	CHECK(kept[0].reporter == "receiver.example");
	CHECK(kept[0].begin == 1335571200);
	CHECK(kept[0].end == 1335657599);
	CHECK(kept[0].pass == 2);
	CHECK(kept[0].fail == 3);

	SUBCASE("not at an ordinary address") {
		CHECK(store::keepable_reports(*cfg, dest(*cfg, "alice@example.org"), facts, file, now).empty());
	}
	SUBCASE("not at a TLS report address") {
		CHECK(store::keepable_reports(*cfg, dest(*cfg, "tls-reports@example.org"), facts, file, now).empty());
	}
	SUBCASE("not without a DMARC pass") {
		facts.dmarc_pass = false;
		CHECK(store::keepable_reports(*cfg, dest(*cfg, "dmarc-reports@example.org"), facts, file, now).empty());
	}
	SUBCASE("not for a domain we do not host") {
		std::string xml = testing::dmarc_xml;
		xml.replace(xml.find("<domain>example.org"), 19, "<domain>other.example");
		write_file(file, testing::message_with("application/gzip", "r.xml.gz", testing::gzip(xml)));
		CHECK(store::keepable_reports(*cfg, dest(*cfg, "dmarc-reports@example.org"), facts, file, now).empty());
	}
	SUBCASE("not with a reporter name or report id over 255 bytes (D42)") {
		for (const char* field : {"<org_name>receiver.example", "<report_id>9391651994964116463"}) {
			std::string xml = testing::dmarc_xml;
			const std::string at = std::string(field).substr(0, std::string(field).find('>') + 1);
			const size_t name_at = xml.find(field) + at.size();
			std::string long_name = std::string(field).substr(at.size());
			SUBCASE(field) {
				xml.insert(name_at, std::string(255 - long_name.size(), 'x'));
				write_file(file,
				           testing::message_with("application/gzip", "r.xml.gz", testing::gzip(xml)));
				CHECK(store::keepable_reports(*cfg, dest(*cfg, "dmarc-reports@example.org"), facts,
				                              file, now)
				          .size() == 1);
				xml.insert(name_at, "x");
				write_file(file,
				           testing::message_with("application/gzip", "r.xml.gz", testing::gzip(xml)));
				CHECK(store::keepable_reports(*cfg, dest(*cfg, "dmarc-reports@example.org"), facts,
				                              file, now)
				          .empty());
			}
		}
	}
	SUBCASE("not when the period ends more than 60 s from now") {
		CHECK(
		    store::keepable_reports(*cfg, dest(*cfg, "dmarc-reports@example.org"), facts, file, 1335657599 - 60)
			.size() == 1);
		CHECK(
		    store::keepable_reports(*cfg, dest(*cfg, "dmarc-reports@example.org"), facts, file, 1335657599 - 61)
			.empty());
	}
}

TEST_CASE("reports: a TLS report needs a tlsrpt DKIM pass and a hosted policy domain") {
	TempDir dir;
	auto cfg = report_config(dir.path);
	std::string file = dir.path + "/msg";
	write_file(file,
	           testing::message_with("application/tlsrpt+gzip", "r.json.gz", testing::gzip(testing::tls_json)));
	store::ReportFacts facts{false, "company-x.example", true};
	auto kept = store::keepable_reports(*cfg, dest(*cfg, "tls-reports@example.org"), facts, file, now);
	REQUIRE(kept.size() == 1);
	CHECK(kept[0].kind == store::ReportKind::tls);
	CHECK(kept[0].domain == "company-y.example");
	CHECK(kept[0].reporter == "Company-X");
	CHECK(kept[0].pass == 5326);
	CHECK(kept[0].fail == 303);
	for (const char* field : {"\"Company-X\"", "\"5065427c-23d3-47ca-b6e0-946ea0e8c4be\""}) {
		CAPTURE(field);
		// D42: a name of 255 bytes is kept, one of 256 is not.
		std::string name(field);
		std::string json = testing::tls_json;
		const size_t at = json.find(name) + 1;
		json.insert(at, std::string(255 - (name.size() - 2), 'x'));
		write_file(file, testing::message_with("application/tlsrpt+gzip", "r.json.gz", testing::gzip(json)));
		CHECK(store::keepable_reports(*cfg, dest(*cfg, "tls-reports@example.org"), facts, file, now).size() ==
		      1);
		json.insert(at, "x");
		write_file(file, testing::message_with("application/tlsrpt+gzip", "r.json.gz", testing::gzip(json)));
		CHECK(store::keepable_reports(*cfg, dest(*cfg, "tls-reports@example.org"), facts, file, now).empty());
	}
	facts.tlsrpt_dkim_pass = false;
	CHECK(store::keepable_reports(*cfg, dest(*cfg, "tls-reports@example.org"), facts, file, now).empty());
}

TEST_CASE("reports: the DKIM rule for TLS reports") {
	mailauth::dkim::Result r;
	r.status = mailauth::dkim::Status::pass;
	r.signature.emplace();
	r.signature->domain = "Company-X.example";
	r.key.emplace();
	CHECK(store::dkim_allows_tlsrpt({r}, "company-x.example"));  // s=* by default
	CHECK_FALSE(store::dkim_allows_tlsrpt({r}, "other.example"));
	r.key->services = {"email"};
	CHECK_FALSE(store::dkim_allows_tlsrpt({r}, "company-x.example"));
	r.key->services = {"tlsrpt"};
	CHECK(store::dkim_allows_tlsrpt({r}, "company-x.example"));
	r.signature->length = 100;  // l= leaves content unsigned
	CHECK_FALSE(store::dkim_allows_tlsrpt({r}, "company-x.example"));
	r.signature->length.reset();
	r.status = mailauth::dkim::Status::fail;
	CHECK_FALSE(store::dkim_allows_tlsrpt({r}, "company-x.example"));
}

TEST_CASE("reports: stored, listed by kind and domain, a resent report counts once") {
	TempDir dir;
	auto cfg = report_config(dir.path);
	store::Env env(dir.path);
	std::string file = dir.path + "/msg";
	write_file(file, testing::message_with("text/xml", "r.xml", testing::dmarc_xml));
	store::ReportFacts facts{true, "receiver.example", false};
	uint64_t kept_before = store::report_counters().dmarc;
	CHECK(store::store_report_if_any(&env, *cfg, dest(*cfg, "dmarc-reports@example.org"), facts, file, now));
	CHECK(store::report_counters().dmarc == kept_before + 1);  // tern_reports_stored_total
	CHECK(store::store_report_if_any(&env, *cfg, dest(*cfg, "dmarc-reports@example.org"), facts, file, now));
	CHECK_FALSE(store::store_report_if_any(&env, *cfg, dest(*cfg, "alice@example.org"), facts, file, now));
	store::StoredReport other{
	    store::ReportKind::dmarc, "company-y.example", 100, 200, "Other Org", "x1", "o.example", 7, 0};
	store::store_report(env, other);

	auto all = store::list_reports(env, store::ReportKind::dmarc);
	REQUIRE(all.size() == 2);
	CHECK(all[0] == other);  // company-y.example sorts first
	CHECK(all[1].domain == "example.org");
	CHECK(all[1].from_domain == "receiver.example");
	auto one = store::list_reports(env, store::ReportKind::dmarc, "Example.ORG.");
	REQUIRE(one.size() == 1);
	CHECK(store::report_line(one[0]) ==
	      "2012-04-28T00:00:00Z 2012-04-28T23:59:59Z example.org receiver.example pass=2 fail=3 fail");
	CHECK(store::report_line(other) ==
	      "1970-01-01T00:01:40Z 1970-01-01T00:03:20Z company-y.example Other Org pass=7 fail=0 pass");
	CHECK(store::list_reports(env, store::ReportKind::tls).empty());
}
