// The Maildir scanner (doc/behaviour.md §9 "Learning from the mailbox"):
// keeps the message history in step with what users do to their mail in
// Dovecot — junk keywords set, messages moved between folders, messages
// deleted. Runs periodically on a worker; each pass reads only the folders
// whose `cur/` or `new/` directory changed since the previous pass, and
// the mailboxes of the history whose folder is no longer there.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "config/config.h"
#include "inbound/junk_marks.h"
#include "store/db.h"

namespace tern::store {

// Called once for each message whose junk mark the scanner changed, on the
// scanner's worker thread: an account with a junk filter trains it from the
// message file at `message_path` (the old mark's counts taken back).
void on_junk_mark_changed(Env& env, const config::Account& account, const std::string& unique_name,
                          inbound::JunkMark old_mark, inbound::JunkMark new_mark, const std::string& message_path);

struct ScanStats {
	size_t folders_read = 0;  // folders that changed and were read
	// Folders that changed but could not be listed: their records are left
	// as they are until a later pass reads them.
	size_t folders_skipped = 0;
	// Mailboxes with records whose folder is no longer on disk (deleted or
	// renamed): their records are marked expunged, or moved with a rename.
	size_t folders_gone = 0;
	size_t marks_changed = 0;
	size_t moved = 0;  // records whose folder changed
	size_t expunged = 0;
	size_t pruned = 0;  // history records past the configured age
	// Accounts whose part of the pass failed (each logged): the pass is
	// not a complete one.
	size_t accounts_failed = 0;
};

// What the scanner remembers of a folder between passes.
struct FolderSeen {
	// The modification times (ns) of cur/ and new/ when a pass last read
	// the folder, kept once what it found there was committed to the
	// history; none after a pass that could not list it, so that the next
	// one reads it again.
	std::optional<std::pair<int64_t, int64_t>> times;
	// Why the folder could not be listed, as last logged at error level:
	// a folder that stays unlistable is logged again at debug level only.
	std::optional<std::string> unlisted_error;
};

class JunkScanner {
public:
	// One pass over every account of `cfg`; blocking (a worker's job). Also
	// prunes history older than message_history.max_age_days. Calls may come
	// from different worker threads, one at a time. An account whose part
	// fails is logged and counted (accounts_failed); throws when the pruning
	// fails or the database environment cannot be used at all.
	ScanStats scan(const config::Config& cfg, Env& env, int64_t now);

private:
	// What one account's passes saw. Two accounts may name the same
	// Maildir, each with records of its own: what a pass read for one is
	// still to be read for the other.
	struct AccountSeen {
		std::string maildir;                        // the one `folders` are of
		std::map<std::string, FolderSeen> folders;  // by folder path
		// The error its last pass ended in, as last logged at error level:
		// one that stays is logged again at debug level only.
		std::optional<std::string> failure;
	};
	std::mutex mu_;
	std::map<std::string, AccountSeen> seen_;  // by account name
};

}  // namespace tern::store
