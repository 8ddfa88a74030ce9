#include "store/junk_scanner.h"

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <set>
#include <vector>

#include "store/files.h"
#include "store/history.h"
#include "store/junk_counts.h"
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

// One file of a folder as the scan saw it.
struct SeenFile {
	std::string path;
	inbound::JunkMark from_keywords = inbound::JunkMark::unknown;
};

// A folder that changed since the last pass, with its files by unique name.
struct ChangedFolder {
	std::string name;  // IMAP name: INBOX, Junk, Archive
	inbound::FolderKind kind = inbound::FolderKind::neutral;
	std::map<std::string, SeenFile> files;
};

// What the history says a changed folder holds: unique name → record id
// and mark.
using RecordedFolder = std::map<std::string, std::pair<uint64_t, inbound::JunkMark>>;

// Maildir++: the root is INBOX, every ".name" directory a folder. Pairs of
// directory name and path; none when the Maildir is not there.
std::vector<std::pair<std::string, std::string>> maildir_folders(const std::string& maildir) {
	std::vector<std::pair<std::string, std::string>> folders;
	std::error_code ec;
	if (!fs::is_directory(maildir, ec)) return folders;
	folders.emplace_back("", maildir);
	for (const auto& entry : fs::directory_iterator(maildir, ec)) {
		std::string name = entry.path().filename().string();
		if (name.size() > 1 && name[0] == '.' && name != ".." && entry.is_directory(ec))
			folders.emplace_back(name, entry.path().string());
	}
	return folders;
}

// The files of one folder (new/ and cur/) with the marks their keywords give.
ChangedFolder read_folder(const std::string& dir_name, const std::string& path,
                          const inbound::FolderClassifier& classifier) {
	ChangedFolder folder;
	folder.name = inbound::folder_name_from_dir(dir_name);
	folder.kind = classifier.classify(folder.name);
	auto keywords = inbound::parse_dovecot_keywords(read_keywords_file(path + "/dovecot-keywords"));
	std::error_code ec;
	for (const char* sub : {"new", "cur"}) {
		for (const auto& entry : fs::directory_iterator(path + "/" + sub, ec)) {
			std::string file = entry.path().filename().string();
			if (file.empty() || file[0] == '.') continue;
			SeenFile seen{entry.path().string(),
			              inbound::junk_mark_from_keywords(inbound::maildir_flags(file), keywords)};
			folder.files.emplace(std::string(inbound::maildir_unique_name(file)), std::move(seen));
		}
	}
	return folder;
}

// The folders whose cur/ or new/ changed since the last pass (`seen`: the
// directories' modification times then).
std::vector<ChangedFolder> changed_folders(const std::string& maildir, const inbound::FolderClassifier& classifier,
                                           std::map<std::string, std::pair<int64_t, int64_t>>& seen, ScanStats& stats) {
	std::vector<ChangedFolder> changed;
	for (const auto& [dir_name, path] : maildir_folders(maildir)) {
		std::pair<int64_t, int64_t> times{mtime_ns(path + "/cur"), mtime_ns(path + "/new")};
		auto it = seen.find(path);
		if (it != seen.end() && it->second == times) continue;
		seen[path] = times;
		++stats.folders_read;
		changed.push_back(read_folder(dir_name, path, classifier));
	}
	return changed;
}

// One file found in a changed folder: its record learns the folder and the
// mark, and the junk filter a changed mark.
void update_record(MessageHistory& history, Env& env, const config::Account& account,
                   const inbound::FolderClassifier& classifier, const ChangedFolder& folder, const std::string& unique,
                   const SeenFile& file, ScanStats& stats) {
	auto record = history.find_by_unique_name(account.name, unique);
	if (!record || record->expunged) return;
	std::optional<inbound::FolderKind> previous_kind;
	if (!record->mailbox.empty()) previous_kind = classifier.classify(record->mailbox);
	inbound::JunkMark mark = inbound::next_junk_mark(record->junk, previous_kind, folder.kind, file.from_keywords);
	if (mark == record->junk && record->mailbox == folder.name) return;
	inbound::JunkMark old_mark = record->junk;
	if (record->mailbox != folder.name) ++stats.moved;
	record->junk = mark;
	record->mailbox = folder.name;
	history.update(*record);
	if (mark != old_mark) {
		++stats.marks_changed;
		on_junk_mark_changed(env, account, unique, old_mark, mark, file.path);
	}
}

// Files in the changed folders: new folder, new mark. Returns the unique
// names present in any of them.
std::set<std::string> update_present(MessageHistory& history, Env& env, const config::Account& account,
                                     const inbound::FolderClassifier& classifier,
                                     const std::vector<ChangedFolder>& changed,
                                     const std::vector<RecordedFolder>& recorded, ScanStats& stats) {
	std::set<std::string> present;
	for (size_t i = 0; i < changed.size(); ++i) {
		const ChangedFolder& folder = changed[i];
		for (const auto& [unique, file] : folder.files) {
			present.insert(unique);
			// A file already recorded here whose mark cannot change needs
			// no lookup of its own.
			if (auto known = recorded[i].find(unique); known != recorded[i].end()) {
				inbound::JunkMark mark = known->second.second;
				if (inbound::next_junk_mark(mark, folder.kind, folder.kind, file.from_keywords) == mark)
					continue;
			}
			update_record(history, env, account, classifier, folder, unique, file, stats);
		}
	}
	return present;
}

// Records a changed folder should hold but no changed folder does: the file
// is gone from every folder (a move would have changed the destination
// folder too). Marked in transactions of a bounded size: a user emptying a
// large folder costs one transaction per batch, not one per message, and a
// transaction never holds more locks than a batch needs.
void mark_expunged(MessageHistory& history, const std::string& account, const std::vector<RecordedFolder>& recorded,
                   const std::set<std::string>& present, ScanStats& stats) {
	constexpr size_t batch = 500;
	std::vector<std::string> gone;
	auto flush = [&] {
		stats.expunged += history.mark_expunged(account, gone);
		gone.clear();
	};
	for (const RecordedFolder& folder : recorded)
		for (const auto& [unique, entry] : folder) {
			if (present.count(unique)) continue;
			gone.push_back(unique);
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

}  // namespace

ScanStats JunkScanner::scan(const config::Config& cfg, Env& env, int64_t now) {
	std::lock_guard lock(mu_);
	ScanStats stats;
	MessageHistory history(env);
	for (const auto& [account_name, account] : cfg.accounts) {
		std::optional<inbound::FolderClassifier> classifier;
		try {
			classifier.emplace(account.junk_folder_rules);
		} catch (const std::regex_error&) {
			continue;  // the config loader rejects these; never here
		}
		std::vector<ChangedFolder> changed = changed_folders(account.maildir, *classifier, seen_, stats);
		// What the history says each changed folder holds, in one range scan
		// per folder: files already there whose mark cannot change are not
		// looked up one by one.
		std::vector<RecordedFolder> recorded(changed.size());
		for (size_t i = 0; i < changed.size(); ++i)
			for (auto& e : history.in_mailbox(account_name, changed[i].name))
				recorded[i].emplace(std::move(e.unique_name), std::make_pair(e.id, e.junk));
		std::set<std::string> present = update_present(history, env, account, *classifier, changed, recorded,
		                                               stats);
		mark_expunged(history, account_name, recorded, present, stats);
	}
	prune_history(history, cfg, now, stats);
	return stats;
}

}  // namespace tern::store
