// Free space on the file system of data_dir, watched from the loop without
// blocking it: statvfs(2) runs on a worker (it can stall on a sick disk or a
// network file system), every few seconds and at once after a write failed
// for lack of space. While space is below the reserve, sessions refuse new
// message data with 452 4.3.1 (RFC 3463 X.3.1), so that what is left stays
// for the database log and queue records of messages already accepted; the
// refusal lifts by itself at the first check that finds space again.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/watchers.h"
#include "core/worker_pool.h"

namespace tern::core {

// The reserve: 64 MiB, but at most 1/20 of the file system (so a small
// disk is still usable), and 64 free inodes.
inline constexpr uint64_t disk_reserve_bytes = 64ull << 20;
inline constexpr uint64_t disk_reserve_fraction = 20;
inline constexpr uint64_t disk_reserve_inodes = 64;

struct DiskUsage {
	uint64_t total_bytes = 0;
	uint64_t available_bytes = 0;  // to unprivileged users (f_bavail)
	uint64_t total_inodes = 0;     // 0: the file system does not count inodes
	uint64_t available_inodes = 0;
};

// Pure: whether usage leaves less than the reserve free.
bool below_disk_reserve(const DiskUsage& usage);

class DiskSpaceMonitor {
public:
	DiskSpaceMonitor(struct ev_loop* loop, WorkerPool& pool, std::string path);
	DiskSpaceMonitor(const DiskSpaceMonitor&) = delete;
	DiskSpaceMonitor& operator=(const DiskSpaceMonitor&) = delete;

	// Starts the periodic checks (the first one now).
	void start();
	// True while the last check found less than the reserve free.
	bool low() const { return low_; }
	// A write just failed for lack of space: treat space as low until a
	// check finds otherwise, and check now. The caller logs the failed
	// write (its path may be on another file system, a Maildir's); this
	// logs only what the checks of `path` find.
	void report_full();
	// A write failed with `err` (or with an error text from the workers,
	// marked by storage_full_error): report_full when it says the disk is
	// full; true then, for the caller's 452 4.3.1 (util/storage.h).
	bool write_failed(int err);
	bool write_failed(std::string_view error_text);

	// Seconds between checks while space is fine, and while it is low.
	static constexpr double interval_s = 5.0;
	static constexpr double low_interval_s = 1.0;

private:
	void check();

	WorkerPool& pool_;
	std::string path_;
	TimerWatcher timer_;
	bool low_ = false;
	bool measured_low_ = false;  // the last check's own verdict: what the log has said
	bool in_flight_ = false;
	// A disk-full report came while a check was running: that check may
	// have looked before the disk filled, so its verdict is not used.
	bool stale_ = false;
	// Completions from the pool test this before touching the monitor.
	std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace tern::core
