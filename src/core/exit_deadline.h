// A deadline for the last step of a stop: once the event loop has ended,
// ternd waits for its worker and disk threads to finish what they were
// handed. A thread stuck in a system call (a file system that does not
// answer, a device put where a file was expected) would make that wait,
// and so SIGTERM, last for ever; an init script's stop would hang.
//
// Exiting without the stuck thread is safe for the durability promise:
// nothing it was doing has been acknowledged yet (a 250 follows only a
// finished write), a partial Maildir file stays in tmp/ where the next
// start removes it, and the database's log recovers any transaction that
// was not committed (doc/design.md, Storage).
#pragma once
#include <condition_variable>
#include <mutex>
#include <thread>

namespace tern::core {

class ExitDeadline {
public:
	// After `seconds`, unless destroyed before, logs an error and ends the
	// process at once with exit status 1.
	explicit ExitDeadline(double seconds);
	~ExitDeadline();
	ExitDeadline(const ExitDeadline&) = delete;
	ExitDeadline& operator=(const ExitDeadline&) = delete;

	// How long the log line that says so may take before the exit.
	static constexpr int log_grace_s = 5;

private:
	std::mutex mu_;
	std::condition_variable cv_;
	bool done_ = false;
	std::thread thread_;
};

}  // namespace tern::core
