// Reply formatting (see reply.h and doc/behaviour.md §0).
#include "smtp/reply.h"

#include <cstddef>

namespace tern::smtp {

namespace {

// RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including CRLF.
constexpr size_t max_reply_line = 510;
// Do not look for a break before this column; cut hard instead.
constexpr size_t min_break_column = 400;

void append_line(std::string& out, int code, char separator, std::string_view ecode, std::string_view ecode_sep,
                 std::string_view text) {
	out += std::to_string(code);
	out += separator;
	out += ecode;
	out += ecode_sep;
	out += text;
	out += "\r\n";
}

}  // namespace

// RFC 3463 2: class.subject.detail; the class is the first digit of the reply code.
std::string enhanced_code(int code, std::string_view secode) {
	if (secode.empty()) return {};
	return std::to_string(code / 100) + "." + std::string(secode);
}

std::string format_reply(int code, std::string_view secode, std::string_view text) {
	const std::string ecode = enhanced_code(code, secode);
	// Without an enhanced code there is no space between the separator and the
	// text, e.g. "250-PIPELINING".
	const std::string_view ecode_sep = ecode.empty() ? "" : " ";
	const size_t prefix_len = 3 + 1 + ecode.size() + ecode_sep.size();

	std::string out;
	size_t start = 0;
	for (;;) {
		// RFC 5321 4.2.1: every line of a multi-line reply repeats the code;
		// all but the last use "-" after it.
		size_t newline = text.find('\n', start);
		const bool last = newline == std::string_view::npos;
		std::string_view line = last ? text.substr(start) : text.substr(start, newline - start);

		// Wrap over-long lines: break at a space found searching back from
		// the limit, but not before column 400; without such a space the cut
		// is at column 400. The space stays at the start of the next piece.
		while (prefix_len + line.size() > max_reply_line) {
			size_t cut = max_reply_line - prefix_len;
			while (cut > min_break_column && line[cut] != ' ') cut--;
			append_line(out, code, '-', ecode, ecode_sep, line.substr(0, cut));
			line.remove_prefix(cut);
		}
		append_line(out, code, last ? ' ' : '-', ecode, ecode_sep, line);
		if (last) break;
		start = newline + 1;
	}
	return out;
}

}  // namespace tern::smtp
