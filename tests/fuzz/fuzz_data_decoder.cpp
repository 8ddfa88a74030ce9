// Fuzzes the DATA decoder (smtp/data_decoder.h) with random splits of the
// input over feed() calls and checks its invariants:
//  - the data ends exactly at the first raw CRLF "." CRLF (counting the CRLF
//    of the DATA command before the stream, RFC 5321 4.1.1.4), never earlier
//    or later, and done() is false when there is none;
//  - the output is the same whatever the split;
//  - in normalize mode the output has only CRLF line ends (no bare CR/LF);
//  - size() counts the output bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "smtp/data_decoder.h"

using namespace tern;

namespace {

struct Decoded {
	std::string out;
	size_t consumed = 0;
	bool done = false;
	bool bare = false;
	bool separator = false;
	bool eight_bit = false;
	uint64_t size = 0;
};

// Feeds `stream` in pieces whose lengths come from `splits` (cycled).
Decoded decode(std::string_view stream, smtp::BareNewlines mode, const std::vector<size_t>& splits) {
	smtp::DataDecoder decoder(mode);
	Decoded d;
	size_t split_index = 0;
	while (d.consumed < stream.size() && !decoder.done()) {
		size_t want = splits.empty() ? stream.size() : splits[split_index++ % splits.size()];
		std::string_view piece = stream.substr(d.consumed, want);
		size_t used = decoder.feed(piece, d.out);
		FUZZ_CHECK(used <= piece.size());
		// Fewer bytes than offered only when the end was found.
		FUZZ_CHECK(used == piece.size() || decoder.done());
		d.consumed += used;
	}
	d.done = decoder.done();
	d.bare = decoder.saw_bare_newline();
	d.separator = decoder.has_header_separator();
	d.eight_bit = decoder.saw_8bit();
	d.size = decoder.size();
	return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 2) return 0;
	// Byte 0: mode; byte 1: how many split lengths follow (bytes 2..).
	smtp::BareNewlines mode = (data[0] & 1) ? smtp::BareNewlines::reject : smtp::BareNewlines::normalize;
	size_t split_count = std::min<size_t>(data[1] % 8, size - 2);
	std::vector<size_t> splits;
	for (size_t i = 0; i < split_count; i++)
		splits.push_back(size_t(data[2 + i] % 17) + 1);  // 1..17 bytes per feed
	std::string_view stream(reinterpret_cast<const char*>(data + 2 + split_count), size - 2 - split_count);

	Decoded whole = decode(stream, mode, {});
	Decoded split = decode(stream, mode, splits);
	Decoded bytewise = decode(stream, mode, {1});

	// Where the raw end marker is: the DATA command's CRLF precedes the stream.
	std::string with_command_crlf = "\r\n" + std::string(stream);
	size_t marker = with_command_crlf.find("\r\n.\r\n");
	if (marker == std::string::npos) {
		FUZZ_CHECK(!whole.done);
		FUZZ_CHECK(whole.consumed == stream.size());
	} else {
		FUZZ_CHECK(whole.done);
		// marker + 5 in with_command_crlf is marker + 3 in stream.
		FUZZ_CHECK(whole.consumed == marker + 3);
	}

	for (const Decoded* other : {&split, &bytewise}) {
		FUZZ_CHECK(other->done == whole.done);
		FUZZ_CHECK(other->consumed == whole.consumed);
		FUZZ_CHECK(other->out == whole.out);
		FUZZ_CHECK(other->bare == whole.bare);
		FUZZ_CHECK(other->separator == whole.separator);
		FUZZ_CHECK(other->eight_bit == whole.eight_bit);
	}
	FUZZ_CHECK(whole.size == whole.out.size());
	if (mode == smtp::BareNewlines::normalize) FUZZ_CHECK(!fuzz::has_bare_newline(whole.out));
	// Output never grows beyond twice the input (a bare CR/LF becomes CRLF).
	FUZZ_CHECK(whole.out.size() <= 2 * whole.consumed);
	// A finished message ends with a line end (or is empty).
	if (whole.done && mode == smtp::BareNewlines::normalize && !whole.out.empty())
		FUZZ_CHECK(whole.out.size() >= 2 && whole.out.compare(whole.out.size() - 2, 2, "\r\n") == 0);
	return 0;
}
