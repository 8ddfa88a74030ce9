#include "util/sha256.h"

#include <cpuid.h>
#include <immintrin.h>
#include <mbedtls/sha256.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

namespace tern {

namespace {

// Processes `count` consecutive 64-byte blocks into `state` (a..h).
using BlockFunction = void (*)(uint32_t* state, const unsigned char* blocks, size_t count);

// FIPS 180-4 5.3.3: the initial hash value.
constexpr uint32_t initial_state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

// FIPS 180-4 4.2.2: the round constants.
alignas(16) constexpr uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// The portable path: mbedTLS's block function, run on a context that holds
// only our state.
void portable_blocks(uint32_t* state, const unsigned char* blocks, size_t count) {
	mbedtls_sha256_context ctx;
	mbedtls_sha256_init(&ctx);
	std::memcpy(ctx.state, state, sizeof ctx.state);
	for (size_t i = 0; i < count; ++i) mbedtls_internal_sha256_process(&ctx, blocks + i * Sha256::block_size);
	std::memcpy(state, ctx.state, sizeof ctx.state);
	mbedtls_sha256_free(&ctx);
}

// The SHA extensions work on the state split in two registers, {A,B,E,F}
// and {C,D,G,H}, A and C in the highest lane; SHA256RNDS2 does two rounds
// (W+K of both in the low half of its third operand) and returns the new
// {A,B,E,F}, the old one being the new {C,D,G,H}.
__attribute__((target("sha,sse4.1"))) void accelerated_blocks(uint32_t* state, const unsigned char* blocks,
                                                              size_t count) {
	// Lanes {a,b,c,d} and {e,f,g,h} (a in lane 0) to {F,E,B,A} and {H,G,D,C}.
	__m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0xB1);
	__m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4)), 0x1B);
	__m128i abef = _mm_alignr_epi8(abcd, efgh, 8);
	__m128i cdgh = _mm_blend_epi16(efgh, abcd, 0xF0);
	// FIPS 180-4 3.1: words are big-endian; this swaps the bytes of each lane.
	const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	for (size_t b = 0; b < count; ++b, blocks += Sha256::block_size) {
		const __m128i abef_start = abef;
		const __m128i cdgh_start = cdgh;
		// w[i % 4] holds W[4i..4i+3] (FIPS 180-4 6.2.2 step 1).
		__m128i w[4];
#pragma GCC unroll 16
		for (int i = 0; i < 16; ++i) {
			__m128i& words = w[i % 4];
			if (i < 4) {
				words = _mm_shuffle_epi8(
				    _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 16 * i)), byte_swap);
			} else {
				// W[t-16] + sigma0(W[t-15]), plus W[t-7], then sigma1(W[t-2]).
				const __m128i& previous = w[(i + 3) % 4];  // W[t-4..t-1]
				__m128i sum = _mm_add_epi32(_mm_sha256msg1_epu32(words, w[(i + 1) % 4]),
				                            _mm_alignr_epi8(previous, w[(i + 2) % 4], 4));
				words = _mm_sha256msg2_epu32(sum, previous);
			}
			__m128i wk = _mm_add_epi32(
			    words, _mm_load_si128(reinterpret_cast<const __m128i*>(round_constants + 4 * i)));
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
			std::swap(abef, cdgh);
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, _mm_shuffle_epi32(wk, 0x0E));
			std::swap(abef, cdgh);
		}
		// FIPS 180-4 6.2.2 step 4.
		abef = _mm_add_epi32(abef, abef_start);
		cdgh = _mm_add_epi32(cdgh, cdgh_start);
	}
	// Back to {a,b,c,d} and {e,f,g,h}.
	__m128i feba = _mm_shuffle_epi32(abef, 0x1B);  // lanes a,b,e,f
	__m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);  // lanes g,h,c,d
	_mm_storeu_si128(reinterpret_cast<__m128i*>(state), _mm_blend_epi16(feba, dchg, 0xF0));
	_mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), _mm_alignr_epi8(dchg, feba, 8));
}

// Read from CPUID rather than __builtin_cpu_supports("sha"): clang 14 (the
// fuzz build) has no "sha" feature name. Intel SDM vol. 2A, CPUID: leaf 1
// ECX bit 19 is SSE4.1, leaf 7 subleaf 0 EBX bit 29 the SHA extensions.
bool cpu_has_sha_extensions() {
	unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 19))) return false;
	if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
	return (ebx & (1u << 29)) != 0;
}

BlockFunction startup_choice() { return cpu_has_sha_extensions() ? accelerated_blocks : portable_blocks; }

std::atomic<BlockFunction> block_function{startup_choice()};

void process_blocks(uint32_t* state, const unsigned char* blocks, size_t count) {
	block_function.load(std::memory_order_relaxed)(state, blocks, count);
}

}  // namespace

Sha256::Sha256() { reset(); }

void Sha256::reset() {
	std::memcpy(state_, initial_state, sizeof state_);
	length_ = 0;
	filled_ = 0;
}

void Sha256::update(std::string_view bytes) { update(bytes.data(), bytes.size()); }

void Sha256::update(const void* bytes, size_t size) {
	if (size == 0) return;  // also when `bytes` is null, as in an empty string_view
	const auto* in = static_cast<const unsigned char*>(bytes);
	length_ += size;
	if (filled_ > 0) {
		size_t take = std::min(size, block_size - filled_);
		std::memcpy(block_ + filled_, in, take);
		filled_ += take;
		in += take;
		size -= take;
		if (filled_ < block_size) return;
		process_blocks(state_, block_, 1);
		filled_ = 0;
	}
	// Whole blocks straight from the caller's buffer, no copy.
	size_t whole = size / block_size;
	if (whole > 0) process_blocks(state_, in, whole);
	in += whole * block_size;
	size -= whole * block_size;
	std::memcpy(block_, in, size);
	filled_ = size;
}

Sha256::Digest Sha256::finish() {
	// FIPS 180-4 5.1.1: a 1 bit, zeros up to 56 bytes into a block, then
	// the message length in bits as a 64-bit big-endian number.
	const uint64_t bits = length_ * 8;
	block_[filled_++] = 0x80;
	if (filled_ > block_size - 8) {
		std::memset(block_ + filled_, 0, block_size - filled_);
		process_blocks(state_, block_, 1);
		filled_ = 0;
	}
	std::memset(block_ + filled_, 0, block_size - 8 - filled_);
	for (int i = 0; i < 8; ++i) block_[block_size - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
	process_blocks(state_, block_, 1);
	Digest out;
	for (size_t i = 0; i < 8; ++i)
		for (size_t j = 0; j < 4; ++j) out[4 * i + j] = static_cast<unsigned char>(state_[i] >> (24 - 8 * j));
	reset();
	return out;
}

Sha256::Digest Sha256::of(std::string_view bytes) {
	Sha256 hasher;
	hasher.update(bytes);
	return hasher.finish();
}

bool sha256_accelerated_available() { return cpu_has_sha_extensions(); }

bool sha256_accelerated_in_use() { return block_function.load() == accelerated_blocks; }

void sha256_force_portable(bool portable) { block_function.store(portable ? portable_blocks : startup_choice()); }

}  // namespace tern
