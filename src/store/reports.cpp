// Table "reports.db", key: kind ('d' DMARC, 't' TLS) domain 0x00 reporter
// 0x00 report-id → JSON of the StoredReport (fields added later are
// optional when read).
#include "store/reports.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "store/files.h"
#include "store/table.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/time.h"

namespace tern::store {

namespace {

constexpr const char* table_file = "reports.db";
// Reports are small; a message larger than this carries no report we keep.
constexpr size_t report_read_limit = 16 * 1024 * 1024;
// doc/behaviour.md §9 step 3: a DMARC report about the future is made up.
constexpr int64_t max_future_end_s = 60;
// D42: the reporter's name and the report id are part of the row's key and
// kept for good; no reporter sends names near this long.
constexpr size_t max_report_name_len = 255;

bool names_fit(std::string_view reporter, std::string_view report_id) {
	return reporter.size() <= max_report_name_len && report_id.size() <= max_report_name_len;
}

char kind_char(ReportKind kind) { return kind == ReportKind::dmarc ? 'd' : 't'; }

std::string kind_prefix(ReportKind kind, const std::string& domain) {
	std::string k(1, kind_char(kind));
	if (!domain.empty()) {
		k += domain;
		k.push_back('\0');
	}
	return k;
}

std::string report_key(const StoredReport& r) {
	std::string k = kind_prefix(r.kind, r.domain);
	k += r.reporter;
	k.push_back('\0');
	return k + r.report_id;
}

std::string encode(const StoredReport& r) {
	nlohmann::json j = {{"domain", r.domain},
	                    {"begin", r.begin},
	                    {"end", r.end},
	                    {"reporter", r.reporter},
	                    {"report_id", r.report_id},
	                    {"from_domain", r.from_domain},
	                    {"pass", r.pass},
	                    {"fail", r.fail}};
	return j.dump();
}

std::optional<StoredReport> decode(ReportKind kind, std::string_view value) {
	auto j = nlohmann::json::parse(value, nullptr, false);
	if (!j.is_object()) return std::nullopt;
	StoredReport r;
	r.kind = kind;
	r.domain = j.value("domain", "");
	r.begin = j.value("begin", int64_t{0});
	r.end = j.value("end", int64_t{0});
	r.reporter = j.value("reporter", "");
	r.report_id = j.value("report_id", "");
	r.from_domain = j.value("from_domain", "");
	r.pass = j.value("pass", int64_t{0});
	r.fail = j.value("fail", int64_t{0});
	return r;
}

// A kept report's row, with what every kind has.
StoredReport report_row(ReportKind kind, std::string domain, int64_t begin, int64_t end, std::string reporter,
                        std::string report_id, const ReportFacts& facts, int64_t pass, int64_t fail) {
	return StoredReport{
	    kind, std::move(domain), begin, end, std::move(reporter), std::move(report_id), facts.from_domain, pass,
	    fail};
}

}  // namespace

const char* report_kind_name(ReportKind kind) { return kind == ReportKind::dmarc ? "dmarc" : "tlsrpt"; }

void store_report(Env& env, const StoredReport& report) {
	if (report.domain.empty() || report.domain.find('\0') != std::string::npos ||
	    report.reporter.find('\0') != std::string::npos)
		throw DbError("invalid report domain or reporter for the store");
	env.in_table(table_file, [&](TableTxn& t) { t.put(report_key(report), encode(report)); });
}

std::vector<StoredReport> list_reports(Env& env, ReportKind kind, const std::string& domain) {
	std::vector<StoredReport> out;
	std::string prefix = kind_prefix(kind, canonical_dns_name(domain));
	env.in_table(table_file, [&](TableTxn& t) {
		out.clear();
		t.scan(prefix, "", [&](std::string_view, std::string_view value) {
			if (auto r = decode(kind, value)) out.push_back(std::move(*r));
			return true;
		});
	});
	std::stable_sort(out.begin(), out.end(), [](const StoredReport& a, const StoredReport& b) {
		return a.domain != b.domain ? a.domain < b.domain : a.begin < b.begin;
	});
	return out;
}

std::string report_line(const StoredReport& r) {
	return iso8601_utc(r.begin) + " " + iso8601_utc(r.end) + " " + r.domain + " " +
	    (r.reporter.empty() ? "-" : r.reporter) + " pass=" + std::to_string(r.pass) +
	    " fail=" + std::to_string(r.fail) + " " + (r.fail == 0 ? "pass" : "fail");
}

bool dkim_allows_tlsrpt(const std::vector<mailauth::dkim::Result>& results, const std::string& from_domain) {
	for (const auto& r : results) {
		if (r.status != mailauth::dkim::Status::pass || !r.signature || !r.key) continue;
		// RFC 8460 3: the report's DKIM signature is of the reporter's domain,
		// with a key for the tlsrpt service; l= would leave content unsigned.
		if (!iequals(r.signature->domain, from_domain) || r.signature->length) continue;
		if (r.key->service_allowed("tlsrpt")) return true;
	}
	return false;
}

std::vector<StoredReport> keepable_reports(const config::Config& cfg, const config::Destination& destination,
                                           const ReportFacts& facts, const std::string& message_file, int64_t now) {
	std::vector<StoredReport> out;
	if (!destination.dmarc_reports && !destination.tls_reports) return out;
	bool dmarc = destination.dmarc_reports && facts.dmarc_pass;
	bool tls = destination.tls_reports && facts.tlsrpt_dkim_pass;
	if (!dmarc && !tls) return out;
	std::string message = read_file_head(message_file, report_read_limit);
	if (dmarc) {
		if (auto rep = mailauth::find_dmarc_report(message)) {
			std::string domain = canonical_dns_name(rep->domain);
			if (cfg.hosts_domain(domain) && rep->end <= now + max_future_end_s &&
			    names_fit(rep->org_name, rep->report_id)) {
				int64_t pass = rep->dmarc_pass();
				out.push_back(report_row(ReportKind::dmarc, domain, rep->begin, rep->end, rep->org_name,
				                         rep->report_id, facts, pass, rep->messages() - pass));
			}
		}
	}
	if (tls) {
		auto rep = mailauth::find_tls_report(message);
		if (rep && names_fit(rep->organization, rep->report_id)) {
			for (const auto& p : rep->policies) {
				std::string domain = canonical_dns_name(p.policy_domain);
				if (cfg.hosts_domain(domain))
					out.push_back(report_row(ReportKind::tls, domain, rep->begin, rep->end,
					                         rep->organization, rep->report_id, facts, p.successful,
					                         p.failed));
			}
		}
	}
	return out;
}

ReportCounters& report_counters() {
	static ReportCounters counters;
	return counters;
}

bool store_report_if_any(Env* env, const config::Config& cfg, const config::Destination& destination,
                         const ReportFacts& facts, const std::string& message_file, int64_t now) {
	if (!destination.dmarc_reports && !destination.tls_reports) return false;
	try {
		auto reports = keepable_reports(cfg, destination, facts, message_file, now);
		if (reports.empty()) return false;
		if (!env) throw DbError("the database is not open");
		for (const auto& r : reports) {
			store_report(*env, r);
			++(r.kind == ReportKind::dmarc ? report_counters().dmarc : report_counters().tls);
			log::info("report kept",
			          {{"kind", report_kind_name(r.kind)},
			           {"domain", r.domain},
			           {"reporter", r.reporter},
			           {"report_id", r.report_id}});
		}
		return true;
	} catch (const std::exception& e) {
		log::error("keeping a report", {{"error", e.what()}});
		return false;
	}
}

}  // namespace tern::store
