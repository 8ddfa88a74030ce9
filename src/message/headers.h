// Builders for the header fields tern adds to messages (RFC 5322, RFC 5321
// 4.4). Pure; unit-tested.
#pragma once
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace tern::message {

// RFC 5322 3.3 date as the model writes it: "2 Jan 2006 15:04:05 -0700"
// (no day-of-week), in local time zone offset `tz_offset_s` (0 = +0000).
std::string format_date(std::time_t t, int tz_offset_s = 0);

// Offset of the local time zone from UTC at time `t`, in seconds (east
// positive), for format_date and ReceivedInfo::tz_offset_s.
int local_utc_offset(std::time_t t);

// Appends header items with single spaces, starting a new folded line
// (CRLF TAB) when adding would make the line exceed 78 characters.
// Used for Received and Authentication-Results.
class HeaderBuilder {
public:
	explicit HeaderBuilder(std::string_view name);  // "Received"
	void add(std::string_view item);                // separator: one space
	void add_unfolded(std::string_view item);       // separator: one space, never a fold
	void add_raw(std::string_view text);            // no separator
	void newline();                                 // force CRLF TAB
	std::string finish() const;                     // ends with CRLF
private:
	std::string out_;
	size_t line_len_ = 0;
};

// Inputs for the Received header (RFC 5321 4.4, doc/behaviour.md §7).
struct ReceivedInfo {
	std::string from;          // "F": EHLO name (or our hostname on submission)
	std::string from_comment;  // e.g. "(iprev.example [1.2.3.4])", empty for none
	std::string by;            // our hostname
	std::string by_comment;    // "([127.0.0.1])"
	std::string with;          // SMTP, ESMTP, UTF8SMTP + S/A suffixes
	std::string id;            // received-id
	std::string tls_comment;   // "(TLS1.2 TLS_ECDHE_...)" or empty
	std::string for_rcpt;      // recipient address, without brackets
	std::time_t when = 0;
	int tz_offset_s = 0;  // date's zone offset, e.g. local_utc_offset(when)
};
// "Received: from F (c) by B (c) via tcp with W id ID (tls) for <rcpt>; date\r\n"
std::string build_received(const ReceivedInfo&);

// "Return-Path: <addr>\r\n" (empty addr gives "<>").
std::string build_return_path(std::string_view address);

// The `with` protocol word: SMTP, ESMTP or UTF8SMTP, then "S" with TLS and
// "A" when authenticated (RFC 3848).
std::string received_with(bool ehlo, bool smtputf8, bool tls, bool authenticated);

}  // namespace tern::message
