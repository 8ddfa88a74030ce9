// Base64 codecs (RFC 4648 test vectors, section 10).
#include <doctest/doctest.h>

#include <string>

#include "util/base64.h"

using tern::base64_decode;
using tern::base64_encode;
using tern::base64url_decode_nopad;
using tern::base64url_encode_nopad;

TEST_CASE("base64: RFC 4648 section 10 vectors") {
	CHECK(base64_encode("") == "");
	CHECK(base64_encode("f") == "Zg==");
	CHECK(base64_encode("fo") == "Zm8=");
	CHECK(base64_encode("foo") == "Zm9v");
	CHECK(base64_encode("foob") == "Zm9vYg==");
	CHECK(base64_encode("fooba") == "Zm9vYmE=");
	CHECK(base64_encode("foobar") == "Zm9vYmFy");
	CHECK(base64_decode("") == std::string());
	CHECK(base64_decode("Zg==") == std::string("f"));
	CHECK(base64_decode("Zm8=") == std::string("fo"));
	CHECK(base64_decode("Zm9v") == std::string("foo"));
	CHECK(base64_decode("Zm9vYg==") == std::string("foob"));
	CHECK(base64_decode("Zm9vYmE=") == std::string("fooba"));
	CHECK(base64_decode("Zm9vYmFy") == std::string("foobar"));
}

TEST_CASE("base64: AUTH PLAIN style payload with NULs and high bytes") {
	std::string plain("\0user\0p\xc3\xa4ss", 11);
	CHECK(base64_encode(plain) == "AHVzZXIAcMOkc3M=");
	CHECK(base64_decode("AHVzZXIAcMOkc3M=") == plain);
	std::string all;
	for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
	CHECK(base64_decode(base64_encode(all)) == all);
	CHECK(base64_encode("\xff\xfe\xfd") == "//79");
}

TEST_CASE("base64: strict decoding rejects bad input") {
	CHECK_FALSE(base64_decode("Zg").has_value());  // padding required
	CHECK_FALSE(base64_decode("Zg=").has_value());
	CHECK_FALSE(base64_decode("Zm9").has_value());
	CHECK_FALSE(base64_decode("Zm9v ").has_value());  // no whitespace
	CHECK_FALSE(base64_decode("Zm9v\r\n").has_value());
	CHECK_FALSE(base64_decode("Zm 9").has_value());
	CHECK_FALSE(base64_decode("Zm9*").has_value());  // bad char
	CHECK_FALSE(base64_decode("Zm-_").has_value());  // url alphabet
	CHECK_FALSE(base64_decode("Z===").has_value());
	CHECK_FALSE(base64_decode("====").has_value());
	CHECK_FALSE(base64_decode("Zg==Zg==").has_value());  // padding in the middle
	CHECK_FALSE(base64_decode("Z=g=").has_value());
	CHECK_FALSE(base64_decode("=").has_value());
	CHECK_FALSE(base64_decode("*").has_value());
}

TEST_CASE("base64: the offset of a refusal is counted as the model's decoder counts it") {
	// Go's StdEncoding: a quantum cut short fails at its start, a bad byte
	// where it is, a lone "=" of "==" at the end of the text, bytes after
	// the padding where they start.
	const std::pair<const char*, size_t> cases[] = {
	    {"Zg", 0},   {"Zg=", 3},  {"Zm9", 0},      {"Zm9v ", 4},     {"Zm9v\r\n", 4}, {"Zm 9", 2},    {"Zm9*", 3},
	    {"Zm-_", 2}, {"Z===", 1}, {"A===", 1},     {"====", 0},      {"Zg==Zg==", 4}, {"Z=g=", 1},    {"=", 0},
	    {"*", 0},    {"!!", 0},   {"Zm9vYg=x", 6}, {"Zm9vYmE=x", 8}, {"Zm9vY", 4},    {"Zm9vYmF", 4},
	};
	for (const auto& [text, offset] : cases) {
		INFO(text);
		size_t at = 999;
		CHECK_FALSE(base64_decode(text, &at).has_value());
		CHECK(at == offset);
	}
	size_t untouched = 999;
	CHECK(base64_decode("Zm9vYg==", &untouched) == std::string("foob"));
	CHECK(untouched == 999);
}

TEST_CASE("base64: with Newlines::skip, CR and LF anywhere are passed over, as the model's decoder does") {
	using tern::Newlines;
	auto skip = [](std::string_view text, size_t* at = nullptr) { return base64_decode(text, at, Newlines::skip); };
	CHECK(skip("Zm9v\r\n") == std::string("foo"));
	CHECK(skip("Zm\r9v") == std::string("foo"));
	CHECK(skip("\nZm9vYg=\r\n=") == std::string("foob"));  // even between the two "="
	CHECK(skip("Zm9vYmE=\r") == std::string("fooba"));
	CHECK(skip("\r\n") == std::string());
	CHECK(skip("") == std::string());
	// The offsets count the skipped bytes as Go's does.
	const std::pair<const char*, size_t> cases[] = {
	    {"Zm9\r", 1},    // cut short: the position less the three it holds
	    {"Zm\r*v", 3},   // the bad byte where it is
	    {"Zg=\r\n", 5},  // a lone "=" at the end
	    {"Zg=\rx", 3},   // not the second "=": the byte before it
	    {"Zm9vYg==\rx", 9},
	};
	for (const auto& [text, offset] : cases) {
		INFO(text);
		size_t at = 999;
		CHECK_FALSE(skip(text, &at).has_value());
		CHECK(at == offset);
	}
	// Without it they are refused as before.
	CHECK_FALSE(base64_decode("Zm\r9v").has_value());
}

TEST_CASE("base64url: no padding, url alphabet") {
	CHECK(base64url_encode_nopad("") == "");
	CHECK(base64url_encode_nopad("f") == "Zg");
	CHECK(base64url_encode_nopad("fo") == "Zm8");
	CHECK(base64url_encode_nopad("foo") == "Zm9v");
	CHECK(base64url_encode_nopad("\xff\xfe\xfd") == "__79");
	CHECK(base64url_encode_nopad("\xfb\xef") == "--8");
	CHECK(base64url_encode_nopad(std::string(16, '\0')).size() == 22);
	CHECK(base64url_decode_nopad("Zg") == std::string("f"));
	CHECK(base64url_decode_nopad("__79") == std::string("\xff\xfe\xfd"));
	CHECK(base64url_decode_nopad("--8") == std::string("\xfb\xef"));
	CHECK_FALSE(base64url_decode_nopad("Zg==").has_value());
	CHECK_FALSE(base64url_decode_nopad("Z").has_value());
	CHECK_FALSE(base64url_decode_nopad("ab+/").has_value());
}
