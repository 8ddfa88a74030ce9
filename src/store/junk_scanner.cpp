#include "store/junk_scanner.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

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
		train_junk_mark_change(env, account.name, message_path, training_mark(old_mark), training_mark(new_mark));
	} catch (const std::exception& e) {
		// The mark is recorded; only this message's training is missed.
		log::error("training the junk filter", {{"account", account.name}, {"message", unique_name}, {"error", e.what()}});
	}
}

namespace {

int64_t mtime_ns(const std::string& dir) {
	struct stat st {};
	if (::stat(dir.c_str(), &st) != 0) return -1;
	return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string read_small_file(const std::string& path) {
	std::ifstream in(path, std::ios::binary);
	std::ostringstream out;
	out << in.rdbuf();
	return out.str();
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
		// Maildir++: the root is INBOX, every ".name" directory a folder.
		std::vector<std::pair<std::string, std::string>> folders;  // dir name, path
		std::error_code ec;
		if (!fs::is_directory(account.maildir, ec)) continue;
		folders.emplace_back("", account.maildir);
		for (const auto& entry : fs::directory_iterator(account.maildir, ec)) {
			std::string name = entry.path().filename().string();
			if (name.size() > 1 && name[0] == '.' && name != ".." && entry.is_directory(ec))
				folders.emplace_back(name, entry.path().string());
		}

		std::vector<ChangedFolder> changed;
		for (const auto& [dir_name, path] : folders) {
			std::pair<int64_t, int64_t> times{mtime_ns(path + "/cur"), mtime_ns(path + "/new")};
			auto it = seen_.find(path);
			if (it != seen_.end() && it->second == times) continue;
			seen_[path] = times;
			ChangedFolder folder;
			folder.name = inbound::folder_name_from_dir(dir_name);
			folder.kind = classifier->classify(folder.name);
			auto keywords = inbound::parse_dovecot_keywords(read_small_file(path + "/dovecot-keywords"));
			for (const char* sub : {"new", "cur"}) {
				for (const auto& entry : fs::directory_iterator(path + "/" + sub, ec)) {
					std::string file = entry.path().filename().string();
					if (file.empty() || file[0] == '.') continue;
					SeenFile seen{entry.path().string(),
					              inbound::junk_mark_from_keywords(inbound::maildir_flags(file), keywords)};
					folder.files.emplace(std::string(inbound::maildir_unique_name(file)), std::move(seen));
				}
			}
			++stats.folders_read;
			changed.push_back(std::move(folder));
		}

		// What the history says each changed folder holds, in one range scan
		// per folder: files already there whose mark cannot change are not
		// looked up one by one.
		std::vector<std::map<std::string, std::pair<uint64_t, inbound::JunkMark>>> recorded(changed.size());
		for (size_t i = 0; i < changed.size(); ++i)
			for (auto& e : history.in_mailbox(account_name, changed[i].name))
				recorded[i].emplace(std::move(e.unique_name), std::make_pair(e.id, e.junk));

		// Files in the changed folders: new folder, new mark.
		std::set<std::string> present;
		for (size_t i = 0; i < changed.size(); ++i) {
			const ChangedFolder& folder = changed[i];
			for (const auto& [unique, file] : folder.files) {
				present.insert(unique);
				if (auto known = recorded[i].find(unique); known != recorded[i].end()) {
					inbound::JunkMark mark = known->second.second;
					if (inbound::next_junk_mark(mark, folder.kind, folder.kind, file.from_keywords) == mark) continue;
				}
				auto record = history.find_by_unique_name(account_name, unique);
				if (!record || record->expunged) continue;
				std::optional<inbound::FolderKind> previous_kind;
				if (!record->mailbox.empty()) previous_kind = classifier->classify(record->mailbox);
				inbound::JunkMark mark =
				    inbound::next_junk_mark(record->junk, previous_kind, folder.kind, file.from_keywords);
				if (mark == record->junk && record->mailbox == folder.name) continue;
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
		}
		// Records a changed folder should hold but no changed folder does:
		// the file is gone from every folder (a move would have changed the
		// destination folder too).
		for (size_t i = 0; i < changed.size(); ++i) {
			for (const auto& [unique, entry] : recorded[i]) {
				if (present.count(unique)) continue;
				auto record = history.get(entry.first);
				if (!record || record->expunged) continue;
				record->expunged = true;
				history.update(*record);
				++stats.expunged;
			}
		}
	}
	// A bounded amount of pruning per pass; the rest waits for the next.
	int64_t cutoff = now - cfg.message_history.max_age_days * 24 * 3600;
	for (int round = 0; round < 50; ++round) {
		size_t pruned = history.prune(cutoff);
		stats.pruned += pruned;
		if (pruned == 0) break;
	}
	return stats;
}

}  // namespace tern::store
