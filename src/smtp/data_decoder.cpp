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

namespace tern::smtp {

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

size_t DataDecoder::feed(std::string_view in, std::string& out) {
	size_t i = 0;
	const size_t n = in.size();
	// Some states hand the current byte on to another state without consuming
	// it ("continue" without ++i).
	while (i < n && !done_) {
		const char c = in[i];
		switch (state_) {
		case State::line_start:
			if (c == '.' && framing_ == Framing::dot_stuffed) {
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
				size_t end = i;
				bool high = false;
				while (end < n && in[end] != '\r' && in[end] != '\n') {
					if (static_cast<unsigned char>(in[end]) >= 0x80) high = true;
					++end;
				}
				if (high) eight_bit_ = true;
				emit_bytes(in.substr(i, end - i), out);
				i = end;
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
