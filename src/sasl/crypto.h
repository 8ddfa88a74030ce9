// Hash primitives the SASL mechanisms and the stored secrets share, on top of
// mbedTLS 2.28. Internal to src/sasl/ (other layers use secrets.h and
// mechanism.h).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tern::sasl {

// The two hash functions SCRAM is offered with (RFC 5802, RFC 7677).
enum class ScramHash { sha1, sha256 };

namespace crypto {

// Output length of the hash in bytes: 20 for SHA-1, 32 for SHA-256.
std::size_t hash_length(ScramHash hash);
// H(data), raw bytes.
std::string digest(ScramHash hash, std::string_view data);
// HMAC(key, message), raw bytes (RFC 2104).
std::string hmac(ScramHash hash, std::string_view key, std::string_view message);
// PBKDF2 with HMAC-<hash> giving hash_length(hash) bytes: SCRAM's Hi()
// (RFC 5802 2.2 defines Hi as PBKDF2 with dkLen equal to the hash length).
std::string pbkdf2(ScramHash hash, std::string_view password, std::string_view salt, int iterations);

// Cryptographically random bytes from the kernel (getrandom(2)); throws
// std::runtime_error when the kernel cannot provide them.
std::string random_bytes(std::size_t count);

// Equality whose running time does not depend on where the inputs differ
// (only on their lengths), so secrets are not leaked by timing.
bool constant_time_equal(std::string_view a, std::string_view b);

// Lower-case hexadecimal.

// MD5 split in two for CRAM-MD5 (RFC 2195 section 2, RFC 2104 section 4):
// the chaining state (16 bytes, the four state words little-endian) after
// absorbing exactly one 64-byte block, and the digest of that block followed
// by `data`, resumed from such a state. md5_digest is plain MD5(data).
std::string md5_digest(std::string_view data);
std::string md5_state_after_block(std::string_view block64);
std::string md5_resume(std::string_view state16, std::string_view data);

// Overwrites a string's bytes before it is released (passwords).
void wipe(std::string& secret);

}  // namespace crypto
}  // namespace tern::sasl
