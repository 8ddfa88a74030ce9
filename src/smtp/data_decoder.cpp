// DATA decoder, see data_decoder.h.
//
// The decoder is a byte-wise state machine over the raw stream, so any split
// of the input over feed() calls gives the same result. Rules:
//  - RFC 5321 4.1.1.4: the data ends with CRLF "." CRLF. Only that exact raw
//    sequence ends it; sequences with a bare CR or LF around the dot never do
//    (no SMTP smuggling, doc/behaviour.md D8). The decoder starts in
//    the "just after CRLF" state, so ".\r\n" alone is an empty message.
//  - RFC 5321 4.5.2: a dot that starts a line (after a raw CRLF) is removed,
//    whatever ends that line (as the model and Postfix do).
//  - A bare CR (not followed by LF) or bare LF (not preceded by CR) is stored
//    as CRLF, so the stored message only has CRLF line ends (RFC 5322 2.3).
//    The flag saw_bare_newline() is set in both modes; with
//    BareNewlines::reject the session fails the transaction at the end, so
//    what we store then does not matter and is normalized the same way.
#include "smtp/data_decoder.h"

#include <cstring>

namespace tern::smtp {

namespace {

// Whether any byte of [p, p + len) has its high bit set (8-bit content),
// eight bytes at a time.
bool has_high_bit(const char* p, size_t len) {
	constexpr uint64_t high_bits = 0x8080808080808080ULL;
	uint64_t any = 0;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t word;
		std::memcpy(&word, p + i, 8);
		any |= word;
	}
	for (; i < len; ++i) any |= static_cast<unsigned char>(p[i]);
	return (any & high_bits) != 0;
}

// The length of the run of ordinary bytes (neither CR nor LF) at p.
size_t ordinary_run(const char* p, size_t len) {
	const void* cr = std::memchr(p, '\r', len);
	size_t run = cr ? static_cast<size_t>(static_cast<const char*>(cr) - p) : len;
	const void* lf = std::memchr(p, '\n', run);
	return lf ? static_cast<size_t>(static_cast<const char*>(lf) - p) : run;
}

}  // namespace

DataDecoder::DataDecoder(BareNewlines mode, Framing framing) : mode_(mode), framing_(framing) {}

void DataDecoder::emit_crlf(std::string& out) {
	// Output line ends are always emitted as a pair, so an empty output line
	// here means CRLF CRLF (or a message that starts with CRLF).
	if (output_line_empty_) header_separator_ = true;
	output_line_empty_ = true;
	out += "\r\n";
	size_ += 2;
}

void DataDecoder::emit_bytes(std::string_view bytes, std::string& out) {
	if (bytes.empty()) return;
	output_line_empty_ = false;
	out.append(bytes);
	size_ += bytes.size();
}

// The common case, whole lines at a time: from a line start, every complete
// line that ends in CRLF, holds no other CR or LF and (dot-stuffed) does not
// start with a dot decodes to itself, so the run of such lines is copied in
// one piece, found with memchr rather than byte by byte. Anything else is
// left to the state machine. Returns the end of the copied run.
size_t DataDecoder::copy_plain_lines(std::string_view in, size_t start, std::string& out) {
	const char* base = in.data();
	const size_t n = in.size();
	size_t pos = start;
	while (pos < n) {
		if (framing_ == Framing::dot_stuffed && base[pos] == '.') break;
		const void* lf = std::memchr(base + pos, '\n', n - pos);
		if (!lf) break;
		size_t end = static_cast<size_t>(static_cast<const char*>(lf) - base);  // the line's LF
		if (end == pos || base[end - 1] != '\r') break;                         // a bare LF
		if (std::memchr(base + pos, '\r', end - 1 - pos)) break;                // a bare CR
		// An empty line right after a line end: the header/body separator.
		if (end - 1 == pos) header_separator_ = true;
		pos = end + 1;
	}
	if (pos == start) return start;
	if (!eight_bit_ && has_high_bit(base + start, pos - start)) eight_bit_ = true;
	out.append(base + start, pos - start);
	size_ += pos - start;
	output_line_empty_ = true;
	return pos;
}

size_t DataDecoder::feed(std::string_view in, std::string& out) {
	size_t i = 0;
	const size_t n = in.size();
	// Some states hand the current byte on to another state without consuming
	// it ("continue" without ++i).
	while (i < n && !done_) {
		const char c = in[i];
		switch (state_) {
		case State::line_start:
			if (size_t end = copy_plain_lines(in, i, out); end != i) {
				i = end;  // still at a line start
			} else if (c == '.' && framing_ == Framing::dot_stuffed) {
				state_ = State::line_start_dot;
				++i;
			} else {
				state_ = State::in_line;
			}
			break;
		case State::line_start_dot:
			if (c == '\r') {
				state_ = State::line_start_dot_cr;
				++i;
			} else {
				// The leading dot is dropped (unstuffed); c is ordinary line content,
				// also when it is another dot or a bare LF.
				state_ = State::in_line;
			}
			break;
		case State::line_start_dot_cr:
			if (c == '\n') {
				// CRLF "." CRLF: end of data. The CRLF before the dot was already
				// emitted: it ends the message's last line.
				done_ = true;
				++i;
			} else {
				// CRLF "." CR followed by something else: the CR is bare.
				bare_newline_ = true;
				emit_crlf(out);
				state_ = State::in_line;
			}
			break;
		case State::in_line_cr:
			if (c == '\n') {
				emit_crlf(out);
				state_ = State::line_start;
				++i;
			} else {
				bare_newline_ = true;
				emit_crlf(out);
				state_ = State::in_line;
			}
			break;
		case State::in_line:
			if (c == '\r') {
				state_ = State::in_line_cr;
				++i;
			} else if (c == '\n') {
				// Bare LF. The next line does not follow a raw CRLF, so a dot
				// starting it is not unstuffed and cannot end the data.
				bare_newline_ = true;
				emit_crlf(out);
				++i;
			} else {
				// Fast path: copy the run of ordinary bytes up to the next CR/LF.
				size_t run = ordinary_run(in.data() + i, n - i);
				if (!eight_bit_ && has_high_bit(in.data() + i, run)) eight_bit_ = true;
				emit_bytes(in.substr(i, run), out);
				i += run;
			}
			break;
		}
	}
	return i;
}

void DataDecoder::finish(std::string& out) {
	if (done_) return;
	if (state_ == State::in_line_cr) {
		bare_newline_ = true;
		emit_crlf(out);
	} else if (!output_line_empty_) {
		emit_crlf(out);
	}
	state_ = State::line_start;
	done_ = true;
}

}  // namespace tern::smtp
