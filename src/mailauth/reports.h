// DMARC aggregate reports (RFC 7489 7.2, appendix C) and SMTP TLS reports
// (RFC 8460 4) sent to a domain's report addresses: found in a message
// (plain, gzip or zip attachment), parsed, and summed up for listing. Pure;
// the caller decides whether to keep one (doc/behaviour.md §9, step 3).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::mailauth {

struct DmarcReportRecord {
	std::string source_ip;
	int64_t count = 0;
	std::string disposition;  // none, quarantine, reject
	std::string dkim, spf;    // policy-evaluated results: pass, fail
	std::string header_from;
};

struct DmarcAggregateReport {
	std::string org_name, email, report_id;
	int64_t begin = 0, end = 0;  // unix seconds
	std::string domain;          // policy_published/domain
	std::string policy;          // p=
	std::vector<DmarcReportRecord> records;

	int64_t messages() const;    // sum of counts
	int64_t dmarc_pass() const;  // messages with an aligned DKIM or SPF pass
};

// nullopt when the XML is not a well-formed feedback document with the
// required fields (org_name, report_id, date_range, policy_published domain).
std::optional<DmarcAggregateReport> parse_dmarc_aggregate_report(std::string_view xml);

struct TlsReportPolicy {
	std::string policy_type;  // sts, tlsa, no-policy-found
	std::string policy_domain;
	int64_t successful = 0, failed = 0;
};

struct TlsReport {
	std::string organization, contact, report_id;
	int64_t begin = 0, end = 0;
	std::vector<TlsReportPolicy> policies;
};

std::optional<TlsReport> parse_tls_report(std::string_view json);

// The report inside a message: the first part that is (or decompresses to)
// a report of the kind. Attachments are capped at 10 MiB decompressed.
std::optional<DmarcAggregateReport> find_dmarc_report(std::string_view message);
std::optional<TlsReport> find_tls_report(std::string_view message);

// RFC 3339 date-time ("2016-04-01T00:00:00Z", offsets allowed) to unix
// seconds; nullopt when malformed.
std::optional<int64_t> parse_rfc3339(std::string_view text);

}  // namespace tern::mailauth
