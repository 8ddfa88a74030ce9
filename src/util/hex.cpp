#include "util/hex.h"

namespace tern {

std::string hex_lower(std::string_view bytes) {
	static constexpr char digits[] = "0123456789abcdef";
	std::string out;
	out.reserve(bytes.size() * 2);
	for (unsigned char c : bytes) {
		out.push_back(digits[c >> 4]);
		out.push_back(digits[c & 0x0f]);
	}
	return out;
}

int upper_hex_digit_value(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int hex_digit_value(char c) {
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return upper_hex_digit_value(c);
}

}  // namespace tern
