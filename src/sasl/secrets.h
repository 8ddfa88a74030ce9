// Derived password secrets stored per account (never the password itself):
// SCRAM-SHA-1 and SCRAM-SHA-256 salted keys (RFC 5802 3) and the
// precomputed HMAC-MD5 inner/outer states for CRAM-MD5 (RFC 2195).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace tern::sasl {

struct ScramSecret {
	std::string salt;         // raw bytes (12 random bytes)
	int iterations = 0;       // SHA-1: 8192, SHA-256: 4096 (the seed's values)
	std::string stored_key;   // H(ClientKey), raw
	std::string server_key;   // HMAC(SaltedPassword, "Server Key"), raw
};

struct CramMd5Secret {
	// MD5 chaining state after one 64-byte block of (key XOR ipad) / (key
	// XOR opad), 16 bytes each; keys longer than 64 bytes are hashed first.
	std::string inner_state;
	std::string outer_state;
};

struct StoredSecrets {
	std::optional<ScramSecret> scram_sha1;
	std::optional<ScramSecret> scram_sha256;
	std::optional<CramMd5Secret> cram_md5;

	// Derives all three from a password with fresh random salts.
	static StoredSecrets derive(std::string_view password);
	// Checks a cleartext password (PLAIN, LOGIN) against the SCRAM-SHA-256
	// secret (or SHA-1 when only that exists); constant-time compare.
	bool check_password(std::string_view password) const;

	// Versioned binary form for the database; parse returns nullopt on a
	// malformed blob.
	std::string serialize() const;
	static std::optional<StoredSecrets> parse(std::string_view blob);
};

}  // namespace tern::sasl
