// DSN composition and texts, see dsn.h.
#include "util/strings.h"
#include "util/random.h"
#include "util/hex.h"
#include "message/dsn.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "message/headers.h"
#include "smtp/parser.h"
#include "util/base64.h"

namespace tern::message {

namespace {

// RFC 5322 2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998.
constexpr size_t folding_line_len = 78;
constexpr size_t max_line_len = 998;
// RFC 2045 6.7 and 6.8: encoded lines at most 76 characters.
constexpr size_t encoded_line_len = 76;


bool has_non_ascii(std::string_view s) {
	for (unsigned char c : s)
		if (c >= 0x80) return true;
	return false;
}

// Bare LF becomes CRLF; existing CRLF is kept. A message must use CRLF
// (RFC 5322 2.1), whatever the caller's text used.

bool has_line_longer_than(std::string_view crlf_text, size_t limit) {
	size_t start = 0;
	while (start <= crlf_text.size()) {
		size_t end = crlf_text.find("\r\n", start);
		if (end == std::string_view::npos) end = crlf_text.size();
		if (end - start > limit) return true;
		start = end + 2;
	}
	return false;
}

std::string base64_lines(std::string_view data) {
	std::string encoded = base64_encode(data);
	std::string out;
	for (size_t i = 0; i < encoded.size(); i += encoded_line_len) {
		out.append(encoded, i, encoded_line_len);
		out += "\r\n";
	}
	return out;
}

// RFC 2045 6.7 quoted-printable of CRLF text, for a UTF-8 human-readable
// part in the ASCII-only variant (7bit transport).
std::string quoted_printable(std::string_view crlf_text) {
	std::string out;
	size_t start = 0;
	for (;;) {
		size_t end = crlf_text.find("\r\n", start);
		bool last = end == std::string_view::npos;
		std::string_view line = crlf_text.substr(start, last ? std::string_view::npos : end - start);
		size_t column = 0;
		for (size_t i = 0; i < line.size(); i++) {
			unsigned char c = static_cast<unsigned char>(line[i]);
			bool at_line_end = i + 1 == line.size();
			std::string piece;
			if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_line_end)) {
				piece = static_cast<char>(c);
			} else {
				piece = "=";
				append_hex_byte(piece, c, HexCase::upper);
			}
			// Soft line break (rule 5): keep room for the "=".
			if (column + piece.size() > encoded_line_len - 1) {
				out += "=\r\n";
				column = 0;
			}
			out += piece;
			column += piece.size();
		}
		if (last) break;
		out += "\r\n";
		start = end + 2;
	}
	return out;
}

// A field, folded at spaces (RFC 5322 2.2.3) only when it would pass 78
// characters, so that ordinary fields are written exactly as given.
void write_field(std::string& out, std::string_view name, std::string_view value) {
	if (name.size() + 2 + value.size() <= folding_line_len) {
		out.append(name);
		out += ": ";
		out.append(value);
		out += "\r\n";
		return;
	}
	// RFC 5322 2.1.1: no line over 998 characters. A word longer than a
	// line can hold (a remote reply without spaces) is cut, at a UTF-8
	// boundary, into pieces folded apart.
	constexpr size_t longest_word = 900;
	HeaderBuilder builder(name);
	size_t start = 0;
	while (start < value.size()) {
		size_t end = value.find(' ', start);
		if (end == std::string_view::npos) end = value.size();
		std::string_view word = value.substr(start, end - start);
		while (word.size() > longest_word) {
			// Never an empty piece: a word of continuation bytes is cut anyway.
			size_t cut = std::max<size_t>(1, utf8_char_start(word, longest_word));
			builder.add(word.substr(0, cut));
			word.remove_prefix(cut);
		}
		if (!word.empty()) builder.add(word);
		start = end + 1;
	}
	out += builder.finish();
}

std::string with_prefix(std::string_view value, std::string_view prefix, std::string_view written_prefix) {
	if (value.size() >= prefix.size()) {
		std::string head(value.substr(0, prefix.size()));
		for (char& c : head)
			if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
		if (head == prefix) return std::string(value);
	}
	return std::string(written_prefix) + std::string(value);
}

