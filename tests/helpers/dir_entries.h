// Listing a directory the tests look into (data_dir/tmp, the queue, a
// Maildir's new/): shared by the unit, session and black-box tiers.
#pragma once
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace tern::testing {

// The names of the entries of `dir` ("." and ".." are not entries), in
// no particular order; none when it cannot be read.
inline std::vector<std::string> dir_entries(const std::string& dir) {
	std::vector<std::string> names;
	std::error_code ec;
	for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
		names.push_back(it->path().filename().string());
	return names;
}

}  // namespace tern::testing
