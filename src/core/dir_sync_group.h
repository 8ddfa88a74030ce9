// Group commit of directory fsyncs, run by the disk threads themselves
// (doc/design.md "Worker pool"). A disk thread that has renamed a message's
// copies into their folders calls sync() with the directories it touched
// and waits there: the directories of every caller that joined the same
// round are fsync'd once each, by the first of them that finds a free slot
// (at most `max_in_flight` rounds sync at a time). Callers that come while
// the slots are busy join the next round, so a round grows with the load,
// and a lone caller on an idle server syncs at once, with no timer.
//
// Compared with sending each finished message back to the loop to be
// batched there, a message costs the loop one wake-up instead of two and no
// second job hand-off.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "store/maildir.h"

namespace tern::core {

class DirSyncGroup {
public:
	// fsyncs one directory; throws std::exception with the reason on failure.
	using SyncOne = std::function<void(const std::string& dir)>;
	using Failures = store::DirSyncFailures;  // directory -> reason

	explicit DirSyncGroup(SyncOne sync_one, size_t max_in_flight = 2);
	DirSyncGroup(const DirSyncGroup&) = delete;
	DirSyncGroup& operator=(const DirSyncGroup&) = delete;

	// Blocks until each of `dirs` has been fsync'd by a round that started
	// after this call; returns the failures among `dirs` (empty: durable).
	// Disk threads only: it waits on the disk.
	Failures sync(const std::set<std::string>& dirs);

	// Callers gathered in the round that has not started yet.
	size_t callers_waiting();

private:
	struct Round {
		std::set<std::string> dirs;
		Failures failures;
		size_t callers = 0;
		bool done = false;
		std::condition_variable finished;
	};
	void lead(std::unique_lock<std::mutex>& lock, Round& round);

	SyncOne sync_one_;
	const size_t max_in_flight_;
	std::mutex mu_;
	// The round new callers join; it starts when one of them finds a slot.
	std::shared_ptr<Round> open_;
	size_t in_flight_ = 0;
};

}  // namespace tern::core
