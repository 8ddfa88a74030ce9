// See syscall_trace.h.
#include "syscall_trace.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "helpers/daemon.h"

namespace tern::bench {

using tern::testing::make_temp_dir;
using tern::testing::read_file;
using tern::testing::remove_tree;

SyscallTrace::SyscallTrace() : dir_(make_temp_dir("tern-bench-strace-")) {}

SyscallTrace::~SyscallTrace() {
	if (strace_ > 0) stop();
	// TERN_BENCH_KEEP_TRACE=1 keeps the traces to read (their folder is
	// printed).
	if (const char* keep = std::getenv("TERN_BENCH_KEEP_TRACE"); keep && *keep == '1')
		std::printf("  strace output kept in %s\n", dir_.c_str());
	else
		remove_tree(dir_);
}

std::string SyscallTrace::start(pid_t pid) {
	if (access("/usr/bin/strace", X_OK) != 0) return "strace is not installed (Debian package strace)";
	traced_ = pid;
	strace_ = tern::testing::spawn_child(
	    {"/usr/bin/strace", "-f", "-ff", "-qq", "-y", "-o", dir_ + "/t", "-p", std::to_string(pid)}, dir_ + "/log");
	if (strace_ < 0) return "cannot run strace";
	// strace attaches every thread before it traces; its first file per
	// thread tells it has begun.
	for (int i = 0; i < 100; i++) {
		DIR* d = opendir(dir_.c_str());
		size_t files = 0;
		while (dirent* e = d ? readdir(d) : nullptr)
			if (e->d_name[0] == 't') files++;
		if (d) closedir(d);
		if (files > 0) {
			usleep(200 * 1000);
			return "";
		}
		usleep(50 * 1000);
	}
	return "strace did not attach: " + read_file(dir_ + "/log");
}

namespace {

std::string thread_name(pid_t pid, const std::string& tid) {
	std::string name = read_file("/proc/" + std::to_string(pid) + "/task/" + tid + "/comm");
	if (!name.empty() && name.back() == '\n') name.pop_back();
	return name.empty() ? "(gone)" : name;
}

// One thread's trace: a call per line, "name(args) = result"; signals
// ("--- ") and exits ("+++ ") are no calls.
void count_file(const std::string& path, std::map<std::string, uint64_t>& into) {
	std::ifstream in(path);
	std::string line;
	while (std::getline(in, line)) {
		if (line.empty() || line[0] == '-' || line[0] == '+' || line[0] == '<') continue;
		size_t paren = line.find('(');
		if (paren == std::string::npos || paren == 0) continue;
		into[line.substr(0, paren)]++;
	}
}

}  // namespace

SyscallCounts SyscallTrace::stop() {
	SyscallCounts out;
	if (strace_ <= 0) return out;
	// SIGTERM makes strace detach and leave the process running.
	tern::testing::stop_child(strace_);
	DIR* d = opendir(dir_.c_str());
	while (dirent* e = d ? readdir(d) : nullptr) {
		std::string file = e->d_name;
		if (file.rfind("t.", 0) != 0) continue;
		count_file(dir_ + "/" + file, out[thread_name(traced_, file.substr(2))]);
	}
	if (d) closedir(d);
	return out;
}

std::string format_per_message(const SyscallCounts& counts, uint64_t messages) {
	if (messages == 0) return "  no message delivered while tracing\n";
	std::string text;
	char buf[96];
	for (const auto& [thread, calls] : counts) {
		uint64_t total = 0;
		std::vector<std::pair<uint64_t, std::string>> sorted;
		for (const auto& [call, n] : calls) {
			total += n;
			sorted.emplace_back(n, call);
		}
		std::sort(sorted.rbegin(), sorted.rend());
		std::snprintf(buf, sizeof buf, "  %-12s %6.2f per message:", thread.c_str(),
		              double(total) / double(messages));
		text += buf;
		for (const auto& [n, call] : sorted) {
			if (n * 20 < messages) continue;
			std::snprintf(buf, sizeof buf, " %s %.2f", call.c_str(), double(n) / double(messages));
			text += buf;
		}
		text += "\n";
	}
	return text;
}

}  // namespace tern::bench
