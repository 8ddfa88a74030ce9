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
