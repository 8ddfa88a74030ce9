// DirSyncGroup: the disk threads' shared directory fsyncs. Every caller
// returns only after each of its directories was synced by a round that
// started after it called; callers that come while the slots are busy share
// one round; a failure reaches only the callers of that directory.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/dir_sync_group.h"

using tern::core::DirSyncGroup;

namespace {

// Records every sync, and can hold the syncs until released.
struct Disk {
	std::mutex mu;
	std::condition_variable cv;
	bool held = false;
	int entered = 0;  // syncs started, held or not
	std::map<std::string, int> syncs;
	std::set<std::string> failing;

	void sync(const std::string& dir) {
		std::unique_lock lock(mu);
		++entered;
		cv.wait(lock, [&] { return !held; });
		++syncs[dir];
		if (failing.count(dir)) throw std::runtime_error("fsync " + dir + ": Input/output error");
	}
	void hold() {
		std::lock_guard lock(mu);
		held = true;
	}
	void release() {
		{
			std::lock_guard lock(mu);
			held = false;
		}
		cv.notify_all();
	}
	int started() {
		std::lock_guard lock(mu);
		return entered;
	}
	int count(const std::string& dir) {
		std::lock_guard lock(mu);
		return syncs[dir];
	}
};

// Polls `ready` for at most 10 s (the threads under test only need to reach
// a mutex); false when it never held.
template <class F>
bool eventually(F ready) {
	for (int i = 0; i < 10000; ++i) {
		if (ready()) return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	return false;
}

}  // namespace

TEST_CASE("dir_sync_group: a lone caller syncs each of its directories at once") {
	Disk disk;
	DirSyncGroup group([&](const std::string& d) { disk.sync(d); });
	CHECK(group.sync({"/m/new", "/m/.Junk/new"}).empty());
	CHECK(disk.count("/m/new") == 1);
	CHECK(disk.count("/m/.Junk/new") == 1);
	CHECK(group.sync({}).empty());  // nothing to sync: no round
	CHECK(disk.count("/m/new") == 1);
	CHECK(group.callers_waiting() == 0);
}

TEST_CASE("dir_sync_group: a failing directory fails only the callers that touched it") {
	Disk disk;
	disk.failing = {"/bad/new"};
	DirSyncGroup group([&](const std::string& d) { disk.sync(d); });
	DirSyncGroup::Failures f = group.sync({"/bad/new", "/good/new"});
	REQUIRE(f.size() == 1);
	CHECK(f.begin()->first == "/bad/new");
	CHECK(f.begin()->second.find("Input/output error") != std::string::npos);
	CHECK(group.sync({"/good/new"}).empty());
}

TEST_CASE("dir_sync_group: callers that come while the slot is busy share the next round") {
	Disk disk;
	DirSyncGroup group([&](const std::string& d) { disk.sync(d); }, 1);
	disk.hold();
	DirSyncGroup::Failures first_result;
	std::thread first([&] { first_result = group.sync({"/a/new"}); });
	// The first caller leads its round and waits in the held fsync.
	REQUIRE(eventually([&] { return disk.started() == 1; }));
	const std::vector<std::set<std::string>> later = {{"/a/new"}, {"/a/new"}, {"/b/new"}, {"/a/new", "/b/new"}};
	std::vector<DirSyncGroup::Failures> results(later.size());
	std::vector<std::thread> threads;
	for (size_t i = 0; i < later.size(); ++i) threads.emplace_back([&, i] { results[i] = group.sync(later[i]); });
	// No slot is free: all four gather in the next round.
	REQUIRE(eventually([&] { return group.callers_waiting() == later.size(); }));
	disk.release();
	first.join();
	for (auto& t : threads) t.join();
	CHECK(first_result.empty());
	for (const auto& r : results) CHECK(r.empty());
	// One sync of /a/new for the first caller, one each for the round of four.
	CHECK(disk.count("/a/new") == 2);
	CHECK(disk.count("/b/new") == 1);
	CHECK(group.callers_waiting() == 0);
}

TEST_CASE("dir_sync_group: under load every caller's directory is synced after it called") {
	// Each caller takes a ticket on entry; each sync records the ticket
	// count when it started. A caller is covered when some sync of its
	// directory started after its ticket and ended before it returned.
	std::mutex mu;
	std::atomic<int> tickets{0};
	std::map<std::string, std::vector<std::pair<int, int>>> sync_spans;  // dir -> (started at, ended at)
	std::atomic<int> clock{0};
	DirSyncGroup group(
	    [&](const std::string& d) {
		    int start = tickets.load();
		    std::this_thread::sleep_for(std::chrono::microseconds(200));
		    int end = ++clock;
		    std::lock_guard lock(mu);
		    sync_spans[d].push_back({start, end});
	    },
	    2);
	struct Call {
		std::string dir;
		int ticket;
		int returned_at;
	};
	std::vector<Call> calls;
	std::vector<std::thread> threads;
	for (int t = 0; t < 8; ++t)
		threads.emplace_back([&, t] {
			for (int i = 0; i < 40; ++i) {
				std::string dir = "/d" + std::to_string((t + i) % 3);
				int ticket = ++tickets;
				DirSyncGroup::Failures f = group.sync({dir});
				int returned = clock.load();
				CHECK(f.empty());
				std::lock_guard lock(mu);
				calls.push_back({dir, ticket, returned});
			}
		});
	for (auto& t : threads) t.join();
	REQUIRE(calls.size() == 320);
	size_t covered = 0;
	size_t total_syncs = 0;
	for (const auto& [dir, spans] : sync_spans) total_syncs += spans.size();
	for (const Call& c : calls) {
		for (const auto& [start, end] : sync_spans[c.dir]) {
			if (start >= c.ticket && end <= c.returned_at) {
				++covered;
				break;
			}
		}
	}
	CHECK(covered == calls.size());
	CHECK(total_syncs <= calls.size());
}