// Address in a header: Unicode domain in the UTF-8 variant, A-labels
// otherwise. A string that does not parse is written as given.
std::string header_address(const std::string& address, bool utf8) {
	std::optional<smtp::Address> parsed = smtp::parse_address(address);
	if (!parsed) return address;
	return utf8 ? parsed->to_string() : parsed->to_ascii_string();
}

// RFC 6533 3's embedded-unicode-char: each character of `text` that `keep`
// refuses written as "\x{HEX}"; a byte that is no UTF-8 counts as U+FFFD.
template <class Keep>
std::string escape_unicode(std::string_view text, Keep keep) {
	std::string out;
	size_t i = 0;
	while (i < text.size()) {
		Utf8Rune r = decode_utf8(text.substr(i));
		if (keep(r)) {
			out.append(text.substr(i, r.len));
		} else {
			char buf[16];
			std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(r.cp));
			out += buf;
		}
		i += r.len;
	}
	return out;
}

// RFC 6533 3: utf-8-addr-xtext, for a UTF-8 localpart in an "rfc822;"
// address: every code point outside %x21-7E, and "\", "+" and "=", escaped.
std::string xtext_localpart(std::string_view localpart) {
	return escape_unicode(localpart, [](Utf8Rune r) {
		return r.cp > 0x20 && r.cp < 0x7f && r.cp != '\\' && r.cp != '+' && r.cp != '=';
	});
}

// Free text in the status part, such as a remote server's reply (RFC 3464
// 2.1: US-ASCII in message/delivery-status; RFC 6533 3: UTF-8 allowed in
// message/global-delivery-status): any character beyond ASCII escaped in
// the ASCII variant, a control character (but tab) in both.
std::string status_text(std::string_view value, bool utf8) {
	return escape_unicode(value, [utf8](Utf8Rune r) {
		return (r.cp >= 0x20 && r.cp < 0x7f) || r.cp == '\t' || (utf8 && r.valid && r.cp >= 0xa0);
	});
}

// RFC 3464 2.3.2 address-type and address. An ASCII address is "rfc822;"
// with A-labels. A UTF-8 localpart needs RFC 6533 3's "utf-8" type: as is in
// message/global-delivery-status, as utf-8-addr-xtext in the 7bit
// message/delivery-status.
std::string dsn_address(const std::string& address, bool utf8) {
	std::optional<smtp::Address> parsed = smtp::parse_address(address);
	if (!parsed) return (utf8 ? "utf-8;" : "rfc822;") + address;
	if (utf8) return "utf-8;" + parsed->to_string();
	if (!has_non_ascii(parsed->localpart)) return "rfc822;" + parsed->to_ascii_string();
	return "utf-8;" + xtext_localpart(parsed->localpart) + "@" + parsed->lookup_domain();
}

// RFC 3464 2.3.1 from a stored ORCPT "type;address": a "utf-8" address in
// the ASCII variant as utf-8-addr-xtext (RFC 6533 3), as is otherwise.
std::string original_recipient_value(const std::string& stored, bool utf8) {
	auto orcpt = smtp::orcpt_from_stored(stored);
	if (!orcpt) return stored;
	if (orcpt->type == "utf-8" && !utf8) return "utf-8;" + smtp::utf8_addr_xtext(orcpt->address);
	// The 7bit part cannot hold what +HH decoded to: keep it encoded.
	if (!utf8 && has_non_ascii(orcpt->address)) return orcpt->type + ";" + smtp::xtext_encode(orcpt->address);
	return orcpt->type + ";" + orcpt->address;
}

void begin_part(std::string& out, const std::string& boundary, bool first, std::string_view content_type,
                std::string_view encoding) {
	if (!first) out += "\r\n";
	out += "--" + boundary + "\r\n";
	out += "Content-Type: ";
	out.append(content_type);
	out += "\r\nContent-Transfer-Encoding: ";
	out.append(encoding);
	out += "\r\n\r\n";
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
	std::string out;
	for (size_t i = 0; i < items.size(); i++) {
		if (i) out.append(sep);
		out += items[i];
	}
	return out;
}

std::string full_response_text(const std::vector<std::string>& smtp_lines) {
	if (smtp_lines.empty()) return "";
	return "\nFull SMTP response:\n\n\t" + join(smtp_lines, "\n\t") + "\n";
}

}  // namespace

