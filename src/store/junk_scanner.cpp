#include "store/junk_scanner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <vector>

#include "store/files.h"
#include "store/history.h"
#include "store/junk_counts.h"
#include "store/maildir.h"
#include "util/log.h"

namespace tern::store {

namespace fs = std::filesystem;

void on_junk_mark_changed(Env& env, const config::Account& account, const std::string& unique_name,
                          inbound::JunkMark old_mark, inbound::JunkMark new_mark, const std::string& message_path) {
	if (!account.junk_filter) return;
	auto training_mark = [](inbound::JunkMark m) -> std::optional<JunkMark> {
		if (m == inbound::JunkMark::junk) return JunkMark::junk;
		if (m == inbound::JunkMark::notjunk) return JunkMark::ham;
		return std::nullopt;
	};
	try {
		train_junk_mark_change(env, account.name, message_path, training_mark(old_mark),
		                       training_mark(new_mark));
	} catch (const std::exception& e) {
		// The mark is recorded; only this message's training is missed.
		log::error("training the junk filter",
		           {{"account", account.name}, {"message", unique_name}, {"error", e.what()}});
	}
}

namespace {

int64_t mtime_ns(const std::string& dir) {
	struct stat st {};
	if (::stat(dir.c_str(), &st) != 0) return -1;
	return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// A folder's dovecot-keywords, "" when there is none. Dovecot writes one
// short line per keyword and only the first 26 have flag letters, so the
// head is enough; a file that is huge, endless (/dev/zero) or no regular
// file (a FIFO) costs neither memory nor a blocked worker.
constexpr size_t max_keywords_file = 64 * 1024;

std::string read_keywords_file(const std::string& path) {
	struct stat st {};
	if (::stat(path.c_str(), &st) != 0) return "";  // none (or a dangling link): no keywords
	try {
		return read_file_head(path, max_keywords_file);
	} catch (const std::exception& e) {
		log::error("reading maildir keywords", {{"error", e.what()}});
		return "";
	}
}

// The element of `sorted` (sorted by unique name, as `unique_of` gives it)
// whose unique name is `unique`, or null.
template <class Element, class UniqueOf>
const Element* find_unique(const std::vector<Element>& sorted, std::string_view unique, UniqueOf unique_of) {
	auto it = std::lower_bound(sorted.begin(), sorted.end(), unique,
	                           [&](const Element& e, std::string_view u) { return unique_of(e) < u; });
	return it != sorted.end() && unique_of(*it) == unique ? &*it : nullptr;
}

// One file of a changed folder as the pass listed it: its name in new/ or
// cur/ (the unique name is the part before ':') and the mark its keywords
// give. About a hundred bytes each: a folder may hold a million.
struct ListedFile {
	std::string file_name;
	bool in_cur = false;
	inbound::JunkMark from_keywords = inbound::JunkMark::unknown;
	std::string_view unique() const { return inbound::maildir_unique_name(file_name); }
};

// A folder whose cur/ or new/ changed since the previous pass, with its
// files sorted by unique name (one per name: new/'s when both list it).
struct ChangedFolder {
	std::string path;
	std::string name;  // IMAP name: INBOX, Junk, Archive
	inbound::FolderKind kind = inbound::FolderKind::neutral;
	std::vector<ListedFile> files;
	// The times of cur/ and new/ before the listing: what the scanner keeps
	// once what the listing found is in the history (remember_read).
	std::pair<int64_t, int64_t> times{-1, -1};

	bool holds(std::string_view unique) const {
		return find_unique(files, unique, [](const ListedFile& f) { return f.unique(); }) != nullptr;
	}
	std::string file_path(const ListedFile& f) const { return path + (f.in_cur ? "/cur/" : "/new/") + f.file_name; }
};

// What the history says a changed folder holds: unique name → record id
// and mark, sorted by unique name.
struct RecordedFolder {
	std::vector<MessageHistory::MailboxEntry> entries;

	explicit RecordedFolder(std::vector<MessageHistory::MailboxEntry> recorded) : entries(std::move(recorded)) {
		std::sort(entries.begin(), entries.end(),
		          [](const auto& a, const auto& b) { return a.unique_name < b.unique_name; });
	}
	const MessageHistory::MailboxEntry* find(std::string_view unique) const {
		return find_unique(entries, unique, [](const MessageHistory::MailboxEntry& e) {
			return std::string_view(e.unique_name);
		});
	}
};

// Maildir++: the root is INBOX, every ".name" directory a folder. The
// folders one listing of the root found: pairs of directory name and path,
// none when the Maildir is not there. An entry whose type cannot be known
// (a link that loops, or whose target's parent may not be searched) is
// among them: it may be a folder, and listing it fails as it would for any
// folder that cannot be listed (list_changed). One that is known to be no
// directory (a file, a link to nothing) is not.
struct MaildirFolders {
	std::vector<std::pair<std::string, std::string>> folders;
	// The IMAP names of every ".name" entry the root holds, folder or not
	// (a symbolic link to an unmounted disk is still the user's folder).
	std::set<std::string> names;
	// The root was listed to its end and is a Maildir (its own cur/ and
	// new/ there): a name not among `names` is no folder. Otherwise (too
	// many open files, an I/O error, no Maildir at all, an empty directory
	// where a disk is not mounted) the absence of a folder says nothing.
	bool whole = false;
};

// Whether a failed look at a root entry's type leaves it unknown. ENOENT
// and ENOTDIR say its target is not there (a link to a disk not mounted):
// nothing to list, and nothing that can hold files.
bool type_unknown(const std::error_code& type_error) {
	return type_error && type_error != std::errc::no_such_file_or_directory &&
	    type_error != std::errc::not_a_directory;
}

MaildirFolders maildir_folders(const std::string& maildir) {
	MaildirFolders listing;
	std::error_code ec;
	if (!fs::is_directory(maildir, ec)) return listing;
	listing.folders.emplace_back("", maildir);
	const fs::directory_iterator end;
	for (fs::directory_iterator it(maildir, ec); !ec && it != end; it.increment(ec)) {
		std::string name = it->path().filename().string();
		if (name.size() < 2 || name[0] != '.' || name == "..") continue;
		listing.names.insert(inbound::folder_name_from_dir(name));
		std::error_code type_error;
		if (it->is_directory(type_error) || type_unknown(type_error))
			listing.folders.emplace_back(name, it->path().string());
	}
	std::error_code sub_error;
	listing.whole = !ec && fs::is_directory(maildir + "/cur", sub_error) &&
	    fs::is_directory(maildir + "/new", sub_error);
	return listing;
}

// Lists a changed folder's files (new/ and cur/) with the marks their
// keywords give. Returns the directory that could not be listed whole, if
// any: then the files are not all there.
std::optional<UnlistedDir> list_files(ChangedFolder& folder) {
	auto keywords = inbound::parse_dovecot_keywords(read_keywords_file(folder.path + "/dovecot-keywords"));
	auto unlisted = for_each_message_file(folder.path, [&](const MessageFile& file) {
		inbound::JunkMark mark = inbound::junk_mark_from_keywords(inbound::maildir_flags(file.file_name),
		                                                          keywords);
		folder.files.push_back({std::string(file.file_name), file.in_cur, mark});
	});
	if (unlisted) return unlisted;
	// Sorted by unique name, new/ before cur/ within one (new/ is listed
	// first and the sort is stable); then one per name.
	std::stable_sort(folder.files.begin(), folder.files.end(),
	                 [](const ListedFile& a, const ListedFile& b) { return a.unique() < b.unique(); });
	folder.files.erase(
	    std::unique(folder.files.begin(), folder.files.end(),
	                [](const ListedFile& a, const ListedFile& b) { return a.unique() == b.unique(); }),
	    folder.files.end());
	folder.files.shrink_to_fit();
	return std::nullopt;
}

// The level to log an error of something the scanner meets at every pass
// (a folder it cannot list, an account whose part fails) at: error when it
// is not the one last logged for that thing, debug while it stays the
// same. `last_logged` becomes `error`.
log::Level level_when_new(std::optional<std::string>& last_logged, const std::string& error) {
	const log::Level level = last_logged == error ? log::Level::debug : log::Level::error;
	last_logged = error;
	return level;
}

// Lists the changed folders. One that cannot be listed whole is left out of
// this pass with what the history says it holds: taken as empty or as
// holding only what was listed, its records would be marked expunged (and
// the delivery rates would drop them) until a pass could list it again.
// Its times are forgotten, so that the next pass reads it again even when
// its directories did not change (too many open files, an I/O error). A
// message moved into it from a folder that was listed is in no listing
// and taken for gone until then, like a move both listings missed.
//
// A missing new/ or cur/ is such a folder too, not an empty one: it is
// being deleted or renamed while the pass runs (Dovecot moves a deleted
// folder aside before removing it), and its records are left as they are,
// not marked expunged by chance of timing; the next pass, not finding the
// folder at all, takes it for gone (add_gone_folders). A renamed folder's
// files are found under its new name. Returns how many folders could not
// be listed for a new reason (not as at the pass before).
size_t list_changed(const std::string& account, std::vector<ChangedFolder>& changed,
                    std::vector<RecordedFolder>& recorded, std::map<std::string, FolderSeen>& seen, ScanStats& stats) {
	std::vector<ChangedFolder> listed;
	std::vector<RecordedFolder> listed_recorded;
	size_t newly_unlisted = 0;
	for (size_t i = 0; i < changed.size(); ++i) {
		FolderSeen& folder_seen = seen[changed[i].path];
		if (auto unlisted = list_files(changed[i])) {
			folder_seen.times.reset();
			// One that stays so (no new/ ever, no permission) is tried at
			// every pass.
			const std::string error = unlisted->text();
			const log::Level level = level_when_new(folder_seen.unlisted_error, error);
			if (level == log::Level::error) ++newly_unlisted;
			log::event(level, 0, "maildir folder not read, its records wait for a later pass",
			           {{"account", account}, {"folder", changed[i].name}, {"error", error}});
			++stats.folders_skipped;
			continue;
		}
		folder_seen.unlisted_error.reset();
		++stats.folders_read;
		listed.push_back(std::move(changed[i]));
		listed_recorded.push_back(std::move(recorded[i]));
	}
	changed = std::move(listed);
	recorded = std::move(listed_recorded);
	return newly_unlisted;
}

// The folders whose cur/ or new/ changed since the last pass (`seen`: the
// directories' modification times then), or all of them.
std::vector<ChangedFolder> changed_folders(const MaildirFolders& on_disk, const inbound::FolderClassifier& classifier,
                                           const std::map<std::string, FolderSeen>& seen, bool all) {
	std::vector<ChangedFolder> changed;
	for (const auto& [dir_name, path] : on_disk.folders) {
		std::pair<int64_t, int64_t> times{mtime_ns(path + "/cur"), mtime_ns(path + "/new")};
		auto folder_seen = seen.find(path);
		if (!all && folder_seen != seen.end() && folder_seen->second.times == times) continue;
		std::string name = inbound::folder_name_from_dir(dir_name);
		inbound::FolderKind kind = classifier.classify(name);
		changed.push_back({path, std::move(name), kind, {}, times});
	}
	return changed;
}

// The listed folders' times become the ones a pass compares with, once
// what their listings changed in the history is committed. A pass that a
// database error stops before that keeps the times before it, so that the
// next pass reads those folders again instead of taking the changes it
// lost for done. Gone folders (no path) have no times.
void remember_read(const std::vector<ChangedFolder>& changed, std::map<std::string, FolderSeen>& seen) {
	for (const ChangedFolder& folder : changed)
		if (!folder.path.empty()) seen[folder.path].times = folder.times;
}

// Forgets what was seen of the Maildir's folders that are not on disk any
// more: a folder made again under the same name is read at its first pass,
// whatever its directories' times, and the map does not grow with every
// folder a user ever had.
void forget_gone_folders(const std::string& maildir, const MaildirFolders& on_disk,
                         std::map<std::string, FolderSeen>& seen) {
	const std::string folder_prefix = (fs::path(maildir) / ".").string();
	auto on_disk_now = [&](const std::string& path) {
		return std::any_of(on_disk.folders.begin(), on_disk.folders.end(),
		                   [&](const auto& folder) { return folder.second == path; });
	};
	for (auto it = seen.lower_bound(folder_prefix); it != seen.end() && it->first.starts_with(folder_prefix);)
		it = on_disk_now(it->first) ? std::next(it) : seen.erase(it);
}

// The mailboxes that hold records but no longer name anything in the
// Maildir root (the user deleted or renamed the folder). Records name their
// mailbox as a listing does (folder_name_from_dir: deliveries and moves
// alike). Only from a root listed whole. `with_records` was read before
// the root was listed, so that a folder made after the listing is not
// among them.
std::vector<std::string> gone_mailboxes(const std::vector<std::string>& with_records, const MaildirFolders& on_disk) {
	std::vector<std::string> gone;
	if (!on_disk.whole) return gone;
	for (const std::string& mailbox : with_records)
		// A record with no mailbox says nothing of a folder that went.
		if (!mailbox.empty() && mailbox != "INBOX" && !on_disk.names.count(mailbox)) gone.push_back(mailbox);
	return gone;
}

// The gone mailboxes as changed folders that list empty: their records go
// the way of files gone from a listed folder (mark_expunged), and those
// whose files a folder listed in this pass holds (a renamed folder's new
// name; every folder is listed in a pass that finds one gone) are moved,
// not expunged. A folder made again between the listing and the read of
// its records below may have a new delivery's record marked expunged: the
// next pass reads that folder (new to it) and brings the record back.
void add_gone_folders(MessageHistory& history, const std::string& account, const std::vector<std::string>& gone,
                      std::vector<ChangedFolder>& changed, std::vector<RecordedFolder>& recorded, ScanStats& stats) {
	for (const std::string& mailbox : gone) {
		changed.push_back({"", mailbox, inbound::FolderKind::neutral, {}});
		recorded.emplace_back(history.in_mailbox(account, mailbox));
		++stats.folders_gone;
	}
}

// What a file found in a changed folder changes in its record, as read in
// the updating transaction (the folder and the mark); false for nothing.
bool apply_listed_file(HistoryRecord& record, const config::Account& account,
                       const inbound::FolderClassifier& classifier, const ChangedFolder& folder,
                       inbound::JunkMark from_keywords, const std::string& file_path) {
	// A listed file whose record says expunged is there after all: a move
	// from a folder listed after its destination was listed is in neither
	// listing, and the next pass, listing the destination again, brings
	// the record back.
	const bool back = record.expunged;
	// Unless the file went again since the listing (the Rejects clean-up
	// removes a copy and then marks its record). Looked at inside the
	// updating transaction, under the lock the clean-up's expunge takes
	// too, so that the two cannot cross; it runs only for records marked
	// expunged, and a stat of a Maildir file is quick.
	if (back && ::access(file_path.c_str(), F_OK) != 0) return false;
	std::optional<inbound::FolderKind> previous_kind;
	if (!record.mailbox.empty()) previous_kind = classifier.classify(record.mailbox);
	inbound::JunkMark mark = inbound::next_junk_mark(record.junk, previous_kind, folder.kind, from_keywords);
	if (!back && mark == record.junk && record.mailbox == folder.name) return false;
	// A copy the user moved out of Rejects is mail of theirs now: the
	// Rejects clean-up (its age, a later delivery of it) leaves it alone.
	if (folder.name != account.rejects_mailbox) record.rejected = false;
	record.expunged = false;
	record.junk = mark;
	record.mailbox = folder.name;
	return true;
}

// One file found in a changed folder: its record learns the folder and the
// mark, and the junk filter a changed mark. The record is read and changed
// in one transaction: a record read first and written back later would
// undo what another writer did in between (the Rejects clean-up's expunge).
void update_record(MessageHistory& history, Env& env, const config::Account& account,
                   const inbound::FolderClassifier& classifier, const ChangedFolder& folder, const std::string& unique,
                   inbound::JunkMark from_keywords, const std::string& file_path, ScanStats& stats) {
	auto apply = [&](HistoryRecord& record) {
		return apply_listed_file(record, account, classifier, folder, from_keywords, file_path);
	};
	// A plain read first: most files listed here have no record (written
	// by the IMAP server: Sent, Drafts) or need no change, and a writing
	// transaction takes the delivery-rate lock that deliveries wait on.
	auto as_read = history.find_by_unique_name(account.name, unique);
	if (!as_read || !apply(*as_read)) return;
	auto changed = history.update_by_unique_name(account.name, unique, apply);
	if (!changed) return;
	if (changed->before.mailbox != changed->after.mailbox) ++stats.moved;
	if (changed->after.junk != changed->before.junk) {
		++stats.marks_changed;
		on_junk_mark_changed(env, account, unique, changed->before.junk, changed->after.junk, file_path);
	}
}

// Files in a changed folder: new folder, new mark. A file already recorded
// here whose mark cannot change needs no lookup of its own.
void update_present(MessageHistory& history, Env& env, const config::Account& account,
                    const inbound::FolderClassifier& classifier, const ChangedFolder& folder,
                    const RecordedFolder& recorded, ScanStats& stats) {
	for (const ListedFile& file : folder.files) {
		const std::string_view unique = file.unique();
		if (const auto* known = recorded.find(unique))
			if (inbound::next_junk_mark(known->junk, folder.kind, folder.kind, file.from_keywords) ==
			    known->junk)
				continue;
		update_record(history, env, account, classifier, folder, std::string(unique), file.from_keywords,
		              folder.file_path(file), stats);
	}
}

// Records a changed folder should hold but no changed folder does: the file
// is gone from every folder (a move would have changed the destination
// folder too). Marked in transactions of a bounded size: a user emptying a
// large folder costs one transaction per batch, not one per message, and a
// transaction never holds more locks than a batch needs.
void mark_expunged(MessageHistory& history, const std::string& account, const std::vector<ChangedFolder>& changed,
                   const std::vector<RecordedFolder>& recorded, ScanStats& stats) {
	constexpr size_t batch = 500;
	std::vector<std::string> gone;
	auto flush = [&] {
		stats.expunged += history.mark_expunged(account, gone);
		gone.clear();
	};
	auto listed = [&](const std::string& unique) {
		return std::any_of(changed.begin(), changed.end(),
		                   [&](const ChangedFolder& f) { return f.holds(unique); });
	};
	for (const RecordedFolder& folder : recorded)
		for (const auto& entry : folder.entries) {
			if (listed(entry.unique_name)) continue;
			gone.push_back(entry.unique_name);
			if (gone.size() == batch) flush();
		}
	flush();
}

// A bounded amount of pruning per pass; the rest waits for the next.
void prune_history(MessageHistory& history, const config::Config& cfg, int64_t now, ScanStats& stats) {
	int64_t cutoff = now - cfg.message_history.max_age_days * 24 * 3600;
	for (int round = 0; round < 50; ++round) {
		size_t pruned = history.prune(cutoff);
		stats.pruned += pruned;
		if (pruned == 0) break;
	}
}

// Logs an account's part of a pass that failed, called in the handler of
// its exception: at error level when the error is new for the account, at
// debug level while it stays the same. Rethrows when the database
// environment cannot be used at all: every further account would fail
// alike, each trying to reopen it first.
void account_failed(const std::string& account_name, std::optional<std::string>& last_logged) {
	std::string error = "unknown error";
	try {
		throw;
	} catch (const DbError& e) {
		if (e.environment_unusable()) throw;
		error = e.what();
	} catch (const std::exception& e) {
		error = e.what();
	} catch (...) {
	}
	log::event(level_when_new(last_logged, error), 0, "maildir scan of an account failed, the others go on",
	           {{"account", account_name}, {"error", error}});
}

// One account's part of a pass.
void scan_account(const std::string& account_name, const config::Account& account, MessageHistory& history, Env& env,
                  std::map<std::string, FolderSeen>& seen, ScanStats& stats) {
	std::optional<inbound::FolderClassifier> classifier;
	try {
		classifier.emplace(account.junk_folder_rules);
	} catch (const std::regex_error&) {
		return;  // the config loader rejects these; never here
	}
	// Read before the root is listed: see gone_mailboxes.
	std::vector<std::string> with_records = history.mailboxes_with_records(account_name);
	MaildirFolders on_disk = maildir_folders(account.maildir);
	if (on_disk.whole) forget_gone_folders(account.maildir, on_disk, seen);
	// With a folder gone every folder is read, so that the one its files
	// went to is listed even when its times did not change (a clock too
	// coarse to tell the rename from the pass before).
	std::vector<std::string> gone = gone_mailboxes(with_records, on_disk);
	std::vector<ChangedFolder> changed = changed_folders(on_disk, *classifier, seen, !gone.empty());
	// What the history says each changed folder holds, in one range scan
	// per folder: files already there whose mark cannot change are not
	// looked up one by one. Read before the folders are listed, so that
	// a message delivered meanwhile (its record added after its file
	// was missed by the listing) is not taken for one that went.
	std::vector<RecordedFolder> recorded;
	recorded.reserve(changed.size());
	for (const ChangedFolder& folder : changed)
		recorded.emplace_back(history.in_mailbox(account_name, folder.name));
	// A folder that could not be listed may hold the gone ones' files
	// (being renamed, too many open files): they wait for the next
	// pass. One that stays unlistable the same way (no permission, no
	// new/) does not hold them back for good, nor make every later
	// pass list every folder.
	if (list_changed(account_name, changed, recorded, seen, stats) == 0)
		add_gone_folders(history, account_name, gone, changed, recorded, stats);
	for (size_t i = 0; i < changed.size(); ++i)
		update_present(history, env, account, *classifier, changed[i], recorded[i], stats);
	mark_expunged(history, account_name, changed, recorded, stats);
	remember_read(changed, seen);
}

}  // namespace

// An account whose part fails (a database error) is logged and counted,
// and the pass goes on with the others and the pruning: an error that
// stays (a write that fails every time) would otherwise keep every account
// after it, and the pruning, from ever being done. The failed account's
// folders keep their old times, so the next pass reads them again. A
// database environment that cannot be used ends the pass at once.
ScanStats JunkScanner::scan(const config::Config& cfg, Env& env, int64_t now) {
	std::lock_guard lock(mu_);
	ScanStats stats;
	MessageHistory history(env);
	std::erase_if(seen_, [&](const auto& entry) { return !cfg.accounts.count(entry.first); });
	for (const auto& [account_name, account] : cfg.accounts) {
		AccountSeen& seen = seen_[account_name];
		// Another Maildir (the config changed): none of its folders was seen.
		if (seen.maildir != account.maildir) seen = AccountSeen{account.maildir, {}, {}};
		try {
			scan_account(account_name, account, history, env, seen.folders, stats);
			seen.failure.reset();
		} catch (...) {
			account_failed(account_name, seen.failure);
			++stats.accounts_failed;
		}
	}
	prune_history(history, cfg, now, stats);
	return stats;
}

}  // namespace tern::store
