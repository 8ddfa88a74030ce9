// core/exit_deadline.h: a stop that cannot finish ends the process itself.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "core/exit_deadline.h"

namespace {

// Runs `body` in a child process; its exit status, or -1 when it did not
// end by itself within `within` (it is killed then).
template <class Body>
int child_exit_status(Body body, std::chrono::seconds within) {
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		body();
		_exit(0);
	}
	const auto until = std::chrono::steady_clock::now() + within;
	int status = 0;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (std::chrono::steady_clock::now() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("exit deadline: a step that outlasts it ends the process with status 1") {
	CHECK(child_exit_status(
		  [] {
			  tern::core::ExitDeadline deadline(0.2);
			  std::this_thread::sleep_for(std::chrono::seconds(30));  // a stuck worker
		  },
		  std::chrono::seconds(10)) == 1);
}

TEST_CASE("exit deadline: a step that finishes in time leaves the exit to the caller") {
	CHECK(child_exit_status(
		  [] {
			  tern::core::ExitDeadline deadline(5);
			  std::this_thread::sleep_for(std::chrono::milliseconds(50));
		  },
		  std::chrono::seconds(10)) == 0);
}
