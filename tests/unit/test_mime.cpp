// MIME reading for the junk filter and the report parsers.
#include <doctest/doctest.h>

#include <vector>

#include "message/mime.h"

using namespace tern::message;

namespace {

std::vector<MimePart> parts_of(std::string_view msg, MimeLimits limits = {}) {
	std::vector<MimePart> out;
	walk_mime(
	    msg, [&](const MimePart& p) { out.push_back(p); }, limits);
	return out;
}

}  // namespace

TEST_CASE("mime: content type and parameters") {
	ContentType ct = parse_content_type("Multipart/Mixed; boundary=\"a b\\\"c\"; Charset=UTF-8 ; x=y");
	CHECK(ct.mime_type() == "multipart/mixed");
	CHECK(ct.param("boundary") == "a b\"c");
	CHECK(ct.param("charset") == "UTF-8");
	CHECK(ct.param("x") == "y");
	CHECK(ct.param("none") == "");
	CHECK(parse_content_type("garbage").mime_type() == "text/plain");
}

TEST_CASE("mime: a plain message is one text part") {
	auto parts = parts_of("Subject: x\r\n\r\nhello\r\n");
	REQUIRE(parts.size() == 1);
	CHECK(parts[0].content_type.mime_type() == "text/plain");
	CHECK(parts[0].body == "hello\r\n");
}

TEST_CASE("mime: multipart with transfer encodings, nested parts and a file name") {
	std::string msg =
	    "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
	    "preamble\r\n"
	    "--outer\r\n"
	    "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
	    "--inner\r\n"
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "caf=E9 au=\r\n lait\r\n"
	    "--inner\r\n"
	    "Content-Type: text/html\r\n\r\n"
	    "<p>hi</p>\r\n"
	    "--inner--\r\n"
	    "--outer\r\n"
	    "Content-Type: application/gzip; name=report.xml.gz\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "aGVs\r\nbG8=\r\n"
	    "--outer--\r\n"
	    "epilogue\r\n";
	auto parts = parts_of(msg);
	REQUIRE(parts.size() == 3);
	CHECK(parts[0].content_type.param("charset") == "iso-8859-1");
	CHECK(parts[0].body == "caf\xe9 au lait");
	CHECK(to_utf8(parts[0].body, "ISO-8859-1") == "caf\xc3\xa9 au lait");
	CHECK(parts[1].body == "<p>hi</p>");
	CHECK(parts[2].content_type.mime_type() == "application/gzip");
	CHECK(parts[2].filename == "report.xml.gz");
	CHECK(parts[2].body == "hello");
}

TEST_CASE("mime: limits and broken input do not stop the walk") {
	std::string msg;
	for (int i = 0; i < 20; ++i) msg += "Content-Type: message/rfc822\r\n\r\n";
	msg += "Subject: deep\r\n\r\nbody\r\n";
	auto parts = parts_of(msg, MimeLimits{4, 100});
	CHECK(parts.size() == 1);  // the walk stops descending, the rest is one part
	std::string many = "Content-Type: multipart/mixed; boundary=z\r\n\r\n";
	for (int i = 0; i < 50; ++i) many += "--z\r\n\r\npart\r\n";
	many += "--z--\r\n";
	CHECK(parts_of(many, MimeLimits{8, 10}).size() == 10);
	CHECK(parts_of("Content-Type: multipart/mixed\r\n\r\nno boundary\r\n").size() == 1);
	CHECK(parts_of("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nunterminated").size() == 1);
}

TEST_CASE("mime: quoted-printable and base64 are lenient") {
	CHECK(decode_quoted_printable("a=3Db=\r\nc=ZZd=") == "a=bc=ZZd");
	CHECK(decode_quoted_printable("soft=  \nbreak") == "softbreak");
	CHECK(decode_base64_lenient("aGVs bG8h\r\n") == "hello!");
	CHECK(decode_base64_lenient("a$GVsbG8=junk") == "hello");
}

