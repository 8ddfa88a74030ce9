// SHA-256 (FIPS 180-4) for the message path: the whole-message hash, DKIM
// body and header hashes, SCRAM-SHA-256. The block function uses the x86
// SHA extensions when the CPU has them (several times faster than portable
// C) and mbedTLS's portable block function otherwise; the choice is made
// once, at start-up.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tern {

class Sha256 {
public:
	static constexpr size_t digest_size = 32;
	static constexpr size_t block_size = 64;
	using Digest = std::array<unsigned char, digest_size>;

	Sha256();
	void update(std::string_view bytes);
	void update(const void* bytes, size_t size);
	// The digest of everything passed to update(); the hasher then starts
	// over, as if newly made.
	Digest finish();

	// One-shot: the digest of `bytes`.
	static Digest of(std::string_view bytes);
	// The digest as a string of 32 raw bytes.
	static std::string_view view(const Digest& digest) {
		return {reinterpret_cast<const char*>(digest.data()), digest.size()};
	}

private:
	void reset();
	uint32_t state_[8];
	uint64_t length_ = 0;  // bytes passed to update() so far
	unsigned char block_[block_size];
	size_t filled_ = 0;  // bytes of block_ waiting for the rest of their block
};

// For tests: whether the CPU has the SHA extensions, whether the hasher
// uses them now, and a switch that forces the portable block function
// (false restores the start-up choice). Not for use while other threads hash.
bool sha256_accelerated_available();
bool sha256_accelerated_in_use();
void sha256_force_portable(bool portable);

}  // namespace tern
