#include "util/hex.h"
#include "util/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tern {

std::string random_bytes(std::size_t n) {
	std::string out(n, '\0');
	std::size_t got = 0;
	while (got < n) {
		ssize_t r = ::getrandom(out.data() + got, n - got, 0);
		if (r < 0) {
			if (errno == EINTR) continue;
			throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
		}
		got += static_cast<std::size_t>(r);
	}
	return out;
}

}  // namespace tern

namespace tern {

std::string random_hex(std::size_t n) { return hex_lower(random_bytes(n)); }

}  // namespace tern

namespace tern {

// splitmix64: a 64-bit counter through a mixing function, every output
// value once per period of 2^64.
FastRandom::result_type FastRandom::operator()() {
	thread_local unsigned long long state = 0;
	thread_local bool seeded = false;
	if (!seeded) {
		std::string seed = random_bytes(sizeof state);
		std::memcpy(&state, seed.data(), sizeof state);
		seeded = true;
	}
	unsigned long long z = (state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

}  // namespace tern
