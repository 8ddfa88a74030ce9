#include "util/hex.h"

namespace tern {

void append_hex_digits(std::string& out, uint64_t value, int digits, HexCase letters) {
	const char* alphabet = letters == HexCase::upper ? "0123456789ABCDEF" : "0123456789abcdef";
	for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) out.push_back(alphabet[(value >> shift) & 0xf]);
}

void append_hex_byte(std::string& out, unsigned char byte, HexCase letters) {
	append_hex_digits(out, byte, 2, letters);
}

int hex_digit_count(uint64_t value) {
	int digits = 1;
	while (value >>= 4) digits++;
	return digits;
}

std::string hex_lower(std::string_view bytes) {
	std::string out;
	out.reserve(bytes.size() * 2);
	for (unsigned char c : bytes) append_hex_byte(out, c);
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