namespace {

void write_dsn_header(std::string& out, const DsnMessage& msg, bool utf8, const std::string& boundary) {
	std::time_t date = msg.date != 0 ? msg.date : std::time(nullptr);
	out += "From: <" + header_address(msg.from, utf8) + ">\r\n";
	out += "To: <" + header_address(msg.to, utf8) + ">\r\n";
	write_field(out, "Subject", msg.subject);
	out += "Message-Id: <" + msg.message_id + ">\r\n";
	if (!msg.references.empty()) write_field(out, "References", msg.references);
	out += "Date: " + format_date(date, msg.tz_offset_s) + "\r\n";
	// RFC 3834 5: a notification is auto-replied; responders leave it alone.
	out += "Auto-Submitted: auto-replied\r\n";
	out += "MIME-Version: 1.0\r\n";
	// RFC 3462 2 (multipart/report), RFC 3464 2 (report-type).
	out += "Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"" + boundary + "\"\r\n";
	out += "\r\n";
}

// A remote server's reply quoted in the text may carry control characters
// (an escape sequence for the reader's terminal, a bare CR that some
// readers take for a line end, a right-to-left override): C0 and DEL, the
// hidden controls (is_hidden_control: C1, bidirectional formatting) and
// bytes that are no UTF-8 (the part says charset=utf-8) become "?". Line
// ends (LF, CR LF) and tabs stay.
std::string printable_text(std::string_view text) {
	std::string out;
	out.reserve(text.size());
	for (size_t i = 0; i < text.size();) {
		const Utf8Rune r = decode_utf8(text.substr(i));
		const char32_t cp = r.cp;
		const bool line_end = cp == '\n' || (cp == '\r' && i + 1 < text.size() && text[i + 1] == '\n');
		const bool control = (is_ascii_control(cp) && cp != '\t' && !line_end) || is_hidden_control(cp);
		if (!r.valid || control)
			out += '?';
		else
			out.append(text.substr(i, r.len));
		i += r.len;  // 1 for a byte that is no sequence
	}
	return out;
}

// Part 1: human-readable explanation (RFC 3464 2, first component).
void write_text_part(std::string& out, const DsnMessage& msg, bool utf8, const std::string& boundary) {
	std::string text = to_crlf(printable_text(msg.text_body));
	// A remote reply may be longer than a line may be (RFC 5321 4.5.3.1.5
	// allows it 512 octets, RFC 5322 2.1.1 a line 998): quoted-printable
	// wraps it.
	bool too_long = has_line_longer_than(text, max_line_len);
	if (utf8 && !too_long) {
		begin_part(out, boundary, true, "text/plain; charset=utf-8", "8BIT");
		out += text;
	} else if (has_non_ascii(text) || too_long) {
		begin_part(out, boundary, true, "text/plain; charset=utf-8", "QUOTED-PRINTABLE");
		out += quoted_printable(text);
	} else {
		begin_part(out, boundary, true, "text/plain", "7BIT");
		out += text;
	}
}

// Per-recipient fields (RFC 3464 2.3), each group after an empty line.
void write_recipient_fields(std::string& out, const DsnRecipient& r, bool utf8, int tz_offset_s) {
	out += "\r\n";
	if (!r.original_recipient.empty())
		write_field(out, "Original-Recipient",
		            status_text(original_recipient_value(r.original_recipient, utf8), utf8));  // 2.3.1
	write_field(out, "Final-Recipient", dsn_address(r.final_recipient, utf8));                     // 2.3.2
	write_field(out, "Action", r.action);                                                          // 2.3.3
	std::string status = r.status;
	if (status.empty())  // 2.3.4: the field is required
		status = r.action == "failed" ? "5.0.0" : r.action == "delayed" ? "4.0.0" : "2.0.0";
	if (!r.status_comment.empty()) status += " (" + status_text(r.status_comment, utf8) + ")";
	write_field(out, "Status", status);
	if (!r.remote_mta.empty())
		write_field(out, "Remote-MTA", with_prefix(status_text(r.remote_mta, utf8), "dns;", "dns; "));  // 2.3.5
	if (!r.diagnostic.empty())
		write_field(out, "Diagnostic-Code",
		            with_prefix(status_text(r.diagnostic, utf8), "smtp;", "smtp; "));  // 2.3.6
	if (r.last_attempt != 0)
		write_field(out, "Last-Attempt-Date", format_date(r.last_attempt, tz_offset_s));  // 2.3.7
	if (r.will_retry_until != 0)
		write_field(out, "Will-Retry-Until", format_date(r.will_retry_until, tz_offset_s));  // 2.3.9
}

// Part 2: the machine-readable status (RFC 3464 2.1; RFC 6533 3 for
// message/global-delivery-status).
void write_status_part(std::string& out, const DsnMessage& msg, bool utf8, const std::string& boundary) {
	if (utf8)
		begin_part(out, boundary, false, "message/global-delivery-status", "8BIT");
	else
		begin_part(out, boundary, false, "message/delivery-status", "7BIT");
	// Per-message fields (RFC 3464 2.2).
	if (!msg.envid.empty()) write_field(out, "Original-Envelope-Id", status_text(msg.envid, utf8));  // 2.2.1
	write_field(out, "Reporting-MTA", with_prefix(msg.reporting_mta, "dns;", "dns; "));              // 2.2.2
	if (!msg.received_from_mta.empty())
		write_field(out, "Received-From-MTA",
		            with_prefix(status_text(msg.received_from_mta, utf8), "dns;", "dns;"));         // 2.2.4
	if (msg.arrival != 0) write_field(out, "Arrival-Date", format_date(msg.arrival, msg.tz_offset_s));  // 2.2.5
	for (const DsnRecipient& r : msg.recipients) write_recipient_fields(out, r, utf8, msg.tz_offset_s);
}

// Part 3 with the header section only (RFC 3462 3, RFC 6533 5/6.3).
void write_original_headers_part(std::string& out, const DsnMessage& msg, bool utf8, const std::string& boundary) {
	std::string headers = to_crlf(msg.original_headers);
	if (!headers.ends_with("\r\n")) headers += "\r\n";
	bool too_long = has_line_longer_than(headers, max_line_len);
	if (utf8 && !too_long) {
		begin_part(out, boundary, false, "message/global-headers", "8BIT");
		out += headers;
	} else if (msg.smtputf8 || too_long) {
		// Headers that may hold UTF-8 cannot travel as 7bit text to an
		// ASCII receiver, and overlong lines cannot travel at all:
		// base64 keeps them intact.
		std::string_view type = utf8                 ? "message/global-headers"
		    : has_non_ascii(headers) || msg.smtputf8 ? "text/rfc822-headers; charset=utf-8"
							     : "text/rfc822-headers";
		begin_part(out, boundary, false, type, "BASE64");
		out += base64_lines(headers);
	} else {
		begin_part(out, boundary, false, "text/rfc822-headers", "7BIT");
		out += headers;
	}
}

// Part 3: the whole original message (RFC 3461 4.3 RET=FULL; RFC 3462
// 3; RFC 6533 5 message/global), or its header section.
void write_original_part(std::string& out, const DsnMessage& msg, bool utf8, const std::string& boundary) {
	if (!msg.original_message.empty()) {
		std::string original = to_crlf(msg.original_message);
		if (!original.ends_with("\r\n")) original += "\r\n";
		// RFC 2046 5.2.1: message/rfc822 takes 7bit or 8bit only.
		bool eight_bit = has_non_ascii(original);
		begin_part(out, boundary, false, utf8 ? "message/global" : "message/rfc822",
		           eight_bit ? "8BIT" : "7BIT");
		out += original;
	} else if (!msg.original_headers.empty()) {
		write_original_headers_part(out, msg, utf8, boundary);
	}
}

}  // namespace

