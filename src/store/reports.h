// DMARC aggregate reports (RFC 7489 7.2) and SMTP TLS reports (RFC 8460)
// received at report addresses (doc/behaviour.md §9, step 3): whether a
// report may be kept, the table that keeps them, and the listing that
// `ternctl dmarc reports` and `ternctl tlsrpt reports` print. Blocking:
// worker threads or ternctl.
#pragma once
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "mailauth/dkim.h"
#include "mailauth/reports.h"
#include "store/db.h"

namespace tern::store {

enum class ReportKind { dmarc, tls };
const char* report_kind_name(ReportKind kind);  // "dmarc", "tlsrpt"

// One kept report, summed up: for DMARC the policy domain and the messages
// that passed or failed DMARC; for TLS one row per hosted policy domain and
// its successful and failed sessions.
struct StoredReport {
	ReportKind kind = ReportKind::dmarc;
	std::string domain;          // the hosted domain the report is about
	int64_t begin = 0, end = 0;  // the period, unix seconds
	std::string reporter;        // org_name / organization-name
	std::string report_id;
	std::string from_domain;  // the From domain of the message that carried it
	int64_t pass = 0, fail = 0;

	bool operator==(const StoredReport&) const = default;
};

// Keeps the report; one with the same kind, domain, reporter and report id
// (a report sent again) replaces the earlier one.
void store_report(Env& env, const StoredReport& report);
// Kept reports of a kind, by domain then period; only `domain`'s when given.
std::vector<StoredReport> list_reports(Env& env, ReportKind kind, const std::string& domain = "");
// One line per report: `<begin> <end> <domain> <reporter> pass=N fail=N <result>`,
// times in ISO 8601 UTC, result "pass" when nothing failed, else "fail".
std::string report_line(const StoredReport& report);

// What the session knows of the message when deciding whether to keep a
// report (doc/behaviour.md §9, step 3).
struct ReportFacts {
	bool dmarc_pass = false;  // DMARC passed for the From domain
	std::string from_domain;  // ASCII, lower case; "" when From did not parse
	// A passing DKIM signature of the From domain without l= whose key
	// allows the tlsrpt service (RFC 8460 3: reports are signed).
	bool tlsrpt_dkim_pass = false;
};
// tlsrpt_dkim_pass from the verified signatures.
bool dkim_allows_tlsrpt(const std::vector<mailauth::dkim::Result>& results, const std::string& from_domain);

// The reports the message carries that may be kept for this destination:
// DMARC (destination.dmarc_reports) when DMARC passed, the report's domain
// is hosted and its end is at most 60 s after `now`; TLS
// (destination.tls_reports) when tlsrpt_dkim_pass and a policy domain is
// hosted. Empty when the destination is no report address or nothing
// qualifies. The analysis's report_kept is !empty(). Reads at most the
// first 16 MiB of `message_file`.
std::vector<StoredReport> keepable_reports(const config::Config& cfg, const config::Destination& destination,
                                           const ReportFacts& facts, const std::string& message_file, int64_t now);

// keepable_reports, then stores them. True when a report was kept: the
// caller then stores its copy flagged Seen (it needs no attention, and it
// skips the first-time-sender delay). A failure to store is logged and
// answers false; the message is delivered all the same.
bool store_report_if_any(Env* env, const config::Config& cfg, const config::Destination& destination,
                         const ReportFacts& facts, const std::string& message_file, int64_t now);

// Reports kept so far, by kind, for the metrics sampler (workers count).
struct ReportCounters {
	std::atomic<uint64_t> dmarc{0}, tls{0};
};
ReportCounters& report_counters();

}  // namespace tern::store
