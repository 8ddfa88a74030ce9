// Received-id (doc/behaviour.md §0): the per-connection id in error replies
// and in the Received header. The connection counter is not shown as-is (it
// would leak how many connections the server had); it is AES-128 encrypted
// with a per-install key, base64url without padding: 22 characters. Whoever
// holds the key can map an id back to its connection (cid_of).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern {

class ReceivedIdGenerator {
public:
	// `key24` is the 24-byte per-install key: bytes 0..15 are the AES-128 key,
	// bytes 16..23 fill the first half of every encrypted block. Throws
	// std::invalid_argument when it is not 24 bytes.
	explicit ReceivedIdGenerator(std::string_view key24);

	// 22-character base64url id of connection `cid`. Thread-safe (const, no
	// shared mutable state).
	std::string id(uint64_t cid) const;

	// Inverse of id(): the cid, or nullopt when `id` was not made with this key.
	[[nodiscard]] std::optional<uint64_t> cid_of(std::string_view id) const;

	// Reads the 24-byte key file at `path`, or creates it with random bytes
	// (mode 0600, written under a temporary name, fsync'd, then linked into
	// place, so a crash never leaves a short key file). Called once at daemon
	// start. Throws std::runtime_error on I/O errors or a file of another size.
	[[nodiscard]] static std::string load_or_create_key(const std::string& path);

	static constexpr size_t key_size = 24;

private:
	std::array<unsigned char, 16> aes_key_{};
	std::array<unsigned char, 8> prefix_{};
};

}  // namespace tern
