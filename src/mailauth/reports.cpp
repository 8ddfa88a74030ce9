#include "mailauth/reports.h"

#include <expat.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "message/mime.h"
#include "util/compress.h"
#include "util/strings.h"

namespace tern::mailauth {

namespace {

constexpr size_t max_attachment = 10 * 1024 * 1024;
constexpr size_t max_records = 100000;
constexpr size_t max_depth = 16;

std::string trim(std::string s) {
	size_t b = 0, e = s.size();
	while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
	while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
	return s.substr(b, e - b);
}

std::optional<int64_t> to_int(const std::string& s) {
	if (s.empty() || s.size() > 18) return std::nullopt;
	int64_t v = 0;
	for (char c : s) {
		if (!is_ascii_digit(c)) return std::nullopt;
		v = v * 10 + (c - '0');
	}
	return v;
}

// Collects the text of elements by their path below the root, e.g.
// "report_metadata/date_range/begin".
struct XmlState {
	XML_Parser parser = nullptr;
	std::vector<std::string> path;
	std::string text;
	DmarcAggregateReport report;
	DmarcReportRecord record;
	bool root_ok = false;
	bool failed = false;
	std::string begin, end;
};

std::string joined(const std::vector<std::string>& path) {
	std::string out;
	for (size_t i = 1; i < path.size(); ++i) out += (i > 1 ? "/" : "") + path[i];
	return out;
}

// Not a report we take: the parse stops here, so that the rest of a
// document too deep or too long costs nothing more.
void fail(XmlState* s) {
	s->failed = true;
	XML_StopParser(s->parser, XML_FALSE);
}

void XMLCALL on_start(void* data, const XML_Char* name, const XML_Char**) {
	auto* s = static_cast<XmlState*>(data);
	if (s->failed) return;
	if (s->path.size() >= max_depth) {
		fail(s);
		return;
	}
	if (s->path.empty()) s->root_ok = std::string_view(name) == "feedback";
	s->path.emplace_back(name);
	s->text.clear();
	if (joined(s->path) == "record") s->record = {};
}

void XMLCALL on_end(void* data, const XML_Char*) {
	auto* s = static_cast<XmlState*>(data);
	if (s->failed) return;
	std::string p = joined(s->path);
	std::string v = trim(s->text);
	auto& r = s->report;
	if (p == "report_metadata/org_name")
		r.org_name = v;
	else if (p == "report_metadata/email")
		r.email = v;
	else if (p == "report_metadata/report_id")
		r.report_id = v;
	else if (p == "report_metadata/date_range/begin")
		s->begin = v;
	else if (p == "report_metadata/date_range/end")
		s->end = v;
	else if (p == "policy_published/domain")
		r.domain = v;
	else if (p == "policy_published/p")
		r.policy = v;
	else if (p == "record/row/source_ip")
		s->record.source_ip = v;
	else if (p == "record/row/count")
		s->record.count = to_int(v).value_or(0);
	else if (p == "record/row/policy_evaluated/disposition")
		s->record.disposition = v;
	else if (p == "record/row/policy_evaluated/dkim")
		s->record.dkim = v;
	else if (p == "record/row/policy_evaluated/spf")
		s->record.spf = v;
	else if (p == "record/identifiers/header_from")
		s->record.header_from = v;
	else if (p == "record") {
		if (r.records.size() >= max_records) {
			fail(s);
			return;
		}
		r.records.push_back(std::move(s->record));
	}
	s->path.pop_back();
	s->text.clear();
}

void XMLCALL on_text(void* data, const XML_Char* text, int len) {
	auto* s = static_cast<XmlState*>(data);
	if (s->text.size() < 4096) s->text.append(text, static_cast<size_t>(len));
}

int days_from_civil(int64_t y, unsigned m, unsigned d) {
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = static_cast<unsigned>(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return static_cast<int>(era * 146097 + static_cast<int64_t>(doe) - 719468);
}

bool gzip_name(const message::MimePart& p) {
	std::string t = p.content_type.mime_type();
	return t == "application/gzip" || t == "application/x-gzip" || t == "application/tlsrpt+gzip" ||
	    (p.filename.size() > 3 && p.filename.substr(p.filename.size() - 3) == ".gz");
}

bool zip_name(const message::MimePart& p) {
	std::string t = p.content_type.mime_type();
	return t == "application/zip" || t == "application/x-zip-compressed" ||
	    (p.filename.size() > 4 && p.filename.substr(p.filename.size() - 4) == ".zip");
}

// The part's content, decompressed when it is an archive.
std::optional<std::string> part_content(const message::MimePart& p) {
	if (gzip_name(p)) return gunzip(p.body, max_attachment);
	if (zip_name(p)) return unzip_first_file(p.body, max_attachment);
	if (p.body.size() > max_attachment) return std::nullopt;
	return p.body;
}

}  // namespace

namespace {

// Counts are the reporter's numbers, each up to 18 digits: their sum stops
// at the largest int64_t instead of overflowing.
int64_t saturating_add(int64_t a, int64_t b) {
	int64_t sum;
	return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

}  // namespace

int64_t DmarcAggregateReport::messages() const {
	int64_t n = 0;
	for (const auto& r : records) n = saturating_add(n, r.count);
	return n;
}

int64_t DmarcAggregateReport::dmarc_pass() const {
	int64_t n = 0;
	for (const auto& r : records)
		if (r.dkim == "pass" || r.spf == "pass") n = saturating_add(n, r.count);
	return n;
}

std::optional<DmarcAggregateReport> parse_dmarc_aggregate_report(std::string_view xml) {
	XmlState state;
	std::unique_ptr<std::remove_pointer_t<XML_Parser>, void (*)(XML_Parser)> parser(XML_ParserCreate(nullptr),
	                                                                                XML_ParserFree);
	if (!parser) return std::nullopt;
	state.parser = parser.get();
	XML_SetUserData(parser.get(), &state);
	XML_SetElementHandler(parser.get(), on_start, on_end);
	XML_SetCharacterDataHandler(parser.get(), on_text);
	if (XML_Parse(parser.get(), xml.data(), static_cast<int>(xml.size()), 1) != XML_STATUS_OK) return std::nullopt;
	if (state.failed || !state.root_ok) return std::nullopt;
	auto& r = state.report;
	auto begin = to_int(state.begin), end = to_int(state.end);
	if (r.org_name.empty() || r.report_id.empty() || r.domain.empty() || !begin || !end) return std::nullopt;
	r.begin = *begin;
	r.end = *end;
	return std::move(r);
}

std::optional<int64_t> parse_rfc3339(std::string_view t) {
	// YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
	auto num = [&](size_t at, size_t len) -> std::optional<int> {
		if (at + len > t.size()) return std::nullopt;
		int v = 0;
		for (size_t i = at; i < at + len; ++i) {
			if (!is_ascii_digit(t[i])) return std::nullopt;
			v = v * 10 + (t[i] - '0');
		}
		return v;
	};
	auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2);
	if (!y || !mo || !d || !h || !mi || !s || t.size() < 20 || t[4] != '-' || t[7] != '-' ||
	    (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || t[13] != ':' || t[16] != ':')
		return std::nullopt;
	if (*mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;
	size_t i = 19;
	if (i < t.size() && t[i] == '.') {
		++i;
		while (i < t.size() && is_ascii_digit(t[i])) ++i;
	}
	int64_t offset = 0;
	if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
		++i;
	} else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
		auto oh = num(i + 1, 2), om = num(i + 4, 2);
		if (!oh || !om || i + 3 >= t.size() || t[i + 3] != ':') return std::nullopt;
		offset = (t[i] == '+' ? 1 : -1) * (*oh * 3600 + *om * 60);
		i += 6;
	} else {
		return std::nullopt;
	}
	if (i != t.size()) return std::nullopt;
	int64_t days = days_from_civil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d));
	return days * 86400 + *h * 3600 + *mi * 60 + *s - offset;
}

