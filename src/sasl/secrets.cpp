// Password-derived secrets: derivation (RFC 5802 3, RFC 2104 2 / RFC 2195 2),
// cleartext checks and the database encoding.
#include "sasl/secrets.h"

#include <cstdint>
#include <stdexcept>

namespace tern::sasl {

namespace {

constexpr std::string_view client_key_label = "Client Key";
constexpr std::string_view server_key_label = "Server Key";

// Blob layout, version 1 (all integers big-endian):
//   "ts" 0x01 flags
//   per present SCRAM secret, SHA-1 first:
//     u32 iterations, u16 len + salt, u16 len + stored_key, u16 len + server_key
//   if CRAM-MD5 is present: u16 len + inner_state, u16 len + outer_state
// flags: bit 0 SCRAM-SHA-1, bit 1 SCRAM-SHA-256, bit 2 CRAM-MD5.
constexpr std::string_view blob_magic = "ts";
constexpr unsigned char blob_version = 1;
constexpr unsigned char flag_sha1 = 0x01;
constexpr unsigned char flag_sha256 = 0x02;
constexpr unsigned char flag_cram_md5 = 0x04;
constexpr std::size_t max_salt_length = 1024;

void put_u16(std::string& out, std::size_t value) {
	if (value > 0xffff) throw std::invalid_argument("stored secrets: field too long");
	out.push_back(static_cast<char>((value >> 8) & 0xff));
	out.push_back(static_cast<char>(value & 0xff));
}

void put_u32(std::string& out, uint32_t value) {
	for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}

void put_field(std::string& out, std::string_view field) {
	put_u16(out, field.size());
	out.append(field);
}

void put_scram(std::string& out, const ScramSecret& secret) {
	if (secret.iterations <= 0) throw std::invalid_argument("stored secrets: iterations must be positive");
	put_u32(out, static_cast<uint32_t>(secret.iterations));
	put_field(out, secret.salt);
	put_field(out, secret.stored_key);
	put_field(out, secret.server_key);
}

// Bounds-checked reader; every accessor fails softly with nullopt.
class BlobReader {
public:
	explicit BlobReader(std::string_view blob) : rest_(blob) {}

	std::optional<unsigned char> byte() {
		if (rest_.empty()) return std::nullopt;
		unsigned char value = static_cast<unsigned char>(rest_[0]);
		rest_.remove_prefix(1);
		return value;
	}

	std::optional<uint32_t> u32() {
		if (rest_.size() < 4) return std::nullopt;
		uint32_t value = 0;
		for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(rest_[i]);
		rest_.remove_prefix(4);
		return value;
	}

	std::optional<std::string> field() {
		if (rest_.size() < 2) return std::nullopt;
		std::size_t length = (static_cast<std::size_t>(static_cast<unsigned char>(rest_[0])) << 8) |
		    static_cast<unsigned char>(rest_[1]);
		rest_.remove_prefix(2);
		if (rest_.size() < length) return std::nullopt;
		std::string value(rest_.substr(0, length));
		rest_.remove_prefix(length);
		return value;
	}

	bool take(std::string_view expected) {
		if (rest_.substr(0, expected.size()) != expected) return false;
		rest_.remove_prefix(expected.size());
		return true;
	}

