// Disk-full helpers: the reserve decision (core/disk_space.h) and the
// marking of disk-full error texts (util/storage.h).
#include <doctest/doctest.h>

#include <ev.h>

#include <cerrno>
#include <string>

#include "core/disk_space.h"
#include "core/worker_pool.h"
#include "util/log.h"
#include "util/storage.h"
#include "unit/files.h"

using tern::core::below_disk_reserve;
using tern::core::DiskUsage;

TEST_CASE("disk reserve: 64 MiB, at most a twentieth of the file system, and some inodes") {
	constexpr uint64_t MiB = 1ull << 20;
	DiskUsage big{100000 * MiB, 65 * MiB, 0, 0};
	CHECK_FALSE(below_disk_reserve(big));
	big.available_bytes = 63 * MiB;
	CHECK(below_disk_reserve(big));

	// 12 MiB file system: the reserve is 12/20 MiB, not 64 MiB.
	DiskUsage small{12 * MiB, 1 * MiB, 0, 0};
	CHECK_FALSE(below_disk_reserve(small));
	small.available_bytes = 512 * 1024;
	CHECK(below_disk_reserve(small));

	// Out of inodes is out of space; a file system without inode counts is
	// judged by bytes alone.
	DiskUsage inodes{100000 * MiB, 1000 * MiB, 1000, 10};
	CHECK(below_disk_reserve(inodes));
	inodes.available_inodes = 500;
	CHECK_FALSE(below_disk_reserve(inodes));
}

TEST_CASE("storage errors: ENOSPC and EDQUOT are disk full, and the mark survives being passed on") {
	CHECK(tern::is_storage_full(ENOSPC));
	CHECK(tern::is_storage_full(EDQUOT));
	CHECK_FALSE(tern::is_storage_full(EIO));
	CHECK_FALSE(tern::is_storage_full(0));

	std::string marked = tern::storage_full_error("write /x: No space left on device");
	CHECK(tern::is_storage_full_error(marked));
	CHECK(tern::storage_full_error(marked) == marked);  // marked once only
	CHECK_FALSE(tern::is_storage_full_error("write /x: Input/output error"));
	CHECK_FALSE(tern::is_storage_full_error(""));
}

TEST_CASE("disk space monitor: a full disk elsewhere (a Maildir's) refuses data only until data_dir is checked") {
	tern::testing::TempLog temp_log;
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	{
		tern::core::WorkerPool pool(loop, 1);
		tern::core::DiskSpaceMonitor monitor(loop, pool, temp_log.dir.path);
		monitor.start();
		pool.drain();
		REQUIRE_FALSE(monitor.low());  // the test's file system has room
		monitor.report_full();         // a write on another file system failed
		CHECK(monitor.low());          // refused until the check...
		pool.drain();
		CHECK_FALSE(monitor.low());  // ...finds data_dir's file system fine
	}
	ev_loop_destroy(loop);
	const std::string logged = temp_log.text();
	// Nothing names data_dir as full: the failed write's own line (its
	// caller's) names the file system that was.
	CHECK(logged.find("full") == std::string::npos);
	CHECK(logged.find("reserve") == std::string::npos);
}
