// Cryptographically strong random bytes from the kernel (getrandom(2)), for
// salts, nonces, keys, Message-Ids and MIME boundaries.
#pragma once
#include <cstddef>
#include <string>

namespace tern {

// Throws std::runtime_error when the kernel refuses.
std::string random_bytes(std::size_t n);

}  // namespace tern

namespace tern {

// `n` random bytes as 2n lower-case hex digits (file names, boundaries).
std::string random_hex(std::size_t n);

}  // namespace tern

namespace tern {

// A small, fast generator for jitter and sampling (nothing secret): a
// UniformRandomBitGenerator for the <random> distributions. Its state is
// one word per thread, seeded from the kernel on first use. (A
// thread_local std::mt19937 is 5 KB in every thread's static TLS block,
// zeroed, hence resident, at each thread's start, whether or not the
// thread ever draws a number.)
struct FastRandom {
	using result_type = unsigned long long;
	static constexpr result_type min() { return 0; }
	static constexpr result_type max() { return ~0ULL; }
	result_type operator()();
};

}  // namespace tern
