// System calls per delivered message, by thread (`tern-bench --syscalls`):
// strace follows every thread of ternd while one load runs, one output file
// per thread; the counts are summed by thread name ("ternd" is the loop,
// "tern-worker" and "tern-disk" the pools). strace slows the server down a
// lot, so the rates of such a run mean nothing; the counts per message are
// what it is for.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace tern::bench {

// thread name -> system call name -> calls
using SyscallCounts = std::map<std::string, std::map<std::string, uint64_t>>;

class SyscallTrace {
public:
	SyscallTrace();
	~SyscallTrace();
	SyscallTrace(const SyscallTrace&) = delete;
	SyscallTrace& operator=(const SyscallTrace&) = delete;

	// Attaches strace to every thread of pid; "" when it runs, else why not.
	std::string start(pid_t pid);
	// Detaches and counts what each thread called meanwhile.
	SyscallCounts stop();

private:
	std::string dir_;
	pid_t traced_ = 0;
	pid_t strace_ = -1;
};

// The counts divided by messages, one line per thread name: the total,
// then each call that happened at least once per 20 messages, most
// frequent first.
std::string format_per_message(const SyscallCounts& counts, uint64_t messages);

}  // namespace tern::bench
