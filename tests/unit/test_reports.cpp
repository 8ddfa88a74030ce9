// DMARC aggregate and SMTP TLS reports: the parsers on documents shaped as
// RFC 7489 appendix C and RFC 8460 4.4 give them, and finding them in
// messages as plain, gzip and zip attachments.
#include <doctest/doctest.h>

#include "mailauth/reports.h"
#include "unit/report_samples.h"
#include "util/base64.h"
#include "util/compress.h"

using namespace tern;
using namespace tern::mailauth;
using namespace tern::testing;

TEST_CASE("reports: a DMARC aggregate report") {
	auto r = parse_dmarc_aggregate_report(dmarc_xml);
	REQUIRE(r);
	CHECK(r->org_name == "receiver.example");
	CHECK(r->email == "noreply-dmarc@receiver.example");
	CHECK(r->report_id == "9391651994964116463");
	CHECK(r->begin == 1335571200);
	CHECK(r->end == 1335657599);
	CHECK(r->domain == "example.org");
	CHECK(r->policy == "none");
	REQUIRE(r->records.size() == 2);
	CHECK(r->records[1].source_ip == "198.51.100.9");
	CHECK(r->records[1].disposition == "quarantine");
	CHECK(r->messages() == 5);
	CHECK(r->dmarc_pass() == 2);
}

TEST_CASE("reports: broken DMARC documents are refused") {
	CHECK_FALSE(parse_dmarc_aggregate_report("<feedback><report_metadata>"));
	CHECK_FALSE(parse_dmarc_aggregate_report("<other/>"));
	CHECK_FALSE(parse_dmarc_aggregate_report("<feedback></feedback>"));
	CHECK_FALSE(parse_dmarc_aggregate_report(""));
	std::string deep = "<feedback>";
	for (int i = 0; i < 100; ++i) deep += "<x>";
	for (int i = 0; i < 100; ++i) deep += "</x>";
	CHECK_FALSE(parse_dmarc_aggregate_report(deep + "</feedback>"));
}

TEST_CASE("reports: a TLS report and RFC 3339 times") {
	auto r = parse_tls_report(tls_json);
	REQUIRE(r);
	CHECK(r->organization == "Company-X");
	CHECK(r->report_id == "5065427c-23d3-47ca-b6e0-946ea0e8c4be");
	CHECK(r->begin == 1459468800);
	CHECK(r->end == 1459468800 + 86399);
	REQUIRE(r->policies.size() == 1);
	CHECK(r->policies[0].policy_domain == "company-y.example");
	CHECK(r->policies[0].successful == 5326);
	CHECK(r->policies[0].failed == 303);
	CHECK_FALSE(parse_tls_report("{}"));
	CHECK_FALSE(parse_tls_report("not json"));
	CHECK(parse_rfc3339("1985-04-12T23:20:50.52Z").value() == 482196050);
	CHECK(parse_rfc3339("1996-12-19T16:39:57-08:00").value() == 851042397);
	CHECK_FALSE(parse_rfc3339("1996-12-19 16:39"));
	CHECK_FALSE(parse_rfc3339("1996-13-19T16:39:57Z"));
}

TEST_CASE("reports: a deeply nested DMARC document stops at the depth limit") {
	// 8 MiB of open elements: refused in one pass over what comes before
	// the limit, not by walking the whole path at every element.
	std::string deep = "<feedback>";
	while (deep.size() < 8 * 1024 * 1024) deep += "<a>";
	CHECK_FALSE(parse_dmarc_aggregate_report(deep));
}

TEST_CASE("reports: message counts add up without overflowing") {
	auto r = parse_dmarc_aggregate_report(dmarc_xml);
	REQUIRE(r);
	REQUIRE(r->records.size() == 2);
	CHECK(r->messages() == 5);
	for (auto& rec : r->records) rec.count = 999999999999999999;  // 18 digits, the most a count may have
	for (int i = 0; i < 10; ++i) r->records.push_back(r->records[0]);
	CHECK(r->messages() == INT64_MAX);
	CHECK(r->dmarc_pass() == INT64_MAX);
}

TEST_CASE("reports: TLS report session counts are non-negative integers") {
	auto with_count = [](const std::string& count) {
		std::string json = tls_json;
		size_t at = json.find("5326");
		REQUIRE(at != std::string::npos);
		return json.replace(at, 4, count);
	};
	auto huge = parse_tls_report(with_count("18446744073709551615"));
	REQUIRE(huge);
	CHECK(huge->policies[0].successful == INT64_MAX);
	CHECK_FALSE(parse_tls_report(with_count("1e300")));
	CHECK_FALSE(parse_tls_report(with_count("5.5")));
	CHECK_FALSE(parse_tls_report(with_count("-1")));
}

TEST_CASE("reports: a TLS report's JSON is refused before it is built when too deep or too large") {
	// A few kilobytes of gzip inflate to megabytes of "[": the document
	// tree would take hundreds of megabytes.
	CHECK_FALSE(parse_tls_report(std::string(10 * 1024 * 1024, '[')));
	std::string wide = "[";
	for (int i = 0; i < 300000; ++i) wide += "0,";
	CHECK_FALSE(parse_tls_report(wide + "0]"));
	// Brackets and commas inside strings do not count.
	std::string json = tls_json;
	json.replace(json.find("Company-X"), 9, std::string(300000, ',') + "[[[\\\"{");
	auto r = parse_tls_report(json);
	REQUIRE(r);
	CHECK(r->organization.size() == 300000 + 5);  // the escaped quote is one
}

TEST_CASE("reports: found in messages as plain, gzip and zip attachments") {
	CHECK(find_dmarc_report(message_with("text/xml", "r.xml", dmarc_xml)));
	CHECK(find_dmarc_report(message_with("application/gzip", "r.xml.gz", gzip(dmarc_xml)))->records.size() == 2);
	CHECK(find_dmarc_report(message_with("application/zip", "r.zip", zip_one("r.xml", dmarc_xml)))->domain ==
	      "example.org");
	CHECK_FALSE(find_dmarc_report(message_with("application/gzip", "r.xml.gz", "not gzip")));
	CHECK_FALSE(find_dmarc_report("Subject: no report\r\n\r\nhello\r\n"));
	CHECK(find_tls_report(message_with("application/tlsrpt+gzip", "r.json.gz", gzip(tls_json))));
	CHECK(find_tls_report(message_with("application/tlsrpt+json", "r.json", tls_json)));
}

TEST_CASE("compress: output is capped") {
	std::string big(100000, 'a');
	CHECK(gunzip(gzip(big), 200000).value() == big);
	CHECK_FALSE(gunzip(gzip(big), 1000));
	CHECK_FALSE(gunzip(gzip(big).substr(0, 20), 200000));  // truncated
	CHECK(unzip_first_file(zip_one("a", big), 200000).value() == big);
	CHECK_FALSE(unzip_first_file(zip_one("a", big), 1000));
	CHECK_FALSE(unzip_first_file("PK garbage", 1000));
}
