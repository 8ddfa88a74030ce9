// Temp directories and small file helpers shared by the unit tests that
// touch the disk (Maildir, database, TLS keys, log files).
#pragma once
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tern::testing {

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
	std::string path;
	TempDir() {
		char pattern[] = "/tmp/tern-unit-test-XXXXXX";
		REQUIRE(::mkdtemp(pattern) != nullptr);
		path = pattern;
	}
	~TempDir() {
		std::error_code ec;
		std::filesystem::remove_all(path, ec);
	}
	TempDir(const TempDir&) = delete;
	TempDir& operator=(const TempDir&) = delete;
};

inline void write_file(const std::string& path, const std::string& content) {
	std::ofstream out(path, std::ios::binary);
	out << content;
}

inline std::string read_file(const std::string& path) {
	std::ifstream in(path, std::ios::binary);
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

}  // namespace tern::testing
