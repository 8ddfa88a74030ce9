#include "core/exit_deadline.h"

#include <unistd.h>

#include <chrono>
#include <string>

#include "util/log.h"

namespace tern::core {

ExitDeadline::ExitDeadline(double seconds)
	: thread_([this, seconds] {
		  std::unique_lock lock(mu_);
		  if (cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; })) return;
		  log::error("stopping: worker threads still busy, exiting without them",
	                     {{"waited_s", std::to_string(static_cast<int>(seconds))}});
		  ::_exit(1);
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
