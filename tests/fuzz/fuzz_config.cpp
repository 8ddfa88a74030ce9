// Fuzzes the config loader (config/config.h Config::load_text): JSON with
// comments, then validation. The contract is a Config or a ConfigError that
// names the key path; any other exception, crash or sanitizer report is a
// bug. Relative paths resolve against a folder that does not exist, and the
// loader opens no TLS/DKIM files, so nothing touches the disk.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "fuzz/fuzz_common.h"

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	std::string text(reinterpret_cast<const char*>(data), size);
	try {
		auto config = config::Config::load_text(text, "/nonexistent/tern-fuzz/tern.json",
		                                        "/nonexistent/tern-fuzz");
		FUZZ_CHECK(config != nullptr);
		FUZZ_CHECK(!config->hostname.empty());
		std::string summary = config->summary();
		FUZZ_CHECK(summary.find("config ok") != std::string::npos);
	} catch (const config::ConfigError& e) {
		FUZZ_CHECK(e.what() != nullptr && *e.what() != '\0');
	}
	return 0;
}
