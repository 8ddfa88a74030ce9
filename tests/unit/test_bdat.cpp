// BDAT (RFC 3030): the argument parser, the chunk reader, and the decoder in
// chunked framing (no dot-stuffing, bare CR/LF across chunk boundaries).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "smtp/chunk_reader.h"
#include "smtp/data_decoder.h"
#include "smtp/parser.h"

using namespace tern::smtp;

namespace {

// Port 25's parsing unless told.
std::string bdat_error(std::string_view args, const ParseMode& mode = {}) {
	Result<BdatArgs> r = parse_bdat(args, mode);
	if (r.ok()) return "no error";
	const SmtpError& e = r.error();
	return std::to_string(e.code) + " " + enhanced_code(e.code, e.secode) + " " + e.text;
}

template <class T>
T value_of(Result<T> r) {
	if (!r.ok()) FAIL("refused: " << r.error().code << " " << r.error().text);
	return std::move(*r);
}

struct Chunked {
	std::string out;
	bool bare = false;
	bool separator = false;
	bool eight_bit = false;
	uint64_t size = 0;
};

// Feeds each chunk in pieces of at most `step` octets, as reads deliver them,
// then finishes the message.
Chunked decode_chunks(const std::vector<std::string>& chunks, size_t step = 1000,
                      BareNewlines mode = BareNewlines::normalize) {
	DataDecoder d(mode, Framing::chunked);
	Chunked r;
	for (const auto& chunk : chunks) {
		for (size_t pos = 0; pos < chunk.size(); pos += step) {
			std::string_view piece = std::string_view(chunk).substr(pos, step);
			CHECK(d.feed(piece, r.out) == piece.size());
			CHECK_FALSE(d.done());
		}
	}
	d.finish(r.out);
	CHECK(d.done());
	r.bare = d.saw_bare_newline();
	r.separator = d.has_header_separator();
	r.eight_bit = d.saw_8bit();
	r.size = d.size();
	CHECK(r.size == r.out.size());
	return r;
}

}  // namespace

TEST_CASE("bdat args: size, optional LAST in any case, trailing blanks") {
	BdatArgs b = value_of(parse_bdat(" 100", {}));
	CHECK(b.size == 100);
	CHECK_FALSE(b.last);
	b = value_of(parse_bdat(" 0 LAST", {}));
	CHECK(b.size == 0);
	CHECK(b.last);
	CHECK(value_of(parse_bdat(" 7 last", {})).last);
	CHECK(value_of(parse_bdat(" 7 LaSt \t", {})).last);
	CHECK(value_of(parse_bdat(" 007", {})).size == 7);
	CHECK(value_of(parse_bdat(" 18446744073709551615", {})).size == 18446744073709551615ULL);
}

TEST_CASE("bdat args: on submission nothing may follow, as for every command") {
	ParseMode submission;
	submission.submission = true;
	CHECK(value_of(parse_bdat(" 7 LAST", submission)).last);
	CHECK(bdat_error(" 100 ", submission) == "501 5.5.4 invalid BDAT parameter: \" \"");
	CHECK(bdat_error(" 7 LAST\t", submission) == "501 5.5.4 invalid BDAT parameter: \" LAST\\t\"");
}

TEST_CASE("bdat args: anything but digits and LAST is 501 5.5.4") {
	CHECK(bdat_error("") == "501 5.5.4 invalid BDAT chunk size: missing");
	CHECK(bdat_error(" ") == "501 5.5.4 invalid BDAT chunk size: missing");
	CHECK(bdat_error(" abc") == "501 5.5.4 invalid BDAT chunk size: \"abc\"");
	CHECK(bdat_error(" -5") == "501 5.5.4 invalid BDAT chunk size: \"-5\"");
	CHECK(bdat_error(" +5") == "501 5.5.4 invalid BDAT chunk size: \"+5\"");
	CHECK(bdat_error(" 18446744073709551616") == "501 5.5.4 invalid BDAT chunk size: too large");
	CHECK(bdat_error(" 99999999999999999999999") == "501 5.5.4 invalid BDAT chunk size: too large");
	CHECK(bdat_error(" 10 LASTX") == "501 5.5.4 invalid BDAT parameter: \" LASTX\"");
	CHECK(bdat_error(" 10 FIRST") == "501 5.5.4 invalid BDAT parameter: \" FIRST\"");
	CHECK(bdat_error(" 10  LAST") == "501 5.5.4 invalid BDAT parameter: \"  LAST\"");
	CHECK(bdat_error(" 10x") == "501 5.5.4 invalid BDAT parameter: \"x\"");
	CHECK(bdat_error(" 10 LAST LAST") == "501 5.5.4 invalid BDAT parameter: \" LAST LAST\"");
	CHECK(bdat_error("10") == "501 5.5.4 invalid BDAT chunk size: missing");
}

