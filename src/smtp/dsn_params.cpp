#include "smtp/dsn_params.h"

#include "util/hex.h"
#include "util/strings.h"

namespace tern::smtp {

namespace {

// RFC 3461 4: xchar without "+" and "=".
bool is_xchar(unsigned char c) { return c >= 0x21 && c <= 0x7e && c != '+' && c != '='; }

// Length of the well-formed UTF-8 sequence (2 to 4 octets) at `s[i]`, 0
// when there is none.
size_t utf8_sequence(std::string_view s, size_t i) {
	const auto c = static_cast<unsigned char>(s[i]);
	size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (n == 0 || i + n > s.size()) return 0;
	uint32_t cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
	for (size_t k = 1; k < n; k++) {
		const auto cc = static_cast<unsigned char>(s[i + k]);
		if ((cc & 0xc0) != 0x80) return 0;
		cp = (cp << 6) | (cc & 0x3f);
	}
	// Overlong forms, surrogates and code points past U+10FFFF.
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

}  // namespace

bool dsn_wanted(int notify, DsnEvent event) {
	if (notify & notify_never) return false;
	switch (event) {
	case DsnEvent::success: return (notify & notify_success) != 0;
	case DsnEvent::failure: return notify == 0 || (notify & notify_failure) != 0;
	case DsnEvent::delay: return notify == 0 || (notify & notify_delay) != 0;
	}
	return false;
}

std::optional<std::string> xtext_decode(std::string_view xtext) {
	std::string out;
	for (size_t i = 0; i < xtext.size(); i++) {
		const auto c = static_cast<unsigned char>(xtext[i]);
		if (is_xchar(c)) {
			out += static_cast<char>(c);
			continue;
		}
		if (c != '+' || i + 2 >= xtext.size()) return std::nullopt;
		const int hi = upper_hex_digit_value(xtext[i + 1]), lo = upper_hex_digit_value(xtext[i + 2]);
		if (hi < 0 || lo < 0) return std::nullopt;
		out += static_cast<char>(hi * 16 + lo);
		i += 2;
	}
	return out;
}

std::string xtext_encode(std::string_view text) {
	std::string out;
	for (char ch : text) {
		const auto c = static_cast<unsigned char>(ch);
		if (is_xchar(c)) {
			out += ch;
			continue;
		}
		out += '+';
		append_hex_byte(out, c, HexCase::upper);
	}
	return out;
}

std::optional<uint8_t> parse_notify(std::string_view value) {
	if (iequals(value, "NEVER")) return notify_never;
	uint8_t bits = 0;
	while (true) {
		const size_t comma = value.find(',');
		const std::string_view word = value.substr(0, comma);
		uint8_t bit = iequals(word, "SUCCESS") ? notify_success
		    : iequals(word, "FAILURE")         ? notify_failure
		    : iequals(word, "DELAY")           ? notify_delay
						       : 0;
		// RFC 3461 4.1: NEVER stands alone; each other keyword once.
		if (bit == 0 || (bits & bit)) return std::nullopt;
		bits |= bit;
		if (comma == std::string_view::npos) return bits;
		value.remove_prefix(comma + 1);
	}
}

std::string notify_to_string(uint8_t notify) {
	if (notify & notify_never) return "NEVER";
	std::string out;
	for (auto [bit, name] : {std::pair{notify_success, "SUCCESS"}, std::pair{notify_failure, "FAILURE"},
	                         std::pair{notify_delay, "DELAY"}})
		if (notify & bit) out += (out.empty() ? "" : ",") + std::string(name);
	return out;
}

std::optional<DsnRet> parse_ret(std::string_view value) {
	if (iequals(value, "FULL")) return DsnRet::full;
	if (iequals(value, "HDRS")) return DsnRet::hdrs;
	return std::nullopt;
}

std::string ret_to_string(DsnRet ret) { return ret == DsnRet::full ? "FULL" : ret == DsnRet::hdrs ? "HDRS" : ""; }

std::optional<std::string> parse_envid(std::string_view value) {
	// RFC 3461 4.4: at most 100 characters, printable ASCII once decoded.
	if (value.empty() || value.size() > 100) return std::nullopt;
	auto decoded = xtext_decode(value);
	if (!decoded) return std::nullopt;
	for (char c : *decoded)
		if (c < 0x20 || c > 0x7e) return std::nullopt;
	return decoded;
}

std::optional<OriginalRecipient> parse_orcpt(std::string_view value, bool smtputf8) {
	// RFC 3461 4.2: at most 500 characters.
	if (value.size() > 500) return std::nullopt;
	const size_t semi = value.find(';');
	if (semi == 0 || semi == std::string_view::npos || semi + 1 == value.size()) return std::nullopt;
	OriginalRecipient r;
	r.type = ascii_lower(value.substr(0, semi));
	// RFC 5322 3.2.3 atom: atext only.
	for (char c : r.type)
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos))
			return std::nullopt;
	const std::string_view rest = value.substr(semi + 1);
	if (r.type != "utf-8") {
		auto decoded = xtext_decode(rest);
		// An address holds no control characters (RFC 5321 4.1.2; RFC
		// 6531 3.3 for UTF-8): decoded from xtext, CR LF would start a
		// new field of the notice it is copied into.
		if (!decoded || has_ascii_control(*decoded)) return std::nullopt;
		r.address = std::move(*decoded);
		return r;
	}
	// RFC 6533 3: utf-8-addr-xtext / utf-8-addr-unitext.
	for (size_t i = 0; i < rest.size();) {
		const auto c = static_cast<unsigned char>(rest[i]);
		if (c == '\\' && rest.substr(i, 3) == "\\x{") {
			const size_t close = rest.find('}', i + 3);
			if (close == std::string_view::npos || close == i + 3 || close - (i + 3) > 6)
				return std::nullopt;
			uint32_t cp = 0;
			for (size_t k = i + 3; k < close; k++) {
				const int d = hex_digit_value(rest[k]);
				if (d < 0) return std::nullopt;
				cp = cp * 16 + static_cast<uint32_t>(d);
			}
			if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
			append_utf8(r.address, cp);
			i = close + 1;
			continue;
		}
		if (is_xchar(c)) {
			r.address += static_cast<char>(c);
			i++;
			continue;
		}
		const size_t n = smtputf8 && c >= 0x80 ? utf8_sequence(rest, i) : 0;
		if (n == 0) return std::nullopt;
		r.address.append(rest.substr(i, n));
		i += n;
	}
	if (has_ascii_control(r.address)) return std::nullopt;
	return r;
}