std::string compose_dsn(const DsnMessage& msg, bool utf8_variant, const std::string& boundary_for_tests) {
	if (msg.message_id.empty()) throw std::invalid_argument("dsn: missing message-id");
	if (msg.recipients.empty()) throw std::invalid_argument("dsn: missing per-recipient fields");  // RFC 3464 2.1
	// A message that needed no SMTPUTF8 never gets the UTF-8 form.
	bool utf8 = utf8_variant && msg.smtputf8;
	std::string boundary = boundary_for_tests.empty() ? random_hex(30) : boundary_for_tests;

	std::string out;
	write_dsn_header(out, msg, utf8, boundary);
	write_text_part(out, msg, utf8, boundary);
	write_status_part(out, msg, utf8, boundary);
	write_original_part(out, msg, utf8, boundary);
	out += "\r\n--" + boundary + "--\r\n";
	return out;
}

std::string received_from_mta_value(const std::string& ehlo, const std::string& ip_literal) {
	return "dns;" + ehlo + " (" + ip_literal + ")";
}

std::string incoming_failure_text(const std::vector<IncomingFailure>& failures) {
	std::string out;
	if (failures.size() > 1) out += "Multiple delivery failures occurred.\n\n";
	for (const IncomingFailure& f : failures) {
		// doc/behaviour.md D10: recipient first, then the error (the model swaps them).
		out += f.permanent ? "Permanent" : "Transient";
		out += " delivery failure to:\n\n\t" + f.recipient + "\n\nError:\n\n\t" + f.error + "\n\n";
	}
	return out;
}

