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
