// Base64 codecs, RFC 4648 sections 4 (standard) and 5 (url-safe).
#include "util/base64.h"

#include <array>
#include <cstdint>

namespace tern {

namespace {

constexpr char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr int8_t invalid = -1;

// Reverse lookup table: byte → 6-bit value, or -1.
constexpr std::array<int8_t, 256> make_reverse(const char* alphabet) {
	std::array<int8_t, 256> table{};
	for (auto& v : table) v = invalid;
	for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
	return table;
}

constexpr auto std_reverse = make_reverse(std_alphabet);
constexpr auto url_reverse = make_reverse(url_alphabet);

std::string encode(std::string_view bytes, const char* alphabet, bool pad) {
	std::string out;
	out.reserve((bytes.size() + 2) / 3 * 4);
	size_t i = 0;
	for (; i + 3 <= bytes.size(); i += 3) {
		uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
		    static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
		    static_cast<unsigned char>(bytes[i + 2]);
		out += alphabet[v >> 18 & 63];
		out += alphabet[v >> 12 & 63];
		out += alphabet[v >> 6 & 63];
		out += alphabet[v & 63];
	}
	size_t rest = bytes.size() - i;
	if (rest == 1) {
		uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
		out += alphabet[v >> 18 & 63];
		out += alphabet[v >> 12 & 63];
		if (pad) out += "==";
	} else if (rest == 2) {
		uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
		    static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
		out += alphabet[v >> 18 & 63];
		out += alphabet[v >> 12 & 63];
		out += alphabet[v >> 6 & 63];
		if (pad) out += '=';
	}
	return out;
}

// Decodes `text` (no padding characters in it) of length ≠ 1 mod 4.
// Unused low bits in the last character are ignored rather than rejected
// (RFC 4648 3.5 allows either); the model's decoder (Go's StdEncoding) ignores
// them too, so a client sending them gets the same answer from tern.
std::optional<std::string> decode_unpadded(std::string_view text, const std::array<int8_t, 256>& reverse) {
	if (text.size() % 4 == 1) return std::nullopt;
	std::string out;
	out.reserve(text.size() / 4 * 3 + 2);
	uint32_t acc = 0;
	int bits = 0;
	for (unsigned char c : text) {
		int8_t v = reverse[c];
		if (v == invalid) return std::nullopt;
		acc = acc << 6 | static_cast<uint32_t>(v);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out += static_cast<char>(acc >> bits & 0xff);
		}
	}
	return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes) { return encode(bytes, std_alphabet, true); }

std::string base64url_encode_nopad(std::string_view bytes) { return encode(bytes, url_alphabet, false); }

// Four characters at a time (RFC 4648 4). A quantum cut short by the end of
// the text fails at its start; "=" is padding only as the third and fourth
// or the fourth character of the last quantum. Skipped newlines count in
// the offsets as the model's decoder counts them (a quantum cut short fails
// at the current position less the characters it holds).
std::optional<std::string> base64_decode(std::string_view text, size_t* error_offset, Newlines newlines) {
	auto fail = [&](size_t at) -> std::optional<std::string> {
		if (error_offset) *error_offset = at;
		return std::nullopt;
	};
	const bool skip = newlines == Newlines::skip;
	auto skip_newlines = [&](size_t& at) {
		while (skip && at < text.size() && (text[at] == '\r' || text[at] == '\n')) ++at;
	};
	std::string out;
	out.reserve(text.size() / 4 * 3);
	size_t i = 0;
	while (i < text.size()) {
		uint32_t acc = 0;
		size_t j = 0;
		for (; j < 4; ++i) {
			if (i == text.size()) {
				if (j == 0) return out;  // only newlines after the last quantum
				return fail(i - j);
			}
			const char c = text[i];
			int8_t v = std_reverse[static_cast<unsigned char>(c)];
			if (v != invalid) {
				acc = acc << 6 | static_cast<uint32_t>(v);
				++j;
				continue;
			}
			if (skip && (c == '\r' || c == '\n')) continue;
			break;
		}
		if (j == 4) {
			out += static_cast<char>(acc >> 16 & 0xff);
			out += static_cast<char>(acc >> 8 & 0xff);
			out += static_cast<char>(acc & 0xff);
			continue;
		}
		if (text[i] != '=' || j < 2) return fail(i);
		if (j == 2) {
			// "==" ends a quantum of two characters.
			size_t next = i + 1;
			skip_newlines(next);
			if (next == text.size()) return fail(text.size());
			if (text[next] != '=') return fail(next - 1);
			i = next;
		}
		++i;
		skip_newlines(i);
		if (i < text.size()) return fail(i);  // nothing may follow the padding
		acc <<= 6 * (4 - j);
		out += static_cast<char>(acc >> 16 & 0xff);
		if (j == 3) out += static_cast<char>(acc >> 8 & 0xff);
	}
	return out;
}

std::optional<std::string> base64url_decode_nopad(std::string_view text) { return decode_unpadded(text, url_reverse); }

}  // namespace tern
