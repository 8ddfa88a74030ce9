// Thin wrappers over mbedTLS 2.28 message digests, HMAC, PBKDF2 and MD5.
#include "util/random.h"
#include "sasl/crypto.h"

#include <mbedtls/md.h>
#include <mbedtls/md5.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "util/sha256.h"

namespace tern::sasl::crypto {

namespace {

const mbedtls_md_info_t* md_info(ScramHash hash) {
	const mbedtls_md_info_t* info = mbedtls_md_info_from_type(hash == ScramHash::sha1 ? MBEDTLS_MD_SHA1
	                                                                                  : MBEDTLS_MD_SHA256);
	if (info == nullptr) throw std::runtime_error("mbedtls: hash not available");
	return info;
}

const unsigned char* bytes_of(std::string_view text) { return reinterpret_cast<const unsigned char*>(text.data()); }

unsigned char* bytes_of(std::string& text) { return reinterpret_cast<unsigned char*>(text.data()); }

void check(int rc, const char* what) {
	if (rc != 0) throw std::runtime_error(std::string("mbedtls: ") + what + " failed");
}

// Owns an mbedtls_md5_context for the duration of one computation.
struct Md5Context {
	mbedtls_md5_context ctx;
	Md5Context() { mbedtls_md5_init(&ctx); }
	~Md5Context() { mbedtls_md5_free(&ctx); }
	Md5Context(const Md5Context&) = delete;
	Md5Context& operator=(const Md5Context&) = delete;
};

}  // namespace

std::size_t hash_length(ScramHash hash) { return hash == ScramHash::sha1 ? 20 : 32; }

std::string digest(ScramHash hash, std::string_view data) {
	if (hash == ScramHash::sha256) return std::string(Sha256::view(Sha256::of(data)));
	std::string out(hash_length(hash), '\0');
	check(mbedtls_md(md_info(hash), bytes_of(data), data.size(), bytes_of(out)), "digest");
	return out;
}

std::string hmac(ScramHash hash, std::string_view key, std::string_view message) {
	std::string out(hash_length(hash), '\0');
	check(
	    mbedtls_md_hmac(md_info(hash), bytes_of(key), key.size(), bytes_of(message), message.size(), bytes_of(out)),
	    "hmac");
	return out;
}

std::string pbkdf2(ScramHash hash, std::string_view password, std::string_view salt, int iterations) {
	if (iterations <= 0) throw std::invalid_argument("pbkdf2: iterations must be positive");
	mbedtls_md_context_t ctx;
	mbedtls_md_init(&ctx);
	std::unique_ptr<mbedtls_md_context_t, void (*)(mbedtls_md_context_t*)> guard(&ctx, mbedtls_md_free);
	check(mbedtls_md_setup(&ctx, md_info(hash), 1 /* HMAC */), "md setup");
	std::string out(hash_length(hash), '\0');
	check(mbedtls_pkcs5_pbkdf2_hmac(&ctx, bytes_of(password), password.size(), bytes_of(salt), salt.size(),
	                                static_cast<unsigned int>(iterations), static_cast<uint32_t>(out.size()),
	                                bytes_of(out)),
	      "pbkdf2");
	return out;
}

std::string random_bytes(std::size_t count) { return tern::random_bytes(count); }

bool constant_time_equal(std::string_view a, std::string_view b) {
	if (a.size() != b.size()) return false;
	unsigned char difference = 0;
	for (std::size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
	return difference == 0;
}


std::string md5_digest(std::string_view data) {
	std::string out(16, '\0');
	check(mbedtls_md5_ret(bytes_of(data), data.size(), bytes_of(out)), "md5");
	return out;
}

std::string md5_state_after_block(std::string_view block64) {
	if (block64.size() != 64) throw std::invalid_argument("md5_state_after_block: need exactly 64 bytes");
	Md5Context md5;
	check(mbedtls_md5_starts_ret(&md5.ctx), "md5 start");
	check(mbedtls_md5_update_ret(&md5.ctx, bytes_of(block64), block64.size()), "md5 update");
	// After a whole block the buffer is empty and `state` holds everything
	// absorbed so far; MD5 words are little-endian (RFC 1321 3.5).
	std::string state(16, '\0');
	for (int word = 0; word < 4; ++word)
		for (int byte = 0; byte < 4; ++byte)
			state[word * 4 + byte] = static_cast<char>((md5.ctx.state[word] >> (8 * byte)) & 0xff);
	mbedtls_platform_zeroize(&md5.ctx, sizeof md5.ctx);
	return state;
}

std::string md5_resume(std::string_view state16, std::string_view data) {
	if (state16.size() != 16) throw std::invalid_argument("md5_resume: need a 16-byte state");
	Md5Context md5;
	check(mbedtls_md5_starts_ret(&md5.ctx), "md5 start");
	for (int word = 0; word < 4; ++word) {
		uint32_t value = 0;
		for (int byte = 3; byte >= 0; --byte)
			value = (value << 8) | static_cast<unsigned char>(state16[word * 4 + byte]);
		md5.ctx.state[word] = value;
	}
	// One block (64 bytes) already absorbed; the length counts into the
	// final padding (RFC 1321 3.2).
	md5.ctx.total[0] = 64;
	md5.ctx.total[1] = 0;
	check(mbedtls_md5_update_ret(&md5.ctx, bytes_of(data), data.size()), "md5 update");
	std::string out(16, '\0');
	check(mbedtls_md5_finish_ret(&md5.ctx, bytes_of(out)), "md5 finish");
	return out;
}

void wipe(std::string& secret) {
	if (!secret.empty()) mbedtls_platform_zeroize(secret.data(), secret.size());
	secret.clear();
}

}  // namespace tern::sasl::crypto
