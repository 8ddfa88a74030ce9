#include "smtp/client_reply.h"

#include "util/strings.h"

namespace tern::smtp {

namespace {

// RFC 3463 2: class "." subject "." detail, 1-3 digits each after the class.
size_t enhanced_code_length(std::string_view text, char reply_class) {
	if (text.size() < 5 || text[0] != reply_class || text[1] != '.') return 0;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < text.size() && is_ascii_digit(text[i]) && i - start < 3) i++;
		if (i == start) return 0;
		if (part == 0) {
			if (i >= text.size() || text[i] != '.') return 0;
			i++;
		}
	}
	if (i < text.size() && text[i] != ' ') return 0;
	return i;
}

}  // namespace

std::string Reply::text() const {
	const char reply_class = static_cast<char>('0' + code / 100);
	std::string out;
	for (std::string_view line : lines) {
		// RFC 3463 2: each line of a reply may repeat the enhanced code.
		line.remove_prefix(enhanced_code_length(line, reply_class));
		line = trim(line);
		if (line.empty()) continue;
		if (!out.empty()) out += ' ';
		out.append(line);
		if (out.size() > max_text_bytes) break;
	}
	if (out.size() > max_text_bytes) {
		out.resize(utf8_char_start(out, max_text_bytes - 3));
		out += "...";
	}
	return out;
}

std::string Reply::summary() const {
	std::string s = std::to_string(code);
	if (!enhanced.empty()) s += " " + enhanced;
	std::string t = text();
	if (!t.empty()) s += " " + t;
	return s;
}

int reply_line_code(std::string_view line) {
	if (line.size() < 3 || !is_ascii_digit(line[0]) || !is_ascii_digit(line[1]) || !is_ascii_digit(line[2]) ||
	    (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

bool ReplyParser::feed_line(std::string_view line) {
	int code = reply_line_code(line);
	if (code < 0) {
		error_ = "malformed reply line";
		return true;
	}
	// A code outside 200-599 is a temporary failure to the caller, never a
	// bounce.
	if (!reply_code_in_range(code)) {
		error_ = "reply code outside 200-599";
		return true;
	}
	current_bytes_ += line.size() + 2;
	if (current_.lines.size() >= max_reply_lines || current_bytes_ > max_reply_bytes) {
		error_ = "reply too long";
		return true;
	}
	if (current_.lines.empty()) {
		current_.code = code;
	} else if (code != current_.code) {
		error_ = "reply lines with different codes";
		return true;
	}
	std::string text = line.size() > 4 ? std::string(line.substr(4)) : std::string();
	if (current_.lines.empty()) {
		size_t n = enhanced_code_length(text, line[0]);
		if (n) current_.enhanced = text.substr(0, n);
	}
	current_.lines.push_back(std::move(text));
	return line.size() == 3 || line[3] == ' ';
}

Reply ReplyParser::take() {
	Reply r = std::move(current_);
	current_ = Reply{};
	current_bytes_ = 0;
	error_.clear();
	return r;
}

void DotStuffer::feed(std::string_view chunk, std::string& out) {
	if (chunk.empty()) return;
	out.reserve(out.size() + chunk.size() + 16);
	for (char c : chunk) {
		if (at_line_start_ && c == '.') out.push_back('.');
		out.push_back(c);
		at_line_start_ = c == '\n';
		ended_with_crlf_ = c == '\n' && last_was_cr_;
		last_was_cr_ = c == '\r';
	}
}

void DotStuffer::finish(std::string& out) {
	if (!ended_with_crlf_) out += "\r\n";
	out += ".\r\n";
	at_line_start_ = true;
	last_was_cr_ = false;
	ended_with_crlf_ = true;
}

}  // namespace tern::smtp
