// SHA-256 (util/sha256.h): the FIPS 180-4 example vectors and a
// differential test against mbedTLS, on the SHA-extension path (where the
// CPU has it) and on the portable path.
#include <doctest/doctest.h>
#include <mbedtls/sha256.h>

#include <random>
#include <string>

#include "util/hex.h"
#include "util/sha256.h"

using tern::Sha256;

namespace {

std::string hex_of(const Sha256::Digest& d) { return tern::hex_lower(Sha256::view(d)); }

std::string mbedtls_hex(const std::string& data) {
	unsigned char out[32];
	mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, 0);
	return tern::hex_lower(std::string_view(reinterpret_cast<const char*>(out), sizeof out));
}

// Restores the start-up choice of block function at the end of a test.
struct PathChoice {
	explicit PathChoice(bool portable) { tern::sha256_force_portable(portable); }
	~PathChoice() { tern::sha256_force_portable(false); }
};

// Runs `check` on the portable path and, where the CPU has the SHA
// extensions, on the accelerated path.
template <typename Check>
void on_both_paths(Check check) {
	{
		PathChoice portable(true);
		CHECK_FALSE(tern::sha256_accelerated_in_use());
		check();
	}
	if (!tern::sha256_accelerated_available()) {
		MESSAGE("this CPU has no SHA extensions: the accelerated SHA-256 path is not tested here");
		return;
	}
	PathChoice accelerated(false);
	CHECK(tern::sha256_accelerated_in_use());
	check();
}

// FIPS 180-4 examples (NIST CSRC "SHA256.pdf" example values).
void check_fips_vectors() {
	CHECK(hex_of(Sha256::of("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(hex_of(Sha256::of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	CHECK(hex_of(Sha256::of("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	// One million 'a', fed in pieces of 1000.
	Sha256 hasher;
	const std::string thousand(1000, 'a');
	for (int i = 0; i < 1000; ++i) hasher.update(thousand);
	CHECK(hex_of(hasher.finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Random messages of every length class, hashed in random pieces, against
// mbedTLS's one-shot hash.
void check_against_mbedtls() {
	std::mt19937 rng(20261203);
	std::uniform_int_distribution<int> byte(0, 255);
	std::vector<size_t> lengths = {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129};
	std::uniform_int_distribution<size_t> any_length(0, 5000);
	for (int i = 0; i < 400; ++i) lengths.push_back(any_length(rng));
	Sha256 hasher;  // reused: finish() must start it over
	for (size_t length : lengths) {
		std::string data(length, '\0');
		for (char& c : data) c = static_cast<char>(byte(rng));
		size_t pos = 0;
		while (pos < length) {
			std::uniform_int_distribution<size_t> piece(0, std::min<size_t>(length - pos, 200));
			size_t n = piece(rng);
			hasher.update(std::string_view(data).substr(pos, n));
			pos += n;
		}
		INFO("length " << length);
		REQUIRE(hex_of(hasher.finish()) == mbedtls_hex(data));
		REQUIRE(hex_of(Sha256::of(data)) == mbedtls_hex(data));
	}
}

}  // namespace

TEST_CASE("sha256: FIPS 180-4 example vectors") { on_both_paths(check_fips_vectors); }

TEST_CASE("sha256: same digests as mbedTLS for random lengths and split points") {
	on_both_paths(check_against_mbedtls);
}

TEST_CASE("sha256: the start-up choice follows the CPU") {
	CHECK(tern::sha256_accelerated_in_use() == tern::sha256_accelerated_available());
}
