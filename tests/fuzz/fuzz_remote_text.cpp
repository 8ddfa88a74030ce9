// Fuzzes readers of text that other hosts choose and that no other target
// covers: what a port-25 message's body reaches besides its headers and
// DKIM (the junk filter's words: MIME parts, transfer encodings, charsets,
// HTML; the DMARC and TLS reports found in it: MIME, gzip or zip, XML,
// JSON, RFC 3339 times), the DMARC records a domain publishes, and the
// replies of the SMTP and LMTP servers the queue talks to. The first byte
// picks the reader. Checks that none crashes and that what they return
// keeps its documented limits.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "inbound/junk_filter.h"
#include "mailauth/dmarc.h"
#include "mailauth/reports.h"
#include "smtp/client_reply.h"
#include "util/strings.h"

using namespace tern;

namespace {

void check_words(std::string_view message) {
	for (const std::string& word : inbound::message_words(message)) {
		// 3 to 40 bytes, or two of them joined by one space.
		FUZZ_CHECK(word.size() >= 3 && word.size() <= 81);
		FUZZ_CHECK(word == ascii_lower(word));
	}
}

// Reports are capped at this many rows (mailauth/reports.cpp).
constexpr size_t max_report_rows = 100000;

void check_dmarc_report(const mailauth::DmarcAggregateReport& r) {
	// The required fields of a feedback document (reports.h).
	FUZZ_CHECK(!r.org_name.empty() && !r.report_id.empty() && !r.domain.empty());
	FUZZ_CHECK(r.records.size() <= max_report_rows);
	(void)r.messages();
	(void)r.dmarc_pass();
}

void check_tls_report(const mailauth::TlsReport& r) { FUZZ_CHECK(r.policies.size() <= max_report_rows); }

void check_dmarc_record(std::string_view txt) {
	mailauth::DmarcParse parsed = mailauth::parse_dmarc_record(txt);
	if (!parsed.record) return;
	FUZZ_CHECK(parsed.is_dmarc);
	FUZZ_CHECK(parsed.record->percentage >= 0 && parsed.record->percentage <= 100);
	FUZZ_CHECK(parsed.record->policy != mailauth::DmarcPolicy::unset);
	(void)parsed.record->applicable_policy("a.example.org", "example.org");
}

// Server replies, one line per input line (LF-separated, a CR before it
// dropped as the client's line reader does).
void check_replies(std::string_view input) {
	smtp::ReplyParser parser;
	size_t lines_fed = 0;
	size_t start = 0;
	while (start <= input.size()) {
		size_t end = input.find('\n', start);
		if (end == std::string_view::npos) end = input.size();
		std::string_view line = input.substr(start, end - start);
		if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
		bool complete = parser.feed_line(line);
		++lines_fed;
		if (!parser.error().empty()) return;  // the client drops such a server
		if (complete) {
			smtp::Reply reply = parser.take();
			// RFC 5321 4.2.1: only 2xx to 5xx are replies.
			FUZZ_CHECK(reply.code >= 200 && reply.code <= 599);
			FUZZ_CHECK(reply.lines.size() == lines_fed);
			FUZZ_CHECK(reply.lines.size() <= smtp::ReplyParser::max_reply_lines);
			lines_fed = 0;
			FUZZ_CHECK(reply.enhanced.empty() ||
			           reply.enhanced[0] == static_cast<char>('0' + reply.code / 100));
			(void)reply.text();
			(void)reply.summary();
		}
		start = end + 1;
	}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 1) return 0;
	std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
	switch (data[0] % 7) {
	case 0: check_words(input); break;
	case 1:
		if (auto r = mailauth::find_dmarc_report(input)) check_dmarc_report(*r);
		break;
	case 2:
		if (auto r = mailauth::find_tls_report(input)) check_tls_report(*r);
		break;
	case 3:
		if (auto r = mailauth::parse_dmarc_aggregate_report(input)) check_dmarc_report(*r);
		break;
	case 4:
		if (auto r = mailauth::parse_tls_report(input)) check_tls_report(*r);
		(void)mailauth::parse_rfc3339(input);
		break;
	case 5: check_dmarc_record(input); break;
	default: check_replies(input); break;
	}
	return 0;
}
