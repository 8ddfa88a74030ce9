// DKIM key material: RSA through mbedTLS, Ed25519 (RFC 8463) through
// libsodium; PEM reading and writing (PKCS#1, PKCS#8).
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <sodium.h>

#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "mailauth/dkim.h"
#include "mailauth/dkim_internal.h"
#include "util/base64.h"

namespace tern::mailauth::dkim {

namespace {

// PKCS#8 PrivateKeyInfo for Ed25519 (RFC 8410 7): SEQUENCE { INTEGER 0,
// SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed(32) } }.
// Always these 16 bytes followed by the 32-byte seed.
constexpr unsigned char ed25519_pkcs8_prefix[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                                    0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};

// rsaEncryption AlgorithmIdentifier (RFC 8017 A.1): OID 1.2.840.113549.1.1.1, NULL.
constexpr unsigned char rsa_algorithm_id[15] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};

// mbedTLS wants a random source for RSA blinding and key generation.
int sodium_random(void*, unsigned char* out, size_t len) {
	randombytes_buf(out, len);
	return 0;
}

bool sodium_ready() {
	static const bool ok = sodium_init() >= 0;
	return ok;
}

std::string der_length(size_t n) {
	std::string out;
	if (n < 0x80) {
		out += static_cast<char>(n);
		return out;
	}
	std::string bytes;
	for (; n > 0; n >>= 8) bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
	out += static_cast<char>(0x80 | bytes.size());
	return out + bytes;
}

std::string der(unsigned char tag, std::string_view content) {
	std::string out(1, static_cast<char>(tag));
	out += der_length(content.size());
	out.append(content);
	return out;
}

std::string pem_encode(std::string_view label, std::string_view der_bytes) {
	std::string b64 = base64_encode(der_bytes);
	std::string out = "-----BEGIN " + std::string(label) + "-----\n";
	for (size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
	out += "-----END " + std::string(label) + "-----\n";
	return out;
}

// The base64 body of the first PEM block labelled `label`, decoded.
std::optional<std::string> pem_block(std::string_view pem, std::string_view label) {
	std::string begin = "-----BEGIN " + std::string(label) + "-----";
	std::string end = "-----END " + std::string(label) + "-----";
	size_t b = pem.find(begin);
	if (b == std::string_view::npos) return std::nullopt;
	b += begin.size();
	size_t e = pem.find(end, b);
	if (e == std::string_view::npos) return std::nullopt;
	std::string b64;
	for (char c : pem.substr(b, e - b))
		if (c != '\r' && c != '\n' && c != ' ' && c != '\t') b64 += c;
	return base64_decode(b64);
}

std::string mbedtls_text(int err) {
	char buf[160];
	mbedtls_strerror(err, buf, sizeof buf);
	return buf;
}

}  // namespace

struct PrivateKeyImpl {
	KeyType type = KeyType::rsa;
	// RSA: mbedTLS keeps blinding state in the context, so signing takes
	// the mutex (jobs of several connections may sign at once).
	mutable std::mutex mutex;
	mutable mbedtls_pk_context pk;
	std::string ed25519_secret;  // libsodium 64-byte secret key (seed + public)
	std::string ed25519_public;  // 32 bytes