namespace {

constexpr size_t max_json_depth = 32;
constexpr size_t max_json_values = 200000;

// Whether a JSON text nests at most max_json_depth deep and holds at most
// about max_json_values values (counted by their brackets and commas), read
// before the document is built: a few kilobytes of gzip can inflate to
// megabytes of "[" whose tree would take a hundred times that in memory.
bool json_size_acceptable(std::string_view text) {
	size_t depth = 0, values = 0;
	bool in_string = false;
	for (size_t i = 0; i < text.size(); ++i) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				++i;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_json_depth || ++values > max_json_values) return false;
		} else if (c == ']' || c == '}') {
			if (depth > 0) --depth;
		} else if (c == ',') {
			if (++values > max_json_values) return false;
		}
	}
	return true;
}

// A session count: a JSON integer from 0 up (a float such as 1e300 would
// not convert).
int64_t session_count(const nlohmann::json& value) {
	if (!value.is_number_integer()) throw std::invalid_argument("session count is not an integer");
	if (value.is_number_unsigned()) {
		uint64_t v = value.get<uint64_t>();
		return v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
	}
	int64_t v = value.get<int64_t>();
	if (v < 0) throw std::invalid_argument("session count is negative");
	return v;
}

}  // namespace

std::optional<TlsReport> parse_tls_report(std::string_view text) {
	if (!json_size_acceptable(text)) return std::nullopt;
	auto j = nlohmann::json::parse(text, nullptr, false);
	if (j.is_discarded() || !j.is_object()) return std::nullopt;
	try {
		TlsReport r;
		r.organization = j.at("organization-name").get<std::string>();
		r.report_id = j.at("report-id").get<std::string>();
		if (j.contains("contact-info") && j["contact-info"].is_string())
			r.contact = j["contact-info"].get<std::string>();
		const auto& range = j.at("date-range");
		auto begin = parse_rfc3339(range.at("start-datetime").get<std::string>());
		auto end = parse_rfc3339(range.at("end-datetime").get<std::string>());
		if (!begin || !end) return std::nullopt;
		r.begin = *begin;
		r.end = *end;
		for (const auto& p : j.at("policies")) {
			TlsReportPolicy policy;
			policy.policy_type = p.at("policy").at("policy-type").get<std::string>();
			policy.policy_domain = p.at("policy").at("policy-domain").get<std::string>();
			policy.successful = session_count(p.at("summary").at("total-successful-session-count"));
			policy.failed = session_count(p.at("summary").at("total-failure-session-count"));
			r.policies.push_back(std::move(policy));
			if (r.policies.size() > max_records) return std::nullopt;
		}
		return r;
	} catch (const nlohmann::json::exception&) {
		return std::nullopt;
	} catch (const std::invalid_argument&) {
		return std::nullopt;
	}
}

std::optional<DmarcAggregateReport> find_dmarc_report(std::string_view message) {
	std::optional<DmarcAggregateReport> found;
	message::walk_mime(message, [&](const message::MimePart& p) {
		if (found) return;
		std::string t = p.content_type.mime_type();
		if (!gzip_name(p) && !zip_name(p) && t != "text/xml" && t != "application/xml") return;
		if (auto content = part_content(p)) found = parse_dmarc_aggregate_report(*content);
	});
	return found;
}

std::optional<TlsReport> find_tls_report(std::string_view message) {
	std::optional<TlsReport> found;
	message::walk_mime(message, [&](const message::MimePart& p) {
		if (found) return;
		std::string t = p.content_type.mime_type();
		if (t != "application/tlsrpt+json" && t != "application/tlsrpt+gzip" && t != "application/json" &&
		    !gzip_name(p))
			return;
		if (auto content = part_content(p)) found = parse_tls_report(*content);
	});
	return found;
}

}  // namespace tern::mailauth
