// Header field builders, see headers.h.
#include "message/headers.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>

namespace tern::message {

namespace {

// RFC 5322 2.1.1: lines SHOULD be at most 78 characters (CRLF excluded).
constexpr size_t max_line_len = 78;

constexpr const char* month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// `value` (not negative) in decimal, zero-padded to `width` digits.
void append_number(std::string& out, int value, int width) {
	char digits[12];
	char* end = std::to_chars(digits, digits + sizeof digits, value).ptr;
	for (int pad = width - static_cast<int>(end - digits); pad > 0; pad--) out += '0';
	out.append(digits, end);
}

}  // namespace

std::string format_date(std::time_t t, int tz_offset_s) {
	// RFC 5322 3.3 date-time without the optional day-of-week, as the model
	// writes it: "2 Jan 2006 15:04:05 -0700". The wall-clock time is UTC
	// shifted by the offset, so no dependence on the process's TZ.
	std::time_t shifted = t + tz_offset_s;
	std::tm tm{};
	gmtime_r(&shifted, &tm);
	int offset_min = std::abs(tz_offset_s) / 60;
	// Written by hand rather than through snprintf: a Received field per
	// message, and snprintf's format parsing was most of this function.
	std::string out;
	out.reserve(32);
	append_number(out, tm.tm_mday, 1);
	out += ' ';
	out += month_names[tm.tm_mon];
	out += ' ';
	append_number(out, tm.tm_year + 1900, 4);
	out += ' ';
	append_number(out, tm.tm_hour, 2);
	out += ':';
	append_number(out, tm.tm_min, 2);
	out += ':';
	append_number(out, tm.tm_sec, 2);
	out += ' ';
	out += tz_offset_s < 0 ? '-' : '+';
	append_number(out, offset_min / 60, 2);
	append_number(out, offset_min % 60, 2);
	return out;
}

int local_utc_offset(std::time_t t) {
	std::tm tm{};
	localtime_r(&t, &tm);
	return static_cast<int>(tm.tm_gmtoff);
}

HeaderBuilder::HeaderBuilder(std::string_view name) {
	out_.append(name);
	out_ += ':';
	line_len_ = out_.size();
}

// Folding as the model's header writer does it: an item is never split; when
// the separator plus the item would take the line past 78 characters, the
// line is folded (RFC 5322 2.2.3) and the TAB replaces the separator. A line
// holding only the TAB is never folded again, so an item longer than the
// limit gets a line of its own.
void HeaderBuilder::add(std::string_view item) {
	if (line_len_ > 1 && line_len_ + 1 + item.size() > max_line_len) {
		newline();
	} else {
		out_ += ' ';
		line_len_ += 1;
	}
	out_.append(item);
	line_len_ += item.size();
}

void HeaderBuilder::add_unfolded(std::string_view item) {
	out_ += ' ';
	out_.append(item);
	line_len_ += 1 + item.size();
}

void HeaderBuilder::add_raw(std::string_view text) {
	if (line_len_ > 1 && line_len_ + text.size() > max_line_len) newline();
	out_.append(text);
	line_len_ += text.size();
}

void HeaderBuilder::newline() {
	out_ += "\r\n\t";
	line_len_ = 1;
}

std::string HeaderBuilder::finish() const { return out_ + "\r\n"; }

std::string build_received(const ReceivedInfo& info) {
	// RFC 5321 4.4 Time-stamp-line; "via tcp" and "with" per RFC 5321 4.4 and
	// RFC 3848. The "from" and "by" domains carry their comment in the same
	// item (never folded apart), as the model does.
	HeaderBuilder h("Received");
	std::string from = info.from;
	if (!info.from_comment.empty()) from += " " + info.from_comment;
	std::string by = info.by;
	if (!info.by_comment.empty()) by += " " + info.by_comment;
	h.add("from");
	h.add(from);
	h.add("by");
	h.add(by);
	h.add("via");
	h.add("tcp");
	h.add("with");
	h.add(info.with);
	h.add("id");
	h.add(info.id);
	// The TLS comment's words are separate items so the fold can fall
	// between them (the model passes the comment as a word list).
	std::string_view tls = info.tls_comment;
	while (!tls.empty()) {
		size_t space = tls.find(' ');
		std::string_view word = tls.substr(0, space);
		if (!word.empty()) h.add(word);
		if (space == std::string_view::npos) break;
		tls.remove_prefix(space + 1);
	}
	h.add("for");
	h.add("<" + info.for_rcpt + ">;");
	h.add(format_date(info.when, info.tz_offset_s));
	return h.finish();
}

std::string build_return_path(std::string_view address) {
	// RFC 5321 4.4: Return-Path: <reverse-path>, "<>" for the null sender.
	std::string out = "Return-Path: <";
	out.append(address);
	out += ">\r\n";
	return out;
}

std::string received_with(bool ehlo, bool smtputf8, bool tls, bool authenticated) {
	// RFC 3848 and RFC 6531 3.7.3: UTF8SMTP wins over ESMTP.
	std::string with = smtputf8 ? "UTF8SMTP" : ehlo ? "ESMTP" : "SMTP";
	if (tls) with += 'S';
	if (authenticated) with += 'A';
	return with;
}

}  // namespace tern::message
