// DataDecoder: end of data, dot-unstuffing, bare CR/LF (no SMTP smuggling).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "smtp/data_decoder.h"

using tern::smtp::BareNewlines;
using tern::smtp::DataDecoder;

namespace {

struct Decoded {
	std::string out;
	size_t consumed = 0;
	bool done = false;
	bool bare = false;
	bool separator = false;
	bool eight_bit = false;
	uint64_t size = 0;

	bool operator==(const Decoded&) const = default;
};

// Feeds `in` in pieces of at most `step` bytes (0: all at once), the way the
// session does: stop feeding once the decoder is done.
Decoded decode(std::string_view in, size_t step = 0, BareNewlines mode = BareNewlines::normalize) {
	DataDecoder d(mode);
	Decoded r;
	size_t pos = 0;
	while (pos < in.size() && !d.done()) {
		size_t len = step == 0 ? in.size() - pos : std::min(step, in.size() - pos);
		size_t used = d.feed(in.substr(pos, len), r.out);
		REQUIRE(used <= len);
		if (!d.done()) REQUIRE(used == len);  // everything is consumed until the end is found
		pos += used;
	}
	r.consumed = pos;
	r.done = d.done();
	r.bare = d.saw_bare_newline();
	r.separator = d.has_header_separator();
	r.eight_bit = d.saw_8bit();
	r.size = d.size();
	return r;
}

// Decodes whole, byte by byte, and split at every position into two feeds;
// all must agree. Returns the whole-input result.
Decoded decode_all_ways(std::string_view in, BareNewlines mode = BareNewlines::normalize) {
	Decoded whole = decode(in, 0, mode);
	CHECK(decode(in, 1, mode) == whole);
	CHECK(decode(in, 2, mode) == whole);
	CHECK(decode(in, 3, mode) == whole);
	for (size_t cut = 1; cut < in.size(); ++cut) {
		DataDecoder d(mode);
		Decoded r;
		size_t used = d.feed(in.substr(0, cut), r.out);
		size_t pos = used;
		if (!d.done()) pos += d.feed(in.substr(cut), r.out);
		r.consumed = pos;
		r.done = d.done();
		r.bare = d.saw_bare_newline();
		r.separator = d.has_header_separator();
		r.eight_bit = d.saw_8bit();
		r.size = d.size();
		CHECK_MESSAGE(r == whole, "split at " << cut);
	}
	CHECK(whole.size == whole.out.size());
	return whole;
}

}  // namespace

TEST_CASE("data: empty message is just the terminator") {
	Decoded r = decode_all_ways(".\r\n");
	CHECK(r.done);
	CHECK(r.out == "");
	CHECK(r.consumed == 3);
	CHECK(r.size == 0);
	CHECK_FALSE(r.separator);
	CHECK_FALSE(r.bare);
}

