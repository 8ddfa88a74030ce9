// Running ternctl (and other programs) from the black-box tests with stdin
// fed from a string and stdout/stderr captured apart: scripts rely on
// ternctl's stdout format, so the tests look at stdout alone.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "helpers/daemon.h"

extern char** environ;

namespace tern::testing {

struct ProgramResult {
	int exit_code = -1;  // -1: killed by a signal or timed out
	std::string out;     // stdout
	std::string err;     // stderr
	std::string both() const { return out + err; }
};

// Runs argv[0] (a path) with `stdin_data` on stdin, ≤ timeout_ms.
inline ProgramResult run_program(const std::vector<std::string>& argv, const std::string& stdin_data = "",
                                 int timeout_ms = 20000) {
	ProgramResult result;
	std::string dir = make_temp_dir("tern-run-");
	std::string in_path = dir + "/stdin", out_path = dir + "/stdout", err_path = dir + "/stderr";
	write_file(in_path, stdin_data);

	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	std::vector<char*> args;
	for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
	args.push_back(nullptr);
	pid_t pid = -1;
	int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
	posix_spawn_file_actions_destroy(&actions);
	if (rc != 0) {
		result.err = "posix_spawn failed for " + argv[0];
		remove_tree(dir);
		return result;
	}
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	int status = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) break;
		if (std::chrono::steady_clock::now() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			status = -1;
			break;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(2));
	}
	if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
	result.out = read_file(out_path);
	result.err = read_file(err_path);
	remove_tree(dir);
	return result;
}

// <repo>/src/ternctl
inline std::string ternctl_path() { return repo_root() + "/src/ternctl"; }

// `ternctl ARGS...`
inline ProgramResult run_ternctl(const std::vector<std::string>& args, const std::string& stdin_data = "",
                                 int timeout_ms = 20000) {
	std::vector<std::string> argv{ternctl_path()};
	argv.insert(argv.end(), args.begin(), args.end());
	return run_program(argv, stdin_data, timeout_ms);
}

// Debian's interpreter (not a pyenv shim), where python3-spf and
// python3-dkim are installed (contrib/debian-packages.txt).
inline const char* debian_python() { return "/usr/bin/python3"; }

}  // namespace tern::testing
