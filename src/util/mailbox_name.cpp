#include "util/mailbox_name.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "util/strings.h"

namespace tern {

namespace {

constexpr std::string_view utf7_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

bool printable_ascii(char32_t c) { return c >= 0x20 && c <= 0x7e; }

int utf7_digit(char c) {
	size_t at = utf7_alphabet.find(c);
	return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// One shifted run: the code points as UTF-16 big-endian, in base64.
void append_shifted(std::string& out, const std::vector<char32_t>& run) {
	std::string units;
	auto unit = [&units](char32_t u) {
		units += static_cast<char>(u >> 8);
		units += static_cast<char>(u & 0xff);
	};
	for (char32_t c : run) {
		if (c < 0x10000) {
			unit(c);
			continue;
		}
		c -= 0x10000;  // RFC 2781 2.1: a surrogate pair
		unit(0xd800 + (c >> 10));
		unit(0xdc00 + (c & 0x3ff));
	}
	out += '&';
	uint32_t bits = 0;
	int nbits = 0;
	for (unsigned char b : units) {
		bits = (bits << 8) | b;
		nbits += 8;
		while (nbits >= 6) {
			nbits -= 6;
			out += utf7_alphabet[(bits >> nbits) & 0x3f];
		}
	}
	if (nbits > 0) out += utf7_alphabet[(bits << (6 - nbits)) & 0x3f];
	out += '-';
}

// The UTF-16 units of one shifted run (between "&" and "-"), as UTF-8.
std::optional<std::string> decode_shifted(std::string_view digits) {
	std::vector<char16_t> units;
	uint32_t bits = 0;
	int nbits = 0;
	for (char c : digits) {
		int d = utf7_digit(c);
		if (d < 0) return std::nullopt;
		bits = (bits << 6) | static_cast<uint32_t>(d);
		nbits += 6;
		if (nbits >= 16) {
			nbits -= 16;
			units.push_back(static_cast<char16_t>((bits >> nbits) & 0xffff));
		}
	}
	// RFC 3501 5.1.3: the base64 ends on a unit boundary, padded with zero bits.
	if (nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0 || units.empty()) return std::nullopt;
	std::string out;
	for (size_t i = 0; i < units.size(); ++i) {
		char32_t u = units[i];
		if (u >= 0xdc00 && u <= 0xdfff) return std::nullopt;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (i + 1 == units.size() || units[i + 1] < 0xdc00 || units[i + 1] > 0xdfff)
				return std::nullopt;
			u = 0x10000 + ((u - 0xd800) << 10) + (units[++i] - 0xdc00);
		} else if (printable_ascii(u)) {
			return std::nullopt;  // printable ASCII is never shifted
		}
		append_utf8(out, u);
	}
	return out;
}

}  // namespace

bool valid_mailbox_name(std::string_view name) {
	return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
	    !has_ascii_control(name);
}

std::string mailbox_to_utf7(std::string_view utf8) {
	std::string out;
	std::vector<char32_t> run;
	while (!utf8.empty()) {
		Utf8Rune r = decode_utf8(utf8);
		utf8.remove_prefix(r.len);
		if (!printable_ascii(r.cp)) {
			run.push_back(r.cp);
			continue;
		}
		if (!run.empty()) append_shifted(out, std::exchange(run, {}));
		out += static_cast<char>(r.cp);
		if (r.cp == '&') out += '-';
	}
	if (!run.empty()) append_shifted(out, run);
	return out;
}

std::optional<std::string> mailbox_from_utf7(std::string_view utf7) {
	std::string out;
	while (!utf7.empty()) {
		char c = utf7.front();
		if (!printable_ascii(static_cast<unsigned char>(c))) return std::nullopt;
		if (c != '&') {
			out += c;
			utf7.remove_prefix(1);
			continue;
		}
		size_t end = utf7.find('-');
		if (end == std::string_view::npos) return std::nullopt;
		if (end == 1) {
			out += '&';
		} else {
			std::optional<std::string> text = decode_shifted(utf7.substr(1, end - 1));
			if (!text) return std::nullopt;
			out += *text;
		}
		utf7.remove_prefix(end + 1);
	}
	return out;
}

}  // namespace tern
