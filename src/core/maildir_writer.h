// Group commit for Maildir deliveries (doc/design.md "Worker pool"). Each
// message is written, fsync'd and renamed into new/ by its own job on a
// pool of disk threads, so the file fsyncs of many sessions run in parallel
// (the journal commits them together). A message is answered only after
// the directories its renames touched are fsync'd: the same job then joins
// the disk threads' shared directory sync (core/dir_sync_group.h), which
// syncs each directory once for every message renamed before it started.
#pragma once
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/dir_sync_group.h"
#include "core/spool_pool.h"
#include "core/worker_pool.h"
#include "store/maildir.h"

struct ev_loop;

namespace tern::core {

class MaildirWriter {
public:
	// `done` runs on the loop thread: error "" when every copy is durable.
	using Done = std::function<void(const std::string& error)>;

	// Disk threads: they mostly wait on fsync, not on a core, so there are
	// more of them than cores; 8 parallel fsyncs reach most of what a disk's
	// journal can group.
	static constexpr unsigned disk_threads = 8;
	// Directory-sync rounds in flight at a time; later messages wait for a
	// free one and share it.
	static constexpr size_t max_dir_syncs_in_flight = 2;

	// A body handed over as an open SpoolFile is truncated and given back to
	// `spool` once copied; a body given by path only is removed.
	// `sync_dir` syncs one directory (tests give one that fails).
	explicit MaildirWriter(struct ev_loop* loop, SpoolPool* spool = nullptr, unsigned threads = disk_threads,
	                       DirSyncGroup::SyncOne sync_dir = store::fsync_dir)
		: dir_sync_(std::move(sync_dir), max_dir_syncs_in_flight), disk_(loop, threads, "tern-disk"),
		  spool_(spool) {}
	MaildirWriter(const MaildirWriter&) = delete;
	MaildirWriter& operator=(const MaildirWriter&) = delete;

	// Writes prefix + body for each copy; the body file is removed once the
	// copies are written, delivered or not.
	void deliver(std::string body_path, std::vector<store::MaildirCopy> copies, std::string hostname, Done done);
	// The same, for a caller that records where each copy landed (the
	// message history): `done` also gets the copies with final_path set.
	// With `body.fd` (a spool file of `spool` that nothing else reads any
	// more) the body is read from that descriptor and its known size, then
	// the file is emptied and returned to the pool instead of removed.
	// `renamed`, when given, runs on the disk thread once every copy is in
	// its folder (final_path set), before the directory sync that makes the
	// names durable: work that needs only the names (the history records)
	// starts there instead of after `done`. It must not block and must not
	// touch loop-thread state.
	using DoneWithCopies = std::function<void(const std::string& error, std::vector<store::MaildirCopy>& copies)>;
	using Renamed = std::function<void(const std::vector<store::MaildirCopy>& copies)>;
	void deliver_noting_copies(std::string body_path, SpoolFile body, std::vector<store::MaildirCopy> copies,
	                           std::string hostname, DoneWithCopies done, Renamed renamed = nullptr);

	// Messages accepted by deliver() and not yet answered.
	size_t pending() const { return pending_; }
	// Runs the loop until every message is answered (shutdown only).
	void drain() { disk_.drain(); }

private:
	struct Message {
		std::string body_path;
		std::vector<store::MaildirCopy> copies;
		std::string hostname;
		DoneWithCopies done;
		Renamed renamed;
		std::string error;
		std::set<std::string> dirs_to_sync;         // touched by its renames and mkdirs
		SpoolFile body;                             // handed over open, or by path only
		bool body_reusable = false;                 // body.fd is an emptied spool file
		std::vector<std::string> prepared_folders;  // durable once its directories are synced
	};
	void write_and_sync(Message& msg);
	static void write_copies(Message& msg);
	static void release_body(Message& msg);
	void answer(Message& msg);

	// Before disk_: the disk threads use it until disk_'s destructor has
	// stopped them.
	DirSyncGroup dir_sync_;
	WorkerPool disk_;
	SpoolPool* spool_;
	size_t pending_ = 0;
};

}  // namespace tern::core
