// Incremental DATA decoder (RFC 5321 4.1.1.4, 4.5.2): finds the end of data,
// removes dot-stuffing and handles bare CR / LF without SMTP smuggling
// (doc/behaviour.md D8). Pure: bytes in, message bytes out.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tern::smtp {

enum class BareNewlines { normalize, reject };

// How the message is framed on the wire: DATA's dot-stuffing with the
// CRLF "." CRLF end (RFC 5321 4.1.1.4), or BDAT chunks of announced size
// (RFC 3030 2), where every octet is message content and the caller says
// where the message ends.
enum class Framing { dot_stuffed, chunked };

class DataDecoder {
public:
	explicit DataDecoder(BareNewlines mode = BareNewlines::normalize, Framing framing = Framing::dot_stuffed);

	// Decodes as much of `in` as belongs to the message, appending message
	// bytes to `out` (always CRLF line ends in normalize mode). Returns how
	// many input bytes were consumed: all of `in`, or fewer when the end
	// `<CRLF>.<CRLF>` was found (the bytes after it are pipelined commands).
	// Only CRLF "." CRLF in the raw stream ends the data; LF.LF, LF.CRLF,
	// CRLF.LF, CR.CR and the like never do. A dot that starts a line (after
	// CRLF) is removed.
	// With Framing::chunked all of `in` is content (no unstuffing, no end
	// marker), and a CR at the end of `in` waits for the next feed.
	size_t feed(std::string_view in, std::string& out);
	// Framing::chunked: the last chunk has been fed. A CR still pending is a
	// bare CR; a last line without its CRLF gets one (RFC 5322 2.1: lines
	// end with CRLF), so the stored message is the same as with DATA.
	void finish(std::string& out);

	bool done() const { return done_; }
	// A bare CR or LF was seen (with BareNewlines::reject the transaction fails).
	bool saw_bare_newline() const { return bare_newline_; }
	// The message has an empty line separating header and body (CRLF CRLF),
	// or starts with one.
	bool has_header_separator() const { return header_separator_; }
	bool saw_8bit() const { return eight_bit_; }
	// Decoded message bytes so far.
	uint64_t size() const { return size_; }

private:
	// Where we are in the raw input stream (see data_decoder.cpp).
	enum class State : uint8_t {
		line_start,         // just after a raw CRLF (also the initial state)
		line_start_dot,     // CRLF "." seen; the dot is dropped (unstuffed)
		line_start_dot_cr,  // CRLF "." CR seen; LF now ends the data
		in_line,            // inside a line, previous byte not CR
		in_line_cr,         // inside a line, a CR is pending
	};

	size_t copy_plain_lines(std::string_view in, size_t start, std::string& out);
	void emit_crlf(std::string& out);
	void emit_bytes(std::string_view bytes, std::string& out);

	BareNewlines mode_;
	Framing framing_;
	State state_ = State::line_start;
	bool done_ = false;
	bool bare_newline_ = false;
	bool header_separator_ = false;
	bool eight_bit_ = false;
	uint64_t size_ = 0;
	// The decoded output is at the start of an (so far) empty line; a CRLF
	// emitted now makes an empty line, i.e. the header/body separator.
	bool output_line_empty_ = true;
};

}  // namespace tern::smtp
