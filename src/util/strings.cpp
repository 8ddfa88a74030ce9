// Small ASCII string helpers (see strings.h). Only the bytes A-Z/a-z are ever
// case-mapped, so UTF-8 sequences pass through untouched and byte offsets
// into a converted copy stay aligned with the original.
#include "util/strings.h"

#include <algorithm>

#include "util/hex.h"

namespace tern {

namespace {

char lower_byte(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

char upper_byte(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - ('a' - 'A')) : c; }

}  // namespace

std::string ascii_lower(std::string_view s) {
	std::string out(s);
	for (char& c : out) c = lower_byte(c);
	return out;
}

std::string canonical_dns_name(std::string_view name) {
	if (!name.empty() && name.back() == '.') name.remove_suffix(1);
	return ascii_lower(name);
}

std::string ascii_upper(std::string_view s) {
	std::string out(s);
	for (char& c : out) c = upper_byte(c);
	return out;
}

bool iequals(std::string_view a, std::string_view b) {
	if (a.size() != b.size()) return false;
	for (size_t i = 0; i < a.size(); i++)
		if (lower_byte(a[i]) != lower_byte(b[i])) return false;
	return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
	return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool iends_with(std::string_view s, std::string_view suffix) {
	return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string_view trim(std::string_view s) {
	auto is_blank = [](char c) { return c == ' ' || c == '\t'; };
	while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
	while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
	return s;
}

// Like Go's strings.Split: n separators give n+1 parts, "" gives {""}.
std::vector<std::string_view> split(std::string_view s, char sep) {
	std::vector<std::string_view> parts;
	size_t start = 0;
	for (;;) {
		size_t pos = s.find(sep, start);
		if (pos == std::string_view::npos) {
			parts.push_back(s.substr(start));
			return parts;
		}
		parts.push_back(s.substr(start, pos - start));
		start = pos + 1;
	}
}

bool is_ascii(std::string_view s) {
	for (unsigned char c : s)
		if (c > 0x7f) return false;
	return true;
}

std::string to_crlf(std::string_view text) {
	std::string out;
	out.reserve(text.size() + text.size() / 16);
	for (size_t i = 0; i < text.size(); ++i) {
		const char c = text[i];
		if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;  // the LF writes the pair
		if (c == '\n' || c == '\r')
			out += "\r\n";
		else
			out += c;
	}
	return out;
}

void split_address(std::string_view address, std::string& localpart, std::string& domain) {
	size_t at = address.rfind('@');
	if (at == std::string_view::npos) {
		localpart = std::string(address);
		domain.clear();
		return;
	}
	localpart = std::string(address.substr(0, at));
	domain = std::string(address.substr(at + 1));
}

Utf8Rune decode_utf8(std::string_view s) {
	const auto b0 = static_cast<unsigned char>(s[0]);
	if (b0 < 0x80) return {b0, 1, true};
	size_t len = 0;
	char32_t cp = 0;
	char32_t min = 0;
	if ((b0 & 0xe0) == 0xc0) {
		len = 2, cp = b0 & 0x1f, min = 0x80;
	} else if ((b0 & 0xf0) == 0xe0) {
		len = 3, cp = b0 & 0x0f, min = 0x800;
	} else if ((b0 & 0xf8) == 0xf0) {
		len = 4, cp = b0 & 0x07, min = 0x10000;
	} else {
		return {0xfffd, 1, false};
	}
	if (s.size() < len) return {0xfffd, 1, false};
	for (size_t i = 1; i < len; i++) {
		const auto b = static_cast<unsigned char>(s[i]);
		if ((b & 0xc0) != 0x80) return {0xfffd, 1, false};
		cp = (cp << 6) | (b & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {0xfffd, 1, false};
	return {cp, len, true};
}

void append_utf8(std::string& out, char32_t cp) {
	if (cp < 0x80) {
		out += static_cast<char>(cp);
	} else if (cp < 0x800) {
		out += static_cast<char>(0xc0 | (cp >> 6));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out += static_cast<char>(0xe0 | (cp >> 12));
		out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	} else {
		out += static_cast<char>(0xf0 | (cp >> 18));
		out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
		out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	}
}

size_t utf8_char_start(std::string_view s, size_t i) {
	i = std::min(i, s.size());
	while (i > 0 && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80) --i;
	return i;
}

bool valid_utf8(std::string_view s) {
	while (!s.empty()) {
		const Utf8Rune r = decode_utf8(s);
		if (!r.valid) return false;
		s.remove_prefix(r.len);
	}
	return true;
}

bool has_ascii_control(std::string_view s) {
	for (char c : s)
		if (is_ascii_control(static_cast<unsigned char>(c))) return true;
	return false;
}

void append_escaped_text(std::string& out, std::string_view text, std::string_view backslashed) {
	while (!text.empty()) {
		const auto c = static_cast<unsigned char>(text[0]);
		const Utf8Rune r = decode_utf8(text);
		if (backslashed.find(static_cast<char>(c)) != std::string_view::npos) {
			out += '\\';
			out += static_cast<char>(c);
		} else if (is_ascii_control(c) || !r.valid) {
			out += "\\x";
			append_hex_byte(out, c);
		} else if (is_hidden_control(r.cp)) {
			for (char byte : text.substr(0, r.len)) {
				out += "\\x";
				append_hex_byte(out, static_cast<unsigned char>(byte));
			}
		} else {
			out.append(text.substr(0, r.len));
		}
		text.remove_prefix(r.len);  // 1 for a byte that is no sequence
	}
}

}  // namespace tern
