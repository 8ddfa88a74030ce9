// Durable Maildir delivery (Maildir++ as Dovecot reads it). Runs on a worker
// thread: the calls block on disk. A message becomes visible in `new/` (or
// `cur/`) only after its file is fsync'd, and the 250 waits until the
// directory rename is fsync'd too.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace tern::store {

struct MaildirCopy {
	std::string maildir;     // account's Maildir root (INBOX)
	std::string mailbox;     // "INBOX" (any case) = root; "X" = ".X/"; "a/b" = ".a.b/"
	std::string prefix;      // header lines written before the body (CRLF ends)
	bool seen = false;       // store in cur/ with ":2,S" (Rejects copies)
	std::string final_path;  // out: where the message landed
};

// Writes prefix + the contents of `body_path` into each copy's mailbox:
// tmp/ file → fsync → rename into new/ (or cur/) → fsync of every touched
// directory once (group commit across the copies). Creates the Maildir and
// mailbox folders (with `maildirfolder`) on demand. File names are
// `<seconds>.<unique>.<host>,S=<size>` (`:2,S` appended for seen copies).
// Throws std::runtime_error on any failure, after removing its tmp files.
void deliver_maildir(const std::string& body_path, std::vector<MaildirCopy>& copies, const std::string& hostname);

// The two halves of deliver_maildir, for a caller that commits deliveries
// of several sessions together: each call writes, fsyncs and renames its
// copies and adds the directories it touched to `dirs_to_sync`; no copy
// counts as delivered (no 250) until fsync_dirs over the shared set returned.
// The body is the file's bytes from `body_offset` on (a queue file's
// message follows its envelope header).
void deliver_maildir_unsynced(const std::string& body_path, std::vector<MaildirCopy>& copies,
                              const std::string& hostname, std::set<std::string>& dirs_to_sync,
                              uint64_t body_offset = 0);
void fsync_dirs(const std::set<std::string>& dirs);

// fsyncs each of `dirs` with `sync_one` (which throws std::exception with
// the reason), going on past a failure; returns directory → reason for the
// ones that failed (empty: all durable). fsync_dirs is this with
// fsync_dir, throwing the first failure.
using DirSyncFailures = std::map<std::string, std::string>;
DirSyncFailures sync_each_dir(const std::set<std::string>& dirs,
                              const std::function<void(const std::string& dir)>& sync_one);

// A message fails as a whole (4xx, the client sends it again): copies of it
// already renamed into their folders are taken back out (final_path
// unlinked and cleared), or the retry would deliver them a second time.
// A copy a reader has already moved on (new/ to cur/) stays where it is.
void withdraw_copies(std::vector<MaildirCopy>& copies);

// Group commit: the copies of many messages written together. stage()
// writes each message's copies into tmp/ (no fsync yet); commit_files()
// fsyncs every staged file — on a journaling file system the first fsync
// commits them all — and renames them into new/ (or cur/); the caller then
// fsyncs each touched directory once (fsync_dirs). A message is delivered
// only when its entry in commit_files()'s result is empty and those
// directories are synced. Blocking: worker threads only.
class MaildirBatch {
public:
	// With remember_folders, folders known to be complete and on disk (see
	// remember_durable_folders) are not prepared again: no stat and mkdirs
	// per message. A folder that is not known yet is prepared and every
	// directory from it up to the root is synced with it, since another
	// thread may have just created part of it and not synced it yet.
	explicit MaildirBatch(std::string hostname, bool remember_folders = false);
	~MaildirBatch();  // removes tmp/ files that were never renamed
	MaildirBatch(const MaildirBatch&) = delete;
	MaildirBatch& operator=(const MaildirBatch&) = delete;

	// Stages one message (its copies); returns its index. A failure is
	// recorded for that message only.
	size_t stage(const std::string& body_path, const std::vector<MaildirCopy>& copies, uint64_t body_offset = 0);
	// The same from a body the caller has open (and keeps: only positional
	// reads, its file offset does not move) and whose size it knows, so the
	// file is neither opened nor stat'ed; body_path is for errors.
	size_t stage(int body_fd, uint64_t body_size, const std::string& body_path,
	             const std::vector<MaildirCopy>& copies);
	// The message's copies with final_path filled in.
	std::vector<MaildirCopy> delivered(size_t index) const;

	// Per staged message: "" when its files are written and renamed, else
	// the error. The directories to sync are added to `to_sync`: the caller
	// syncs them (often a larger set, for many batches at once).
	std::vector<std::string> commit_files(std::set<std::string>& to_sync);

	// The folders this batch prepared (remember_folders only): once the
	// directories of commit_files are synced, pass them to
	// remember_durable_folders.
	const std::vector<std::string>& prepared_folders() const { return new_folders_; }

private:
	size_t stage_opened(int body_fd, int open_errno, int64_t known_size, const std::string& body_path,
	                    const std::vector<MaildirCopy>& copies, uint64_t body_offset);
	void prepare(const std::string& folder, bool is_root);
	struct Message;
	std::string host_;
	bool remember_folders_;
	std::vector<std::string> new_folders_;
	std::set<std::string> prepared_;
	std::set<std::string> dirs_;  // created directories and their parents
	std::vector<std::unique_ptr<Message>> messages_;
};

// Folders that are complete Maildir folders on disk (created and synced),
// shared by every thread of the process, for MaildirBatch's
// remember_folders.
void remember_durable_folders(const std::vector<std::string>& folders);

// Maildir++ folder path of a mailbox under a Maildir root. An empty mailbox
// means INBOX. Throws std::runtime_error for names that would leave the
// Maildir (empty, "." or ".." components).
std::string mailbox_dir(const std::string& maildir, const std::string& mailbox);

// One message file of a Maildir folder: its name in new/ or cur/ and the
// unique part of that name (before ':', stable across flag changes and
// moves between folders).
struct MessageFile {
	std::string path;  // <folder_dir>/new/<name> or <folder_dir>/cur/<name>
	std::string_view file_name;
	std::string_view unique_name;
	bool in_cur = false;
};

// A directory of a Maildir folder (new/ or cur/) that a walk could not
// list, or not to its end, and why.
struct UnlistedDir {
	std::string dir;
	std::error_code error;
	std::string text() const;  // "listing <dir>: <error>"
};

// Calls fn for every message file of the folder at `folder_dir`: new/'s
// first, then cur/'s, each directory in the order it lists. Names that
// start with '.' are no messages and are passed over. fn may remove the
// file it is given. The views in the MessageFile live until fn returns.
// Returns the first directory that could not be opened or read (a missing
// one too: whether that means an empty folder is the caller's to say),
// after fn has seen every file listed before the error and in the other
// directory; none when both were listed whole.
[[nodiscard]] std::optional<UnlistedDir> for_each_message_file(const std::string& folder_dir,
                                                               const std::function<void(const MessageFile&)>& fn);

// fsync(2) of a directory, making its entries (created or renamed files)
// durable. Throws std::runtime_error with the errno text and path.
void fsync_dir(const std::string& dir);

}  // namespace tern::store
