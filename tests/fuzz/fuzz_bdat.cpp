// Fuzzes BDAT (RFC 3030): the argument parser and the decoder in chunked
// framing. Checks:
//  - parse_bdat returns a value or refuses with 501 5.5.4, and what it
//    accepts parses again to the same value from its canonical form;
//  - the chunked decoder's output does not depend on where the chunks and
//    the reads inside them are cut (a CR ending one piece and an LF starting
//    the next is one CRLF);
//  - it is transparent: a message with only CRLF line ends that ends in CRLF
//    (or is empty) comes out unchanged, dots and "CRLF . CRLF" included;
//  - in normalize mode the output has only CRLF line ends, and after
//    finish() it is empty or ends with CRLF; size() counts the output.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "smtp/chunk_reader.h"
#include "smtp/data_decoder.h"
#include "smtp/parser.h"
#include "smtp/reply.h"

using namespace tern;

namespace {

struct Decoded {
	std::string out;
	bool bare = false;
	bool separator = false;
	bool eight_bit = false;
	uint64_t size = 0;
};

// Cuts `stream` into chunks and each chunk into reads, with lengths taken
// from `splits` (cycled; empty: one chunk, one read), the way the session
// feeds a ChunkReader's octets to the decoder.
Decoded decode(std::string_view stream, smtp::BareNewlines mode, const std::vector<size_t>& splits) {
	smtp::DataDecoder decoder(mode, smtp::Framing::chunked);
	smtp::ChunkReader chunk;
	Decoded d;
	size_t pos = 0, split_index = 0;
	auto next_split = [&](size_t whole) { return splits.empty() ? whole : splits[split_index++ % splits.size()]; };
	do {
		size_t chunk_size = std::min(next_split(stream.size()) * 3, stream.size() - pos);
		chunk.start(chunk_size, pos + chunk_size == stream.size());
		while (!chunk.complete()) {
			size_t n = chunk.take(next_split(chunk_size));
			FUZZ_CHECK(decoder.feed(stream.substr(pos, n), d.out) == n);
			pos += n;
		}
	} while (pos < stream.size());
	FUZZ_CHECK(chunk.last());
	decoder.finish(d.out);
	FUZZ_CHECK(decoder.done());
	d.bare = decoder.saw_bare_newline();
	d.separator = decoder.has_header_separator();
	d.eight_bit = decoder.saw_8bit();
	d.size = decoder.size();
	return d;
}

// Both listener kinds: what submission accepts, port 25 accepts the same.
void check_parser(std::string_view args) {
	smtp::ParseMode submission;
	submission.submission = true;
	for (const smtp::ParseMode& mode : {smtp::ParseMode{}, submission}) {
		smtp::Result<smtp::BdatArgs> b = smtp::parse_bdat(args, mode);
		if (!b.ok()) {
			FUZZ_CHECK(b.error().code == 501 && b.error().secode == "5.4");
			continue;
		}
		smtp::Result<smtp::BdatArgs> again = smtp::parse_bdat(
		    " " + std::to_string(b->size) + (b->last ? " LAST" : ""), mode);
		FUZZ_CHECK(again.ok() && again->size == b->size && again->last == b->last);
		if (mode.submission) {
			smtp::Result<smtp::BdatArgs> port25 = smtp::parse_bdat(args, {});
			FUZZ_CHECK(port25.ok() && port25->size == b->size && port25->last == b->last);
		}
	}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 2) return 0;
	// Byte 0: mode; byte 1: how many split lengths follow (bytes 2..).
	smtp::BareNewlines mode = (data[0] & 1) ? smtp::BareNewlines::reject : smtp::BareNewlines::normalize;
	size_t split_count = std::min<size_t>(data[1] % 8, size - 2);
	std::vector<size_t> splits;
	for (size_t i = 0; i < split_count; i++)
		splits.push_back(size_t(data[2 + i] % 17) + 1);  // 1..17 octets per read
	std::string_view stream(reinterpret_cast<const char*>(data + 2 + split_count), size - 2 - split_count);

	check_parser(stream.substr(0, stream.find('\n')));

	Decoded whole = decode(stream, mode, {});
	Decoded split = decode(stream, mode, splits);
	Decoded bytewise = decode(stream, mode, {1});
	for (const Decoded* other : {&split, &bytewise}) {
		FUZZ_CHECK(other->out == whole.out);
		FUZZ_CHECK(other->bare == whole.bare);
		FUZZ_CHECK(other->separator == whole.separator);
		FUZZ_CHECK(other->eight_bit == whole.eight_bit);
	}
	FUZZ_CHECK(whole.size == whole.out.size());
	FUZZ_CHECK(whole.bare == fuzz::has_bare_newline(stream));
	if (!whole.bare && (stream.empty() || stream.ends_with("\r\n"))) FUZZ_CHECK(whole.out == stream);
	if (mode == smtp::BareNewlines::normalize) FUZZ_CHECK(!fuzz::has_bare_newline(whole.out));
	FUZZ_CHECK(whole.out.empty() || whole.out.ends_with("\r\n"));
	return 0;
}
