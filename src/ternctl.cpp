// ternctl: administration and diagnostics for tern (man/ternctl.8).
// Global options come before the command. Exit status: 0 success, 1 a
// negative answer (for `check`: an invalid config), 2 a usage error or a
// config that cannot be loaded for another command.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.h"

using namespace tern;

namespace {

const char* usage_text =
    "usage: ternctl [-c FILE] [--dns IP[:PORT]] COMMAND [ARGS]\n"
    "commands:\n"
    "  check        validate the config (as ternd -n)\n";

int usage() {
	std::cerr << usage_text;
	return 2;
}

int cmd_check(const std::string& path) {
	try {
		auto cfg = config::Config::load_file(path);
		std::cout << cfg->summary();
		return 0;
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 1;
	}
}

}  // namespace

int main(int argc, char** argv) {
	std::string config_path = TERN_SYSCONFDIR "/tern/tern.json";
	std::string dns;
	int i = 1;
	for (; i < argc; ++i) {
		std::string a = argv[i];
		if ((a == "-c" || a == "--config") && i + 1 < argc) {
			config_path = argv[++i];
		} else if (a == "--dns" && i + 1 < argc) {
			dns = argv[++i];
		} else if (a == "-h" || a == "--help") {
			std::cout << usage_text;
			return 0;
		} else if (a == "-V" || a == "--version") {
			std::cout << "ternctl " TERN_VERSION "\n";
			return 0;
		} else if (!a.empty() && a[0] == '-') {
			return usage();
		} else {
			break;
		}
	}
	if (i >= argc) return usage();
	std::string command = argv[i++];
	std::vector<std::string> args(argv + i, argv + argc);
	if (command == "check" && args.empty()) return cmd_check(config_path);
	std::cerr << "ternctl: unknown command: " << command << "\n";
	return usage();
}