	PrivateKeyImpl() { mbedtls_pk_init(&pk); }
	~PrivateKeyImpl() {
		mbedtls_pk_free(&pk);
		sodium_memzero(ed25519_secret.data(), ed25519_secret.size());
	}
};

namespace detail {

int rsa_public_key_bits(std::string_view der_bytes) {
	mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	int bits = 0;
	if (mbedtls_pk_parse_public_key(&pk, reinterpret_cast<const unsigned char*>(der_bytes.data()),
	                                der_bytes.size()) == 0 &&
	    mbedtls_pk_get_type(&pk) == MBEDTLS_PK_RSA)
		bits = static_cast<int>(mbedtls_pk_get_bitlen(&pk));
	mbedtls_pk_free(&pk);
	return bits;
}

namespace {

// A key a verification may cost: its exponent is a power with as many
// steps as the exponent has bits, so a key of a stranger with a modulus
// sized exponent takes a third of a second per signature where 65537
// takes microseconds. Keys in use have 65537 (RFC 8017 leaves e open);
// the modulus bound is four times RFC 8301's largest required size.
bool rsa_key_verifiable(mbedtls_pk_context& pk, std::string* error) {
	constexpr size_t max_modulus_bits = 16384;
	constexpr size_t max_exponent_bits = 31;
	if (mbedtls_pk_get_type(&pk) != MBEDTLS_PK_RSA) return true;
	mbedtls_mpi exponent;
	mbedtls_mpi_init(&exponent);
	bool ok = mbedtls_rsa_export(mbedtls_pk_rsa(pk), nullptr, nullptr, nullptr, nullptr, &exponent) == 0 &&
	    mbedtls_mpi_bitlen(&exponent) <= max_exponent_bits && mbedtls_pk_get_bitlen(&pk) <= max_modulus_bits;
	mbedtls_mpi_free(&exponent);
	if (!ok && error) *error = "RSA key with a public exponent over 2^31 or a modulus over 16384 bits";
	return ok;
}

}  // namespace

bool rsa_verify(std::string_view public_der, HashAlg hash, std::string_view data, std::string_view signature,
                std::string* error) {
	mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	int rc = mbedtls_pk_parse_public_key(&pk, reinterpret_cast<const unsigned char*>(public_der.data()),
	                                     public_der.size());
	if (rc == 0 && !rsa_key_verifiable(pk, error)) {
		mbedtls_pk_free(&pk);
		return false;
	}
	if (rc == 0) {
		std::string h = digest(hash, data);
		rc = mbedtls_pk_verify(&pk, hash == HashAlg::sha1 ? MBEDTLS_MD_SHA1 : MBEDTLS_MD_SHA256,
		                       reinterpret_cast<const unsigned char*>(h.data()), h.size(),
		                       reinterpret_cast<const unsigned char*>(signature.data()), signature.size());
	}
	mbedtls_pk_free(&pk);
	if (rc != 0 && error) *error = mbedtls_text(rc);
	return rc == 0;
}

bool ed25519_verify(std::string_view public_key, std::string_view data, std::string_view signature) {
	if (!sodium_ready() || public_key.size() != crypto_sign_ed25519_PUBLICKEYBYTES ||
	    signature.size() != crypto_sign_ed25519_BYTES)
		return false;
	// RFC 8463 3: Ed25519 (pure) over the SHA-256 hash of the header data.
	std::string h = digest(HashAlg::sha256, data);
	return crypto_sign_ed25519_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
	                                           reinterpret_cast<const unsigned char*>(h.data()), h.size(),
	                                           reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
}

}  // namespace detail

KeyType PrivateKey::type() const { return impl_ ? impl_->type : KeyType::rsa; }

int PrivateKey::bits() const {
	if (!impl_) return 0;
	if (impl_->type == KeyType::ed25519) return 256;
	return static_cast<int>(mbedtls_pk_get_bitlen(&impl_->pk));
}

std::string PrivateKey::txt_record() const {
	if (!impl_) return "";
	if (impl_->type == KeyType::ed25519) return "v=DKIM1; k=ed25519; p=" + base64_encode(impl_->ed25519_public);
	unsigned char buf[4096];
	std::lock_guard lock(impl_->mutex);
	// mbedtls_pk_write_pubkey_der writes at the end of the buffer.
	int n = mbedtls_pk_write_pubkey_der(&impl_->pk, buf, sizeof buf);
	if (n <= 0) return "";
	return "v=DKIM1; k=rsa; p=" + base64_encode(std::string_view(reinterpret_cast<char*>(buf + sizeof buf - n), n));
}

std::string PrivateKey::sign_data(std::string_view data) const {
	if (!impl_) return "";
	std::string h = digest(HashAlg::sha256, data);
	if (impl_->type == KeyType::ed25519) {
		unsigned char sig[crypto_sign_ed25519_BYTES];
		crypto_sign_ed25519_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(h.data()), h.size(),
		                             reinterpret_cast<const unsigned char*>(impl_->ed25519_secret.data()));
		return std::string(reinterpret_cast<char*>(sig), sizeof sig);
	}
	unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	size_t len = 0;
	std::lock_guard lock(impl_->mutex);
	int rc = mbedtls_pk_sign(&impl_->pk, MBEDTLS_MD_SHA256, reinterpret_cast<const unsigned char*>(h.data()),
	                         h.size(), sig, &len, sodium_random, nullptr);
	if (rc != 0) return "";
	return std::string(reinterpret_cast<char*>(sig), len);
}

namespace {

std::optional<PrivateKey> ed25519_from_seed(std::string_view seed) {
	auto impl = std::make_shared<PrivateKeyImpl>();
	impl->type = KeyType::ed25519;
	impl->ed25519_public.resize(crypto_sign_ed25519_PUBLICKEYBYTES);
	impl->ed25519_secret.resize(crypto_sign_ed25519_SECRETKEYBYTES);
	crypto_sign_ed25519_seed_keypair(reinterpret_cast<unsigned char*>(impl->ed25519_public.data()),
	                                 reinterpret_cast<unsigned char*>(impl->ed25519_secret.data()),
	                                 reinterpret_cast<const unsigned char*>(seed.data()));
	PrivateKey key;
	key.impl_ = std::move(impl);
	return key;
}

}  // namespace