	bool at_end() const { return rest_.empty(); }

private:
	std::string_view rest_;
};

std::optional<ScramSecret> read_scram(BlobReader& reader, ScramHash hash) {
	auto iterations = reader.u32();
	if (!iterations || *iterations == 0 || *iterations > 0x7fffffffu) return std::nullopt;
	auto salt = reader.field();
	auto stored_key = reader.field();
	auto server_key = reader.field();
	if (!salt || !stored_key || !server_key || salt->size() > max_salt_length) return std::nullopt;
	ScramSecret secret{*salt, static_cast<int>(*iterations), *stored_key, *server_key};
	if (!secret.usable_for(hash)) return std::nullopt;
	return secret;
}

}  // namespace

ScramSecret ScramSecret::derive(ScramHash hash, std::string_view password, std::string_view salt, int iterations) {
	std::string salted_password = crypto::pbkdf2(hash, password, salt, iterations);
	std::string client_key = crypto::hmac(hash, salted_password, client_key_label);
	ScramSecret secret;
	secret.salt = std::string(salt);
	secret.iterations = iterations;
	secret.stored_key = crypto::digest(hash, client_key);
	secret.server_key = crypto::hmac(hash, salted_password, server_key_label);
	crypto::wipe(salted_password);
	crypto::wipe(client_key);
	return secret;
}

bool ScramSecret::usable_for(ScramHash hash) const {
	std::size_t length = crypto::hash_length(hash);
	return !salt.empty() && iterations > 0 && stored_key.size() == length && server_key.size() == length;
}

CramMd5Secret CramMd5Secret::derive(std::string_view password) {
	// RFC 2104 2: keys longer than the block size are replaced by their hash,
	// then zero-padded to the block; ipad = 0x36, opad = 0x5c.
	constexpr std::size_t block = 64;
	std::string key;
	if (password.size() > block) {
		key = crypto::md5_digest(password);
	} else {
		key = std::string(password);
	}
	key.resize(block, '\0');
	std::string inner_block(block, '\0');
	std::string outer_block(block, '\0');
	for (std::size_t i = 0; i < block; ++i) {
		inner_block[i] = static_cast<char>(key[i] ^ 0x36);
		outer_block[i] = static_cast<char>(key[i] ^ 0x5c);
	}
	CramMd5Secret secret;
	secret.inner_state = crypto::md5_state_after_block(inner_block);
	secret.outer_state = crypto::md5_state_after_block(outer_block);
	crypto::wipe(key);
	crypto::wipe(inner_block);
	crypto::wipe(outer_block);
	return secret;
}

std::string CramMd5Secret::hmac(std::string_view message) const {
	// RFC 2104 2: H(K XOR opad, H(K XOR ipad, text)).
	std::string inner = crypto::md5_resume(inner_state, message);
	return crypto::md5_resume(outer_state, inner);
}

StoredSecrets StoredSecrets::derive(std::string_view password) {
	StoredSecrets secrets;
	secrets.scram_sha1 = ScramSecret::derive(ScramHash::sha1, password, crypto::random_bytes(scram_salt_length),
	                                         scram_sha1_iterations);
	secrets.scram_sha256 = ScramSecret::derive(ScramHash::sha256, password, crypto::random_bytes(scram_salt_length),
	                                           scram_sha256_iterations);
	secrets.cram_md5 = CramMd5Secret::derive(password);
	return secrets;
}

const ScramSecret* StoredSecrets::scram(ScramHash hash) const {
	const std::optional<ScramSecret>& secret = hash == ScramHash::sha1 ? scram_sha1 : scram_sha256;
	return secret ? &*secret : nullptr;
}

bool StoredSecrets::check_password(std::string_view password) const {
	for (ScramHash hash : {ScramHash::sha256, ScramHash::sha1}) {
		const ScramSecret* stored = scram(hash);
		if (stored == nullptr || !stored->usable_for(hash)) continue;
		ScramSecret candidate = ScramSecret::derive(hash, password, stored->salt, stored->iterations);
		return crypto::constant_time_equal(candidate.stored_key, stored->stored_key);
	}
	if (cram_md5 && cram_md5->usable()) {
		CramMd5Secret candidate = CramMd5Secret::derive(password);
		bool inner_equal = crypto::constant_time_equal(candidate.inner_state, cram_md5->inner_state);
		bool outer_equal = crypto::constant_time_equal(candidate.outer_state, cram_md5->outer_state);
		return inner_equal && outer_equal;
	}
	return false;
}

std::string StoredSecrets::serialize() const {
	std::string out(blob_magic);
	out.push_back(static_cast<char>(blob_version));
	unsigned char flags = 0;
	if (scram_sha1) flags |= flag_sha1;
	if (scram_sha256) flags |= flag_sha256;
	if (cram_md5) flags |= flag_cram_md5;
	out.push_back(static_cast<char>(flags));
	if (scram_sha1) put_scram(out, *scram_sha1);
	if (scram_sha256) put_scram(out, *scram_sha256);
	if (cram_md5) {
		put_field(out, cram_md5->inner_state);
		put_field(out, cram_md5->outer_state);
	}
	return out;
}

std::optional<StoredSecrets> StoredSecrets::parse(std::string_view blob) {
	BlobReader reader(blob);
	if (!reader.take(blob_magic)) return std::nullopt;
	auto version = reader.byte();
	auto flags = reader.byte();
	if (!version || *version != blob_version || !flags) return std::nullopt;
	if ((*flags & ~(flag_sha1 | flag_sha256 | flag_cram_md5)) != 0) return std::nullopt;

	StoredSecrets secrets;
	if (*flags & flag_sha1) {
		secrets.scram_sha1 = read_scram(reader, ScramHash::sha1);
		if (!secrets.scram_sha1) return std::nullopt;
	}
	if (*flags & flag_sha256) {
		secrets.scram_sha256 = read_scram(reader, ScramHash::sha256);
		if (!secrets.scram_sha256) return std::nullopt;
	}
	if (*flags & flag_cram_md5) {
		auto inner = reader.field();
		auto outer = reader.field();
		if (!inner || !outer) return std::nullopt;
		CramMd5Secret cram{*inner, *outer};
		if (!cram.usable()) return std::nullopt;
		secrets.cram_md5 = std::move(cram);
	}
	if (!reader.at_end()) return std::nullopt;
	return secrets;
}

}  // namespace tern::sasl
