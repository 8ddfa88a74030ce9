// The client side of SMTP and LMTP: reading the server's replies and
// dot-stuffing a body sent in chunks. Pure, no I/O; used by the queue's
// SMTP client and the LMTP client.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace tern::smtp {

// One complete (possibly multi-line) SMTP reply (RFC 5321 4.2).
struct Reply {
	int code = 0;                    // 3 digits
	std::string enhanced;            // "x.y.z" when the first line carries one (RFC 3463), else ""
	std::vector<std::string> lines;  // text after "ddd-" / "ddd ", enhanced code included
	// The text for error messages: every line's, each without its leading
	// enhanced code, joined by spaces (a refusal's later lines often say
	// why), cut with "..." at max_text_bytes.
	std::string text() const;
	static constexpr size_t max_text_bytes = 1000;
	// "550 5.1.1 no such user" style one-line summary.
	std::string summary() const;
};

// The code a reply line starts with (RFC 5321 4.2): three digits, then the
// line's end, a space or a hyphen; -1 when the line is not shaped so.
int reply_line_code(std::string_view line);
// RFC 5321 4.2.1: the first digit says success (2, 3), a temporary (4) or a
// permanent (5) failure; 1 is not used in SMTP or LMTP. Any other code is
// from a server that does not speak the protocol.
constexpr bool reply_code_in_range(int code) { return code >= 200 && code <= 599; }

// Accumulates reply lines. feed_line takes one line without CRLF and returns
// true once the reply is complete (a "ddd " or bare "ddd" line). A line that
// is not "ddd[- ]..." with a code of 200-599, whose code differs from the
// first line's, or that makes the reply longer than the limits below makes
// error() non-empty.
class ReplyParser {
public:
	// RFC 5321 sets no limit on a multi-line reply; without one a server
	// could send continuation lines until the command's timeout, all of
	// them kept. A real EHLO reply has a few dozen short lines.
	static constexpr size_t max_reply_lines = 1000;
	static constexpr size_t max_reply_bytes = 64 * 1024;  // line texts with their line ends

	bool feed_line(std::string_view line);
	const std::string& error() const { return error_; }
	// Takes the finished reply and resets for the next one.
	Reply take();

private:
	Reply current_;
	size_t current_bytes_ = 0;
	std::string error_;
};

// Dot-stuffing (RFC 5321 4.5.2) of a body delivered in chunks of any size:
// a "." at the start of a line gets another "." before it. The stored
// message has CRLF line ends only; a line start is the byte after LF.
class DotStuffer {
public:
	// Appends the stuffed form of `chunk` to `out`.
	void feed(std::string_view chunk, std::string& out);
	// Appends the end of data: CRLF first when the body did not end with
	// one, then ".\r\n".
	void finish(std::string& out);

private:
	bool at_line_start_ = true;
	bool last_was_cr_ = false;
	bool ended_with_crlf_ = true;  // an empty body needs no extra CRLF
};

}  // namespace tern::smtp
