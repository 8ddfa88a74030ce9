// Temp directories and small file helpers shared by the unit tests that
// touch the disk (Maildir, database, TLS keys, log files).
#pragma once
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "util/log.h"

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

// Sends the log (at `level` and above) to the file at `path` while it
// lives, then to stderr at the level it had before. Restored by the
// destructor so that a failed REQUIRE, which leaves the test at once,
// cannot leave the sink on a file (often in a removed temp directory) and
// the level changed for every later test.
class LogToFile {
public:
	LogToFile(const std::string& path, tern::log::Level level) {
		REQUIRE(tern::log::set_sink(tern::log::Sink::file, path));
		tern::log::set_level(level);
	}
	~LogToFile() {
		tern::log::set_sink(tern::log::Sink::stderr_sink);
		tern::log::set_level(saved_level_);
	}
	LogToFile(const LogToFile&) = delete;
	LogToFile& operator=(const LogToFile&) = delete;

private:
	const tern::log::Level saved_level_ = tern::log::level();
};

// The log at info level and above, in a file of a temp directory of its
// own while it lives.
struct TempLog {
	TempDir dir;
	std::string path = dir.path + "/ternd.log";
	LogToFile to_file{path, tern::log::Level::info};
	std::string text() const { return read_file(path); }
};

}  // namespace tern::testing
