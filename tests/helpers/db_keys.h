// Database keys the tests write by hand (a damaged record put under its
// id): header-only, for the unit tests, which link no helper objects.
#pragma once
#include <cstdint>
#include <string>

namespace tern::testing {

// An 8-byte big-endian id, the key of a queue or history record
// (store/db.cpp, store/history.cpp).
inline std::string be64_key(uint64_t id) {
	std::string key;
	for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>((id >> shift) & 0xff));
	return key;
}

}  // namespace tern::testing
