// Derived password secrets stored per account (never the password itself):
// SCRAM-SHA-1 and SCRAM-SHA-256 salted keys (RFC 5802 3) and the
// precomputed HMAC-MD5 inner/outer states for CRAM-MD5 (RFC 2195).
//
// Passwords are used as the bytes given: callers pass them through
// SASLprep first (RFC 5802 2.2 Normalize(), sasl/saslprep.h): ternctl
// passwd before derive(), PLAIN and LOGIN before check_password().
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "sasl/crypto.h"  // ScramHash

namespace tern::sasl {

// The model's parameters (doc/behaviour.md §14).
inline constexpr int scram_sha1_iterations = 8192;
inline constexpr int scram_sha256_iterations = 4096;
inline constexpr std::size_t scram_salt_length = 12;

struct ScramSecret {
	std::string salt;        // raw bytes (12 random bytes)
	int iterations = 0;      // SHA-1: 8192, SHA-256: 4096 (the model's values)
	std::string stored_key;  // H(ClientKey), raw
	std::string server_key;  // HMAC(SaltedPassword, "Server Key"), raw

	// RFC 5802 3: SaltedPassword = Hi(password, salt, iterations),
	// ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey),
	// ServerKey = HMAC(SaltedPassword, "Server Key"). Explicit salt and
	// iteration count so tests can replay the RFC vectors.
	static ScramSecret derive(ScramHash hash, std::string_view password, std::string_view salt, int iterations);
	// Whether the fields are usable for `hash` (non-empty salt, positive
	// iterations, keys of the hash's length).
	bool usable_for(ScramHash hash) const;
};

struct CramMd5Secret {
	// MD5 chaining state after one 64-byte block of (key XOR ipad) / (key
	// XOR opad), 16 bytes each; keys longer than 64 bytes are hashed first.
	std::string inner_state;
	std::string outer_state;

	// RFC 2104 2 with the key = password (RFC 2195 2).
	static CramMd5Secret derive(std::string_view password);
	// HMAC-MD5(password, message) resumed from the stored states, raw bytes.
	std::string hmac(std::string_view message) const;
	bool usable() const { return inner_state.size() == 16 && outer_state.size() == 16; }
};

struct StoredSecrets {
	std::optional<ScramSecret> scram_sha1;
	std::optional<ScramSecret> scram_sha256;
	std::optional<CramMd5Secret> cram_md5;

	// Derives all three from a password with fresh random salts.
	static StoredSecrets derive(std::string_view password);
	// Checks a cleartext password (PLAIN, LOGIN) against the SCRAM-SHA-256
	// secret (or SHA-1 when only that exists, or the CRAM-MD5 states when no
	// SCRAM secret exists); constant-time compare. False when nothing usable
	// is stored.
	bool check_password(std::string_view password) const;

	// The SCRAM secret for a hash, or nullptr.
	const ScramSecret* scram(ScramHash hash) const;

	// Versioned binary form for the database; parse returns nullopt on a
	// malformed blob.
	std::string serialize() const;
	static std::optional<StoredSecrets> parse(std::string_view blob);
};

}  // namespace tern::sasl
