#include "core/dir_sync_group.h"

#include <exception>

#include "store/maildir.h"
#include "util/log.h"

namespace tern::core {

DirSyncGroup::DirSyncGroup(SyncOne sync_one, size_t max_in_flight)
	: sync_one_(std::move(sync_one)), max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight) {}

DirSyncGroup::Failures DirSyncGroup::sync(const std::set<std::string>& dirs) {
	if (dirs.empty()) return {};
	std::unique_lock lock(mu_);
	if (!open_) open_ = std::make_shared<Round>();
	// Held by every caller of the round, so it outlives the last of them.
	std::shared_ptr<Round> round = open_;
	round->dirs.insert(dirs.begin(), dirs.end());
	++round->callers;
	while (!round->done) {
		// The round has not started yet: a free slot makes this caller the
		// one that syncs it, for everyone who joined so far.
		if (round == open_ && in_flight_ < max_in_flight_) {
			lead(lock, *round);
			break;
		}
		round->finished.wait(lock);
	}
	Failures mine;
	for (const std::string& dir : dirs)
		if (auto f = round->failures.find(dir); f != round->failures.end()) mine.insert(*f);
	return mine;
}

size_t DirSyncGroup::callers_waiting() {
	std::lock_guard lock(mu_);
	return open_ ? open_->callers : 0;
}

// Called with the lock held; syncs without it, so that later callers can
// join the next round meanwhile.
void DirSyncGroup::lead(std::unique_lock<std::mutex>& lock, Round& round) {
	open_.reset();
	++in_flight_;
	const size_t in_flight = in_flight_;
	lock.unlock();
	// Every rename of every caller returned before it joined, so these
	// fsyncs cover them all.
	// Whatever happens, the round ends: its callers wait for it.
	round.failures = store::sync_each_dir(round.dirs, sync_one_);
	// How well the group commit groups: messages per directory fsync. A
	// line that cannot be written must not keep the round from ending.
	try {
		if (log::enabled(log::Level::debug))
			log::debug("maildir directories synced",
			           {{"messages", std::to_string(round.callers)},
			            {"directories", std::to_string(round.dirs.size())},
			            {"in_flight", std::to_string(in_flight)}});
	} catch (...) {
	}
	lock.lock();
	round.done = true;
	--in_flight_;
	round.finished.notify_all();
	// A slot is free: one caller of the round that gathered meanwhile
	// starts it (the others keep waiting for its end).
	if (open_) open_->finished.notify_one();
}

}  // namespace tern::core
