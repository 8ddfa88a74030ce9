// The ASCII string helpers of util/strings.h.
#include <doctest/doctest.h>

#include <string>

#include "util/go_lower.h"
#include "util/strings.h"

TEST_CASE("ASCII string helpers") {
	CHECK(tern::ascii_lower("MiXeD Ü") == "mixed Ü");
	CHECK(tern::ascii_upper("mixed ü") == "MIXED ü");
	CHECK(tern::iequals("PostMaster", "postmaster"));
	CHECK_FALSE(tern::iequals("postmaster", "postmaste"));
	CHECK(tern::istarts_with("MAIL FROM:", "mail"));
	CHECK_FALSE(tern::istarts_with("MA", "mail"));
	CHECK(tern::iends_with("Host.EXAMPLE", ".example"));
	CHECK_FALSE(tern::iends_with("example", ".example"));
	CHECK(tern::trim(" \t a b \t") == "a b");
	CHECK(tern::trim(" \t ") == "");
	auto parts = tern::split("a,b,,c", ',');
	REQUIRE(parts.size() == 4);
	CHECK(parts[0] == "a");
	CHECK(parts[2] == "");
	CHECK(parts[3] == "c");
	CHECK(tern::split("", ',').size() == 1);
	CHECK(tern::is_ascii("plain text"));
	CHECK_FALSE(tern::is_ascii("bücher"));
}

TEST_CASE("split_address: at the last @, domain empty without one") {
	std::string lp, dom;
	tern::split_address("a@b@example.org", lp, dom);
	CHECK(lp == "a@b");
	CHECK(dom == "example.org");
	tern::split_address("postmaster", lp, dom);
	CHECK(lp == "postmaster");
	CHECK(dom == "");
}

TEST_CASE("ASCII character classes ignore bytes above 0x7f") {
	std::string digits, alpha, alnum, wsp;
	for (int b = 0; b < 256; ++b) {
		char c = static_cast<char>(b);
		if (tern::is_ascii_digit(c)) digits += c;
		if (tern::is_ascii_alpha(c)) alpha += c;
		if (tern::is_ascii_alnum(c)) alnum += c;
		if (tern::is_wsp(c)) wsp += c;
	}
	CHECK(digits == "0123456789");
	CHECK(alpha == "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
	CHECK(alnum == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
	CHECK(wsp == "\t ");
}

TEST_CASE("canonical DNS names: lower case, no trailing dot") {
	CHECK(tern::canonical_dns_name("MX.Example.ORG.") == "mx.example.org");
	CHECK(tern::canonical_dns_name("mx.example.org") == "mx.example.org");
	CHECK(tern::canonical_dns_name("mx.example.org..") == "mx.example.org.");
	CHECK(tern::canonical_dns_name(".") == "");
	CHECK(tern::canonical_dns_name("") == "");
	CHECK(tern::canonical_dns_name("B\xc3\x9c"
	                               "CHER.example") ==
	      "b\xc3\x9c"
	      "cher.example");  // UTF-8 untouched
}

TEST_CASE("strings: append_escaped_text shows control bytes and bytes that are no UTF-8 as \\xNN") {
	std::string out;
	using namespace std::string_view_literals;
	tern::append_escaped_text(out, "550 \x1b[2J\x07 gr\xc3\xbc\xc3\x9f \xff\x00 \"q\" a\\b"sv, "\"\\");
	CHECK(out == "550 \\x1b[2J\\x07 gr\xc3\xbc\xc3\x9f \\xff\\x00 \\\"q\\\" a\\\\b");
	out.clear();
	tern::append_escaped_text(out, std::string_view("tab\there\x7f", 9));
	CHECK(out == "tab\\x09here\\x7f");
}

TEST_CASE("strings: control characters are C0 and DEL, bytes and code points alike") {
	int controls = 0;
	for (int b = 0; b < 256; ++b) controls += tern::is_ascii_control(static_cast<unsigned char>(b)) ? 1 : 0;
	CHECK(controls == 33);
	CHECK(tern::is_ascii_control(U'\x7f'));
	CHECK_FALSE(tern::is_ascii_control(U'\x200b'));  // a code point whose low byte is VT
	CHECK(tern::has_ascii_control(std::string_view("a\0b", 3)));
	CHECK(tern::has_ascii_control("name\r\nX-Evil: 1"));
	CHECK_FALSE(tern::has_ascii_control("caf\xc3\xa9 \xff"));
	CHECK_FALSE(tern::has_ascii_control(""));
}

TEST_CASE("strings: to_crlf makes every bare LF and bare CR a CRLF, as the ports store them") {
	CHECK(tern::to_crlf("a\nb\r\nc\rd\r\r\ne\n\rf\r") == "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n\r\nf\r\n");
	CHECK(tern::to_crlf("") == "");
	CHECK(tern::to_crlf("no line end") == "no line end");
}

TEST_CASE("strings: utf8_char_start steps back out of a UTF-8 sequence, never past the end") {
	const std::string s = "a\xC3\xA4z";  // a, U+00E4 (two bytes), z
	CHECK(tern::utf8_char_start(s, 0) == 0);
	CHECK(tern::utf8_char_start(s, 1) == 1);
	CHECK(tern::utf8_char_start(s, 2) == 1);  // inside the sequence
	CHECK(tern::utf8_char_start(s, 3) == 3);
	CHECK(tern::utf8_char_start(s, 4) == 4);
	CHECK(tern::utf8_char_start(s, 99) == 4);
	CHECK(tern::utf8_char_start("\x80\x80", 1) == 0);
}

TEST_CASE("go_lower: each code point by its simple lower-case mapping, as Go's strings.ToLower") {
	CHECK(tern::go_lower("Alice.B-C_9") == "alice.b-c_9");
	CHECK(tern::go_lower("ÄRGER") == "ärger");
	CHECK(tern::go_lower("JÖRG") == "jörg");
	CHECK(tern::go_lower("ΣΊΣΥΦΟΣ") == "σίσυφοσ");  // no final-sigma rule: one code point at a time
	CHECK(tern::go_lower("İ") == "i");              // the simple mapping, not SpecialCasing's i + U+0307
	CHECK(tern::go_lower("ǅ") == "ǆ");              // a title-case letter
	CHECK(tern::go_lower("Ⱥ") == "ⱥ");              // two bytes become three
	CHECK(tern::go_lower("ПРИВЕТ") == "привет");
	CHECK(tern::go_lower("ß日本") == "ß日本");  // no lower case of its own
	// Split literals: "\xffB" would be one (out of range) hex escape.
	CHECK(tern::go_lower(std::string("A\xff"
	                                 "B\xc3",
	                                 4)) ==
	      std::string("a\xff"
	                  "b\xc3",
	                  4));
	CHECK(tern::go_lower("") == "");
}