TEST_CASE("data: simple message with header and body") {
	Decoded r = decode_all_ways("Subject: hi\r\n\r\nbody\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.out == "Subject: hi\r\n\r\nbody\r\n");
	CHECK(r.consumed == 24);
	CHECK(r.size == 21);
	CHECK(r.separator);
	CHECK_FALSE(r.bare);
	CHECK_FALSE(r.eight_bit);
}

TEST_CASE("data: header only has no separator") {
	Decoded r = decode_all_ways("Subject: hi\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.out == "Subject: hi\r\n");
	CHECK_FALSE(r.separator);
}

TEST_CASE("data: message starting with an empty line has a separator") {
	Decoded r = decode_all_ways("\r\nbody only\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.out == "\r\nbody only\r\n");
	CHECK(r.separator);
}

TEST_CASE("data: no terminator means not done and everything consumed") {
	Decoded r = decode_all_ways("Subject: x\r\n\r\nbody\r\n");
	CHECK_FALSE(r.done);
	CHECK(r.consumed == 20);
	CHECK(r.out == "Subject: x\r\n\r\nbody\r\n");
	Decoded r2 = decode_all_ways("a\r\n.\r");
	CHECK_FALSE(r2.done);
	CHECK(r2.out == "a\r\n");
}

TEST_CASE("data: pipelined bytes after the end are left untouched") {
	std::string in = "hello\r\n.\r\nQUIT\r\n";
	DataDecoder d;
	std::string out;
	size_t used = d.feed(in, out);
	CHECK(d.done());
	CHECK(used == 10);
	CHECK(in.substr(used) == "QUIT\r\n");
	CHECK(out == "hello\r\n");
	// Feeding after the end consumes nothing.
	CHECK(d.feed("MAIL FROM:<>\r\n", out) == 0);
	CHECK(out == "hello\r\n");

	Decoded r = decode_all_ways("x\r\n.\r\nRSET\r\n.\r\n");
	CHECK(r.consumed == 6);
	CHECK(r.out == "x\r\n");
}

TEST_CASE("data: dot-unstuffing at line starts after CRLF") {
	// RFC 5321 4.5.2
	CHECK(decode_all_ways("..\r\n.\r\n").out == ".\r\n");
	CHECK(decode_all_ways("a\r\n..\r\n.\r\n").out == "a\r\n.\r\n");
	CHECK(decode_all_ways("a\r\n.x\r\n.\r\n").out == "a\r\nx\r\n");
	CHECK(decode_all_ways("a\r\n...\r\n.\r\n").out == "a\r\n..\r\n");
	CHECK(decode_all_ways(".x\r\n.\r\n").out == "x\r\n");
	// A dot that is not at a line start stays.
	CHECK(decode_all_ways("a.b\r\nc.\r\n.\r\n").out == "a.b\r\nc.\r\n");
	Decoded r = decode_all_ways("..\r\n.\r\n");
	CHECK(r.done);
	CHECK_FALSE(r.bare);
	CHECK(r.size == 3);
}

TEST_CASE("data: LF.LF does not end data") {
	Decoded r = decode_all_ways("a\n.\nb\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.bare);
	// The dot after a bare LF is not after a raw CRLF: kept.
	CHECK(r.out == "a\r\n.\r\nb\r\n");
	CHECK(r.consumed == 10);
}

TEST_CASE("data: LF.CRLF does not end data") {
	Decoded r = decode_all_ways("a\n.\r\nb\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.bare);
	CHECK(r.out == "a\r\n.\r\nb\r\n");
}

TEST_CASE("data: CRLF.LF does not end data, dot still unstuffed") {
	Decoded r = decode_all_ways("a\r\n.\nb\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.bare);
	CHECK(r.out == "a\r\n\r\nb\r\n");
	CHECK(r.separator);
}

TEST_CASE("data: CR.CR does not end data") {
	Decoded r = decode_all_ways("a\r.\rb\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.bare);
	CHECK(r.out == "a\r\n.\r\nb\r\n");
	Decoded r2 = decode_all_ways("a\r.\r\nb\r\n.\r\n");
	CHECK(r2.done);
	CHECK(r2.out == "a\r\n.\r\nb\r\n");
}

TEST_CASE("data: CRLF.CR followed by another byte does not end data") {
	Decoded r = decode_all_ways("a\r\n.\rX\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.bare);
	CHECK(r.out == "a\r\n\r\nX\r\n");
	// CRLF . CR CR LF: the first CR is bare, then a real CRLF.
	Decoded r2 = decode_all_ways("a\r\n.\r\r\n.\r\n");
	CHECK(r2.done);
	CHECK(r2.bare);
	CHECK(r2.out == "a\r\n\r\n\r\n");
	CHECK(r2.consumed == 10);
}

TEST_CASE("data: smuggled command after a fake terminator stays in the message") {
	std::string in =
	    "Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"
	    "evil\r\n.\r\nQUIT\r\n";
	Decoded r = decode_all_ways(in);
	CHECK(r.done);
	CHECK(r.bare);
	CHECK(
	    r.out ==
	    "Subject: a\r\n\r\nbody\r\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nevil\r\n");
	CHECK(in.substr(r.consumed) == "QUIT\r\n");
}

TEST_CASE("data: bare LF and bare CR are stored as CRLF") {
	Decoded r = decode_all_ways("a\nb\rc\r\n.\r\n");
	CHECK(r.done);
	CHECK(r.bare);
	CHECK(r.out == "a\r\nb\r\nc\r\n");
	CHECK(r.size == 9);
	// CR CR LF: bare CR, then CRLF.
	Decoded r2 = decode_all_ways("a\r\r\n.\r\n");
	CHECK(r2.out == "a\r\n\r\n");
	CHECK(r2.separator);
	// LF LF: two bare LFs make an empty line, i.e. a header separator.
	Decoded r3 = decode_all_ways("H: v\n\nbody\r\n.\r\n");
	CHECK(r3.out == "H: v\r\n\r\nbody\r\n");
	CHECK(r3.separator);
	// Output contains no bare CR or LF.
	for (size_t k = 0; k < r.out.size(); ++k) {
		if (r.out[k] == '\r') CHECK(r.out[k + 1] == '\n');
		if (r.out[k] == '\n') CHECK(r.out[k - 1] == '\r');
	}
}

TEST_CASE("data: reject mode consumes to the end and flags bare newlines") {
	Decoded r = decode_all_ways("a\nb\r\n.\r\nNOOP\r\n", BareNewlines::reject);
	CHECK(r.done);
	CHECK(r.bare);
	CHECK(r.consumed == 8);
	Decoded clean = decode_all_ways("a\r\nb\r\n.\r\n", BareNewlines::reject);
	CHECK(clean.done);
	CHECK_FALSE(clean.bare);
	CHECK(clean.out == "a\r\nb\r\n");
	// A bare CR at the very end (before the terminator) counts too.
	Decoded r2 = decode_all_ways("a\r\r\n.\r\n", BareNewlines::reject);
	CHECK(r2.done);
	CHECK(r2.bare);
}

TEST_CASE("data: 8-bit bytes are detected") {
	Decoded r = decode_all_ways("Subject: caf\xc3\xa9\r\n\r\nx\r\n.\r\n");
	CHECK(r.eight_bit);
	CHECK(r.out == "Subject: caf\xc3\xa9\r\n\r\nx\r\n");
	CHECK_FALSE(decode_all_ways("plain\x7f\r\n.\r\n").eight_bit);
}

TEST_CASE("data: NUL bytes and long lines pass through") {
	std::string in("a\0b", 3);
	in += std::string(5000, 'x');
	in += "\r\n.\r\n";
	Decoded r = decode(in, 0);
	CHECK(r.done);
	CHECK(r.out.size() == 5005);
	CHECK(r.out.substr(0, 3) == std::string("a\0b", 3));
	CHECK(decode(in, 1) == r);
	CHECK(decode(in, 7) == r);
}

TEST_CASE("data: whole-line copying agrees with byte-by-byte decoding on random input") {
	// Fed whole, plain lines are copied in runs; fed a byte at a time, every
	// byte goes through the state machine. Inputs from an alphabet rich in
	// dots, CRs and LFs (and 8-bit bytes) must decode the same either way,
	// in both framings' worth of line shapes and both bare-newline modes.
	const char alphabet[] = {'.', '\r', '\n', 'a', 'b', '\x80', '\r', '\n'};
	uint32_t seed = 12345;
	auto next = [&seed] {
		seed = seed * 1103515245u + 12345u;
		return (seed >> 16) & 0x7fff;
	};
	for (int round = 0; round < 3000; ++round) {
		std::string in;
		size_t len = next() % 40;
		for (size_t i = 0; i < len; ++i) in += alphabet[next() % sizeof alphabet];
		if (next() % 2) in += "\r\n.\r\n";
		BareNewlines mode = next() % 2 ? BareNewlines::normalize : BareNewlines::reject;
		Decoded whole = decode(in, 0, mode);
		CHECK_MESSAGE(decode(in, 1, mode) == whole, "round " << round);
		CHECK_MESSAGE(decode(in, 5, mode) == whole, "round " << round);
		CHECK(whole.size == whole.out.size());
		// BDAT: every byte is content, the end comes from finish().
		auto chunked = [&](size_t step) {
			tern::smtp::DataDecoder d(mode, tern::smtp::Framing::chunked);
			std::string out;
			for (size_t pos = 0; pos < in.size(); pos += step)
				d.feed(std::string_view(in).substr(pos, step), out);
			d.finish(out);
			return out + (d.saw_bare_newline() ? "|bare" : "") + (d.has_header_separator() ? "|sep" : "") +
			    (d.saw_8bit() ? "|8bit" : "") + "|" + std::to_string(d.size());
		};
		CHECK_MESSAGE(chunked(1) == chunked(in.size() + 1), "round " << round);
	}
}

TEST_CASE("data: a long message of plain lines is copied as it is") {
	std::string body;
	for (int i = 0; i < 2000; ++i) body += "line " + std::to_string(i) + " of plain text\r\n";
	std::string in = "Subject: x\r\n\r\n" + body + "..stuffed\r\n" + body + ".\r\n";
	Decoded r = decode(in, 0);
	CHECK(r.done);
	CHECK(r.separator);
	CHECK_FALSE(r.bare);
	CHECK_FALSE(r.eight_bit);
	CHECK(r.out == "Subject: x\r\n\r\n" + body + ".stuffed\r\n" + body);
	CHECK(decode(in, 4096) == r);
}
