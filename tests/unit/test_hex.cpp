// Hex digits (util/hex.h): any case for the control protocol, chunk sizes
// and DSN parameters; upper case only for RFC 3461 xtext.
#include <doctest/doctest.h>

#include "util/hex.h"

using tern::hex_digit_value;
using tern::hex_lower;
using tern::upper_hex_digit_value;

TEST_CASE("hex: digits and their values") {
	const std::string digits = "0123456789abcdef";
	for (int v = 0; v < 16; v++) {
		char lower = digits[static_cast<size_t>(v)];
		char upper = static_cast<char>(lower >= 'a' ? lower - 'a' + 'A' : lower);
		CHECK(hex_digit_value(lower) == v);
		CHECK(hex_digit_value(upper) == v);
		CHECK(upper_hex_digit_value(upper) == v);
		CHECK(upper_hex_digit_value(lower) == (v < 10 ? v : -1));
	}
	for (char c : std::string("gG/:@`\0 \xff", 10)) {
		CHECK(hex_digit_value(c) == -1);
		CHECK(upper_hex_digit_value(c) == -1);
	}
	CHECK(hex_lower("\x01\xab") == "01ab");
}

TEST_CASE("hex: a byte, a number of digits, and how many digits a value takes") {
	using tern::HexCase;
	std::string out;
	tern::append_hex_byte(out, 0x0a);
	tern::append_hex_byte(out, 0xfe, HexCase::upper);
	CHECK(out == "0aFE");
	out.clear();
	tern::append_hex_digits(out, 0x200b, 4);
	tern::append_hex_digits(out, 0xe0001, 8);
	tern::append_hex_digits(out, 0xab, 1);  // the low digit only: a nibble label
	CHECK(out == "200b000e0001b");
	CHECK(tern::hex_digit_count(0) == 1);
	CHECK(tern::hex_digit_count(0xf) == 1);
	CHECK(tern::hex_digit_count(0x10) == 2);
	CHECK(tern::hex_digit_count(0x10ffff) == 6);
	CHECK(tern::hex_digit_count(0xffffffff) == 8);
}
