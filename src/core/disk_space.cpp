#include "core/disk_space.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include "util/log.h"
#include "util/storage.h"

namespace tern::core {

bool below_disk_reserve(const DiskUsage& usage) {
	uint64_t reserve = std::min(disk_reserve_bytes, usage.total_bytes / disk_reserve_fraction);
	if (usage.available_bytes < reserve) return true;
	return usage.total_inodes > 0 && usage.available_inodes < disk_reserve_inodes;
}

DiskSpaceMonitor::DiskSpaceMonitor(struct ev_loop* loop, WorkerPool& pool, std::string path)
	: pool_(pool), path_(std::move(path)), timer_(loop, [this] { check(); }) {}

void DiskSpaceMonitor::start() { check(); }

void DiskSpaceMonitor::report_full() {
	low_ = true;
	if (in_flight_) stale_ = true;
	check();
}

bool DiskSpaceMonitor::write_failed(int err) {
	if (!is_storage_full(err)) return false;
	report_full();
	return true;
}

bool DiskSpaceMonitor::write_failed(std::string_view error_text) {
	if (!is_storage_full_error(error_text)) return false;
	report_full();
	return true;
}

void DiskSpaceMonitor::check() {
	if (in_flight_) return;
	in_flight_ = true;
	timer_.stop();
	struct Result {
		DiskUsage usage;
		int error = 0;
	};
	auto result = std::make_shared<Result>();
	pool_.submit(
	    [path = path_, result] {
		    struct statvfs st {};
		    if (::statvfs(path.c_str(), &st) != 0) {
			    result->error = errno;
			    return;
		    }
		    uint64_t unit = st.f_frsize ? st.f_frsize : st.f_bsize;
		    result->usage.total_bytes = static_cast<uint64_t>(st.f_blocks) * unit;
		    result->usage.available_bytes = static_cast<uint64_t>(st.f_bavail) * unit;
		    result->usage.total_inodes = st.f_files;
		    result->usage.available_inodes = st.f_favail;
	    },
	    [this, alive = std::weak_ptr<char>(alive_), result] {
		    if (alive.expired()) return;
		    in_flight_ = false;
		    if (stale_) {
			    stale_ = false;
			    check();
			    return;
		    }
		    if (result->error != 0) {
			    // Unknown: keep the last verdict; the writes report ENOSPC.
			    log::error("checking free disk space",
			               {{"path", path_}, {"error", std::strerror(result->error)}});
		    } else {
			    bool low = below_disk_reserve(result->usage);
			    if (low && !measured_low_)
				    log::error("free disk space below the reserve, refusing message data",
				               {{"path", path_},
				                {"available", std::to_string(result->usage.available_bytes)}});
			    if (!low && measured_low_)
				    log::info("free disk space back above the reserve, accepting message data",
				              {{"path", path_},
				               {"available", std::to_string(result->usage.available_bytes)}});
			    low_ = measured_low_ = low;
		    }
		    timer_.start(low_ ? low_interval_s : interval_s);
	    });
}

}  // namespace tern::core
