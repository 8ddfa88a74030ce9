#include "util/hex.h"

namespace tern {

std::string hex_lower(std::string_view bytes) {
	static constexpr char digits[] = "0123456789abcdef";
	std::string out;
	out.reserve(bytes.size() * 2);
	for (unsigned char c : bytes) {
		out.push_back(digits[c >> 4]);
		out.push_back(digits[c & 0x0f]);
	}
	return out;
}

}  // namespace tern