std::string orcpt_to_stored(const OriginalRecipient& r) { return r.type + ";" + r.address; }

std::optional<OriginalRecipient> orcpt_from_stored(std::string_view stored) {
	const size_t semi = stored.find(';');
	if (semi == std::string_view::npos || semi == 0) return std::nullopt;
	return OriginalRecipient{std::string(stored.substr(0, semi)), std::string(stored.substr(semi + 1))};
}

std::string utf8_addr_xtext(std::string_view utf8) {
	std::string out;
	auto embed = [&](uint32_t cp) {
		out += "\\x{";
		append_hex_digits(out, cp, hex_digit_count(cp), HexCase::upper);
		out += '}';
	};
	for (size_t i = 0; i < utf8.size();) {
		const auto c = static_cast<unsigned char>(utf8[i]);
		if (c < 0x80) {
			if (is_xchar(c) && c != '\\')
				out += static_cast<char>(c);
			else
				embed(c);
			i++;
			continue;
		}
		const size_t n = utf8_sequence(utf8, i);
		if (n == 0) {
			embed(0xfffd);  // not UTF-8: the replacement character stands for it
			i++;
			continue;
		}
		uint32_t cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
		for (size_t k = 1; k < n; k++) cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3f);
		embed(cp);
		i += n;
	}
	return out;
}

std::string orcpt_to_param(const OriginalRecipient& r) {
	if (r.type == "utf-8") return "utf-8;" + utf8_addr_xtext(r.address);
	return r.type + ";" + xtext_encode(r.address);
}

}  // namespace tern::smtp