std::optional<PrivateKey> parse_private_key(std::string_view pem, std::string* error) {
	auto fail = [&](std::string why) -> std::optional<PrivateKey> {
		if (error) *error = std::move(why);
		return std::nullopt;
	};
	if (!sodium_ready()) return fail("libsodium initialisation failed");
	if (auto der_bytes = pem_block(pem, "PRIVATE KEY")) {
		// PKCS#8: Ed25519 is recognised by its fixed prefix; anything else
		// goes to mbedTLS (RSA).
		if (der_bytes->size() == 48 && std::memcmp(der_bytes->data(), ed25519_pkcs8_prefix, 16) == 0) {
			auto key = ed25519_from_seed(std::string_view(*der_bytes).substr(16));
			sodium_memzero(der_bytes->data(), der_bytes->size());
			return key;
		}
		sodium_memzero(der_bytes->data(), der_bytes->size());
	} else if (!pem_block(pem, "RSA PRIVATE KEY")) {
		return fail("no PEM \"PRIVATE KEY\" or \"RSA PRIVATE KEY\" block found");
	}
	auto impl = std::make_shared<PrivateKeyImpl>();
	std::string text(pem);  // mbedTLS wants PEM NUL-terminated, length with NUL
	int rc = mbedtls_pk_parse_key(&impl->pk, reinterpret_cast<const unsigned char*>(text.c_str()), text.size() + 1,
	                              nullptr, 0);
	sodium_memzero(text.data(), text.size());
	if (rc != 0) return fail("parsing private key: " + mbedtls_text(rc));
	if (mbedtls_pk_get_type(&impl->pk) != MBEDTLS_PK_RSA)
		return fail("unsupported private key type (need RSA or Ed25519)");
	// Every receiver would refuse its signatures (RFC 8301 3.2).
	if (size_t bits = mbedtls_pk_get_bitlen(&impl->pk); bits < static_cast<size_t>(min_rsa_bits))
		return fail("rsa key of " + std::to_string(bits) + " bits is too weak: receivers need at least " +
		            std::to_string(min_rsa_bits));
	impl->type = KeyType::rsa;
	PrivateKey key;
	key.impl_ = std::move(impl);
	return key;
}

std::optional<PrivateKey> load_private_key(const std::string& path, std::string* error) {
	std::ifstream in(path, std::ios::binary);
	if (!in) {
		if (error) *error = "cannot open " + path + ": " + std::strerror(errno);
		return std::nullopt;
	}
	std::stringstream ss;
	ss << in.rdbuf();
	std::string text = ss.str();
	std::string why;
	auto key = parse_private_key(text, &why);
	sodium_memzero(text.data(), text.size());
	if (!key && error) *error = path + ": " + why;
	return key;
}

std::optional<GeneratedKey> generate_key(KeyType type, int rsa_bits, std::string* error) {
	auto fail = [&](std::string why) -> std::optional<GeneratedKey> {
		if (error) *error = std::move(why);
		return std::nullopt;
	};
	if (!sodium_ready()) return fail("libsodium initialisation failed");
	GeneratedKey out;
	if (type == KeyType::ed25519) {
		unsigned char seed[32];
		randombytes_buf(seed, sizeof seed);
		std::string der_bytes(reinterpret_cast<const char*>(ed25519_pkcs8_prefix), 16);
		der_bytes.append(reinterpret_cast<char*>(seed), sizeof seed);
		auto key = ed25519_from_seed(std::string_view(reinterpret_cast<char*>(seed), sizeof seed));
		sodium_memzero(seed, sizeof seed);
		out.pem = pem_encode("PRIVATE KEY", der_bytes);
		sodium_memzero(der_bytes.data(), der_bytes.size());
		out.txt_record = key->txt_record();
		return out;
	}
	if (rsa_bits < min_rsa_bits || rsa_bits > 8192)
		return fail("rsa key size must be between " + std::to_string(min_rsa_bits) + " and 8192 bits");
	auto impl = std::make_shared<PrivateKeyImpl>();
	int rc = mbedtls_pk_setup(&impl->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
	if (rc == 0)
		rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(impl->pk), sodium_random, nullptr,
		                         static_cast<unsigned>(rsa_bits), 65537);
	if (rc != 0) return fail("generating rsa key: " + mbedtls_text(rc));
	// mbedTLS 2.28 writes PKCS#1 only; wrap it as PKCS#8 (RFC 5208 5).
	std::string buf(16384, '\0');
	int n = mbedtls_pk_write_key_der(&impl->pk, reinterpret_cast<unsigned char*>(buf.data()), buf.size());
	if (n <= 0) return fail("writing rsa key: " + mbedtls_text(n));
	std::string pkcs1 = buf.substr(buf.size() - n);
	sodium_memzero(buf.data(), buf.size());
	std::string info = std::string("\x02\x01\x00", 3) +
	    std::string(reinterpret_cast<const char*>(rsa_algorithm_id), sizeof rsa_algorithm_id) + der(0x04, pkcs1);
	std::string pkcs8 = der(0x30, info);
	out.pem = pem_encode("PRIVATE KEY", pkcs8);
	sodium_memzero(pkcs1.data(), pkcs1.size());
	sodium_memzero(info.data(), info.size());
	sodium_memzero(pkcs8.data(), pkcs8.size());
	impl->type = KeyType::rsa;
	PrivateKey key;
	key.impl_ = std::move(impl);
	out.txt_record = key.txt_record();
	return out;
}

}  // namespace tern::mailauth::dkim
