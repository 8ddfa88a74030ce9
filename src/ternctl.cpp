// ternctl: administration and diagnostics for tern (man/ternctl.8).
// Global options come before the command. Exit status: 0 success, 1 a
// negative answer (for `check`: an invalid config), 2 a usage error or a
// config that cannot be loaded for another command.
#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "sasl/secrets.h"
#include "store/db.h"

using namespace tern;

namespace {

const char* usage_text =
    "usage: ternctl [-c FILE] [--dns IP[:PORT]] COMMAND [ARGS]\n"
    "commands:\n"
    "  check        validate the config (as ternd -n)\n"
    "  passwd ACCOUNT\n"
    "               set ACCOUNT's password, read as one line from stdin\n";

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

// Stores the derived secrets (never the password) of an account from the
// config; works while ternd runs, which joins the same DB environment and
// reads the secrets at the next login.
int cmd_passwd(const std::string& path, const std::string& account) {
	std::shared_ptr<const config::Config> cfg;
	try {
		cfg = config::Config::load_file(path);
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 2;
	}
	if (!cfg->accounts.count(account)) {
		std::cerr << "error: no such account: " << account << "\n";
		return 1;
	}
	std::string password;
	std::getline(std::cin, password);
	while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
	if (password.empty()) {
		std::cerr << "error: empty password\n";
		return 1;
	}
	try {
		std::string blob = sasl::StoredSecrets::derive(password).serialize();
		std::fill(password.begin(), password.end(), '\0');
		store::Env env(cfg->data_dir);
		env.set_password_secrets(account, blob);
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 1;
	}
	std::cout << "password updated for " << account << "\n";
	return 0;
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
	if (command == "passwd") return args.size() == 1 ? cmd_passwd(config_path, args[0]) : usage();
	std::cerr << "ternctl: unknown command: " << command << "\n";
	return usage();
}
