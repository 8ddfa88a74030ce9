#include "core/exit_deadline.h"

#include <unistd.h>

#include <chrono>
#include <string>

#include "util/log.h"

namespace tern::core {

namespace {

[[noreturn]] void exit_without_threads(double waited_s) {
	// The log line may itself wait (on the log's lock, held by a thread
	// stuck writing to a log on the same dead file system): the exit does
	// not depend on it.
	std::thread([] {
		std::this_thread::sleep_for(std::chrono::seconds(ExitDeadline::log_grace_s));
		::_exit(1);
	}).detach();
	log::error("stopping: worker threads still busy, exiting without them",
	           {{"waited_s", std::to_string(static_cast<int>(waited_s))}});
	::_exit(1);
}

}  // namespace

ExitDeadline::ExitDeadline(double seconds)
	: thread_([this, seconds] {
		  std::unique_lock lock(mu_);
		  if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; }))
			  exit_without_threads(seconds);
	  }) {}

ExitDeadline::~ExitDeadline() {
	{
		std::lock_guard lock(mu_);
		done_ = true;
	}
	cv_.notify_one();
	thread_.join();
}

}  // namespace tern::core