TEST_CASE("mime: encode_words makes short B words, cut between UTF-8 sequences, that decode back") {
	CHECK(encode_words("\xc3\xa9l\xc3\xa9") == "=?UTF-8?B?w6lsw6k=?=");
	CHECK(encode_words("") == "");
	// 30 two-byte letters and a four-byte one: 64 bytes, two words.
	std::string name;
	for (int i = 0; i < 30; ++i) name += "\xc3\xa9";
	name += "\xf0\x9f\x98\x80";
	const std::string encoded = encode_words(name);
	const size_t fold = encoded.find("\r\n ");
	REQUIRE(fold != std::string::npos);
	CHECK(encoded.find("\r\n ", fold + 1) == std::string::npos);
	CHECK(fold <= 68);
	CHECK(encoded.size() - fold - 3 <= 68);
	// Each word decodes alone to whole characters: none is cut in two.
	CHECK(decode_encoded_words(encoded.substr(0, fold)) == name.substr(0, 42));
	CHECK(decode_encoded_words(encoded) == name);
}

TEST_CASE("mime: RFC 2047 encoded words") {
	CHECK(decode_encoded_words("=?ISO-8859-1?Q?Andr=E9?= Pirard") == "Andr\xc3\xa9 Pirard");
	CHECK(decode_encoded_words("=?UTF-8?B?w6lsw6k=?=") == "\xc3\xa9l\xc3\xa9");
	// RFC 2047 8 examples: space between adjacent encoded words is dropped.
	CHECK(decode_encoded_words("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)") == "(ab)");
	CHECK(decode_encoded_words("(=?ISO-8859-1?Q?a?= b)") == "(a b)");
	CHECK(decode_encoded_words("(=?ISO-8859-1?Q?a_b?=)") == "(a b)");
	CHECK(decode_encoded_words("plain =?bogus") == "plain =?bogus");
	CHECK(decode_encoded_words("=?unknown-charset?Q?x?=") == "x");
	// Starts of words that never close, then ones that do.
	CHECK(decode_encoded_words("=?a=?utf-8?q?x?=") == "=?ax");
	CHECK(decode_encoded_words("=?a?q?x =?utf-8?q?y?=") == "x =?utf-8?q?y");
	CHECK(decode_encoded_words("=?x?q?a?= =?x?q=?x?q?b?=") == "a =?x?qb");
}

TEST_CASE("mime: encoded words in a long value are decoded in one pass") {
	// 4 MiB of word starts without an end, then a word: each start used to
	// scan to the end for "?=", hours of CPU for a value of this size.
	std::string value;
	while (value.size() < 4 * 1024 * 1024) value += "=?a";
	value += " =?utf-8?q?end?=";
	std::string decoded = decode_encoded_words(value);
	CHECK(decoded.size() == value.size() - std::string(" =?utf-8?q?end?=").size() + 4);
	CHECK(decoded.substr(decoded.size() - 4) == " end");
}

TEST_CASE("mime: charset conversion of a text larger than the conversion buffer, invalid bytes dropped") {
	// ISO-8859-1: every byte is one character of two UTF-8 bytes above 0x7f,
	// so the output crosses many buffer boundaries.
	std::string latin1, expected;
	for (int i = 0; i < 100000; ++i) {
		unsigned char c = static_cast<unsigned char>(i % 256);
		if (c == 0) continue;
		latin1 += static_cast<char>(c);
		if (c < 0x80) {
			expected += static_cast<char>(c);
		} else {
			expected += static_cast<char>(0xc0 | (c >> 6));
			expected += static_cast<char>(0x80 | (c & 0x3f));
		}
	}
	CHECK(to_utf8(latin1, "iso-8859-1") == expected);
	// Shift_JIS: an invalid lead byte is dropped wherever it falls.
	std::string sjis, want;
	for (int i = 0; i < 20000; ++i) {
		sjis += "\x82\xa0";  // HIRAGANA LETTER A
		want += "\xe3\x81\x82";
		if (i % 7001 == 0) sjis += "\xff";
	}
	CHECK(to_utf8(sjis, "Shift_JIS") == want);
	CHECK(to_utf8("", "iso-8859-1").empty());
}