TEST_CASE("chunk reader: takes exactly the announced octets over many reads") {
	ChunkReader r;
	r.start(10, false);
	CHECK_FALSE(r.complete());
	CHECK(r.take(4) == 4);
	CHECK(r.left() == 6);
	CHECK(r.take(0) == 0);
	CHECK(r.take(100) == 6);  // the rest of the buffer is the next command
	CHECK(r.complete());
	CHECK(r.take(5) == 0);
	CHECK(r.size() == 10);
	CHECK_FALSE(r.last());

	r.start(0, true);
	CHECK(r.complete());
	CHECK(r.last());
	CHECK(r.take(3) == 0);

	// Sizes beyond what a size_t read can hold never truncate.
	r.start(UINT64_MAX, false);
	CHECK(r.take(4096) == 4096);
	CHECK(r.left() == UINT64_MAX - 4096);
}

TEST_CASE("chunked decoding: dots and the DATA terminator are plain content") {
	std::string msg = "Subject: x\r\n\r\n.leading dot\r\n.\r\nafter\r\n";
	for (size_t step : {1, 3, 1000}) {
		Chunked r = decode_chunks({msg}, step);
		CHECK(r.out == msg);
		CHECK_FALSE(r.bare);
		CHECK(r.separator);
	}
	// Split over chunks anywhere, the result is the same.
	for (size_t cut = 0; cut <= msg.size(); ++cut) {
		Chunked r = decode_chunks({msg.substr(0, cut), msg.substr(cut)});
		CHECK(r.out == msg);
		CHECK_FALSE(r.bare);
	}
}

TEST_CASE("chunked decoding: CR at a chunk's end and LF at the next chunk's start is one CRLF") {
	Chunked r = decode_chunks({"a: b\r", "\nbody\r", "\n"});
	CHECK(r.out == "a: b\r\nbody\r\n");
	CHECK_FALSE(r.bare);
}

TEST_CASE("chunked decoding: bare CR and bare LF are normalized and flagged") {
	Chunked r = decode_chunks({"a: b\nc\rd\r\n"});
	CHECK(r.out == "a: b\r\nc\r\nd\r\n");
	CHECK(r.bare);
	// A CR at the very end of the message is bare too.
	r = decode_chunks({"a: b\r\nx\r"});
	CHECK(r.out == "a: b\r\nx\r\n");
	CHECK(r.bare);
	r = decode_chunks({"a: b\r\n", "x\n"}, 1, BareNewlines::reject);
	CHECK(r.out == "a: b\r\nx\r\n");
	CHECK(r.bare);
}

TEST_CASE("chunked decoding: a last line without CRLF gets one; empty stays empty") {
	Chunked r = decode_chunks({"a: b\r\n\r\nno newline"});
	CHECK(r.out == "a: b\r\n\r\nno newline\r\n");
	CHECK_FALSE(r.bare);
	CHECK(r.separator);
	r = decode_chunks({});
	CHECK(r.out.empty());
	CHECK(r.size == 0);
	r = decode_chunks({"", ""});
	CHECK(r.out.empty());
}

TEST_CASE("chunked decoding: 8-bit octets are seen") {
	Chunked r = decode_chunks({"a: b\r\n\r\n", "caf\xc3\xa9\r\n"});
	CHECK(r.eight_bit);
	CHECK(r.out == "a: b\r\n\r\ncaf\xc3\xa9\r\n");
}
