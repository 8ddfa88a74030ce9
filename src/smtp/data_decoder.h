// Incremental DATA decoder (RFC 5321 4.1.1.4, 4.5.2): finds the end of data,
// removes dot-stuffing and handles bare CR / LF without SMTP smuggling
// (SEED-BEHAVIOUR.md decision 8). Pure: bytes in, message bytes out.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tern::smtp {

enum class BareNewlines { normalize, reject };

class DataDecoder {
public:
	explicit DataDecoder(BareNewlines mode = BareNewlines::normalize);

	// Decodes as much of `in` as belongs to the message, appending message
	// bytes to `out` (always CRLF line ends in normalize mode). Returns how
	// many input bytes were consumed: all of `in`, or fewer when the end
	// `<CRLF>.<CRLF>` was found (the bytes after it are pipelined commands).
	// Only CRLF "." CRLF in the raw stream ends the data; LF.LF, LF.CRLF,
	// CRLF.LF, CR.CR and the like never do. A dot that starts a line (after
	// CRLF) is removed.
	size_t feed(std::string_view in, std::string& out);

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
	// implementation state (see .cpp)
	BareNewlines mode_;
	int state_ = 0;
	bool done_ = false;
	bool bare_newline_ = false;
	bool header_separator_ = false;
	bool eight_bit_ = false;
	uint64_t size_ = 0;
	// bytes of the current line start needed to detect the CRLF CRLF separator
	int blank_state_ = 0;
};

}  // namespace tern::smtp
