#include "inbound/subjectpass.h"

#include <mbedtls/md.h>

#include "util/base64.h"

namespace tern::inbound {

namespace {

constexpr size_t mac_length = 12;

std::string hmac_sha256(std::string_view key, std::string_view message) {
	unsigned char out[32];
	mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
	                reinterpret_cast<const unsigned char*>(key.data()), key.size(),
	                reinterpret_cast<const unsigned char*>(message.data()), message.size(), out);
	return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string time_bytes(int64_t unix_time) {
	// Version 0 in the high nibble; 28 bits of time in 256-second steps.
	uint32_t v = static_cast<uint32_t>((static_cast<uint64_t>(unix_time) >> 8) & 0x0fffffffu);
	std::string b(4, '\0');
	for (int i = 3; i >= 0; --i, v >>= 8) b[i] = static_cast<char>(v & 0xff);
	return b;
}

std::string mac_for(std::string_view key, const std::string& head, std::string_view sender) {
	std::string message = head;
	message.append(sender);
	return hmac_sha256(key, message).substr(0, mac_length);
}

}  // namespace

std::string make_subjectpass_token(std::string_view key, std::string_view sender, int64_t unix_time) {
	std::string head = time_bytes(unix_time);
	return base64url_encode_nopad(head + mac_for(key, head, sender));
}

std::optional<std::string> subjectpass_token_in(std::string_view subject) {
	constexpr std::string_view open = "(pass:";
	size_t start = subject.find(open);
	if (start == std::string_view::npos) return std::nullopt;
	start += open.size();
	size_t end = subject.find(')', start);
	if (end == std::string_view::npos || end == start) return std::nullopt;
	return std::string(subject.substr(start, end - start));
}

bool subjectpass_token_valid(std::string_view token, std::string_view key, std::string_view sender, int64_t now,
                             int64_t period_s) {
	auto raw = base64url_decode_nopad(token);
	if (!raw || raw->size() != 4 + mac_length) return false;
	std::string head = raw->substr(0, 4);
	if ((static_cast<unsigned char>(head[0]) >> 4) != 0) return false;  // unknown version
	std::string expected = mac_for(key, head, sender);
	unsigned char diff = 0;  // constant time: the comparison leaks nothing
	for (size_t i = 0; i < mac_length; ++i) diff |= static_cast<unsigned char>((*raw)[4 + i] ^ expected[i]);
	if (diff != 0) return false;
	uint64_t t = 0;
	for (char c : head) t = (t << 8) | static_cast<unsigned char>(c);
	int64_t made = static_cast<int64_t>(t << 8);
	// The 28 bits wrap every ~2,177 years; compare against the same era.
	int64_t era = static_cast<int64_t>((static_cast<uint64_t>(now) >> 36) << 36);
	made += era;
	if (made > now + 256) return false;
	return now - made <= period_s;
}

}  // namespace tern::inbound