std::string failed_dsn_text(const std::string& recipient, const std::string& error,
                            const std::vector<std::string>& smtp_lines) {
	return "\nDelivery has failed permanently for your email to:\n\n\t" + recipient +
	    "\n\nNo further deliveries will be attempted.\n\nError during the last delivery attempt:\n\n\t" + error +
	    "\n" + full_response_text(smtp_lines);
}

std::string success_dsn_text(const std::string& recipient, bool relayed, const std::string& host) {
	if (relayed)
		return "\nYour email to:\n\n\t" + recipient + "\n\nwas relayed to " + host +
		    ", which does not offer delivery status notifications: no further notice will come.\n";
	return "\nYour email was delivered to:\n\n\t" + recipient + "\n";
}

namespace {
std::string count_of(long n, const char* unit) { return std::to_string(n) + " " + unit + (n == 1 ? "" : "s"); }
}  // namespace

std::string describe_delay(std::time_t seconds) {
	if (seconds < 1) seconds = 1;
	if (seconds < 120) return count_of(static_cast<long>(seconds), "second");
	if (seconds < 3600 - 30) return count_of(static_cast<long>((seconds + 30) / 60), "minute");
	// Whole hours while they are within 5% (the queue's jitter is 1%).
	long hours = static_cast<long>((seconds + 1800) / 3600);
	if (std::labs(static_cast<long>(seconds) - hours * 3600) * 20 <= static_cast<long>(seconds))
		return count_of(hours, "hour");
	long minutes = static_cast<long>((seconds + 30) / 60);
	return count_of(minutes / 60, "hour") + " " + count_of(minutes % 60, "minute");
}

std::string delayed_dsn_text(const std::string& recipient, const std::string& error,
                             const std::vector<std::time_t>& next_attempts, std::time_t now, bool failure_notice,
                             const std::vector<std::string>& smtp_lines) {
	// doc/behaviour.md D11: the model announces "in 4 hours, 8 hours and 16 hours"
	// while its queue retries after 2, 4 and 8 hours; tern states the
	// queue's real remaining schedule.
	std::string schedule;
	if (next_attempts.empty()) {
		schedule = "No further delivery attempts are scheduled.\n";
	} else {
		std::vector<std::string> delays;
		for (std::time_t t : next_attempts) delays.push_back(describe_delay(t - now));
		std::string list = delays.back();
		if (delays.size() > 1) {
			delays.pop_back();
			list = join(delays, ", ") + " and " + list;
		}
		const bool one = next_attempts.size() == 1;
		schedule = std::string(one ? "Next attempt to deliver: in " : "Next attempts to deliver: in ") + list +
		    (one ? ".\nIf this attempt fails, " : ".\nIf these attempts all fail, ") +
		    (failure_notice ? "you will receive a notice.\n"
		                    : "no notice will follow: none was asked for on failure.\n");
	}
	return "\nDelivery has been delayed of your email to:\n\n\t" + recipient + "\n\n" + schedule +
	    "\nError during the last delivery attempt:\n\n\t" + error + "\n" + full_response_text(smtp_lines);
}

}  // namespace tern::message
