#include "util/control_protocol.h"

#include "util/hex.h"

namespace tern::control {

namespace {

std::vector<std::string_view> split_spaces(std::string_view line) {
	std::vector<std::string_view> parts;
	size_t start = 0;
	for (;;) {
		size_t sp = line.find(' ', start);
		parts.push_back(line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
		if (sp == std::string_view::npos) return parts;
		start = sp + 1;
	}
}

std::string_view without_line_end(std::string_view line) {
	if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
	if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
	return line;
}

}  // namespace

std::string encode_word(std::string_view word) {
	if (word.empty()) return "-";
	std::string out;
	out.reserve(word.size());
	for (unsigned char c : word) {
		if (c > ' ' && c < 0x7f && c != '%' && c != '-') {
			out.push_back(static_cast<char>(c));
		} else {
			out.push_back('%');
			append_hex_byte(out, c, HexCase::upper);
		}
	}
	return out;
}

std::optional<std::string> decode_word(std::string_view encoded) {
	if (encoded == "-") return std::string();
	if (encoded.empty()) return std::nullopt;
	std::string out;
	out.reserve(encoded.size());
	for (size_t i = 0; i < encoded.size(); i++) {
		char c = encoded[i];
		if (c == '%') {
			if (i + 2 >= encoded.size()) return std::nullopt;
			int hi = hex_digit_value(encoded[i + 1]), lo = hex_digit_value(encoded[i + 2]);
			if (hi < 0 || lo < 0) return std::nullopt;
			out.push_back(static_cast<char>(hi * 16 + lo));
			i += 2;
		} else if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f || c == '-') {
			// Only the encoder's alphabet: a stray '-' or control byte means
			// the line was not made by format_*.
			return std::nullopt;
		} else {
			out.push_back(c);
		}
	}
	return out;
}

std::string format_request(const std::vector<std::string>& words) {
	std::string line;
	for (size_t i = 0; i < words.size(); i++) {
		if (i) line.push_back(' ');
		line += encode_word(words[i]);
	}
	line.push_back('\n');
	return line;
}

std::optional<std::vector<std::string>> parse_request(std::string_view line) {
	line = without_line_end(line);
	if (line.empty() || line.size() > max_request_line) return std::nullopt;
	std::vector<std::string> words;
	for (std::string_view part : split_spaces(line)) {
		auto word = decode_word(part);
		if (!word) return std::nullopt;
		words.push_back(std::move(*word));
	}
	return words;
}

std::string format_answer(const Answer& answer) {
	return std::to_string(answer.status) + " " + encode_word(answer.out) + " " + encode_word(answer.err) + "\n";
}

std::optional<Answer> parse_answer(std::string_view line) {
	line = without_line_end(line);
	auto parts = split_spaces(line);
	if (parts.size() != 3 || parts[0].empty() || parts[0].size() > 3) return std::nullopt;
	Answer answer;
	for (char c : parts[0]) {
		if (c < '0' || c > '9') return std::nullopt;
		answer.status = answer.status * 10 + (c - '0');
	}
	if (answer.status > 255) return std::nullopt;
	auto out = decode_word(parts[1]);
	auto err = decode_word(parts[2]);
	if (!out || !err) return std::nullopt;
	answer.out = std::move(*out);
	answer.err = std::move(*err);
	return answer;
}

}  // namespace tern::control
