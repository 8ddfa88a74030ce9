// Durable Maildir delivery (doc/behaviour.md "Maildir", "Durability and safety
// promises"): a message is fsync'd in tmp/, renamed into new/ (or cur/), and
// the touched directories are fsync'd once per call, so one call for many
// copies (or many sessions batched by the caller) pays the directory
// fsyncs once.
#include "store/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string_view>

#include "inbound/junk_marks.h"
#include "store/files.h"
#include "util/mailbox_name.h"
#include "util/storage.h"
#include "util/strings.h"
#include "util/unique_fd.h"

namespace tern::store {

namespace {

// Process-wide: names stay unique across worker threads delivering in the
// same microsecond.
std::atomic<uint64_t> delivery_counter{0};

std::string parent_dir(const std::string& path) {
	size_t end = path.find_last_not_of('/');
	if (end == std::string::npos) return "/";
	size_t slash = path.find_last_of('/', end);
	if (slash == std::string::npos) return ".";
	size_t keep = path.find_last_not_of('/', slash);
	return keep == std::string::npos ? "/" : path.substr(0, keep + 1);
}

bool is_directory(const std::string& path) {
	struct stat st;
	return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Creates one directory unless it exists. A new directory's entry lives in
// its parent, so both go into `to_sync` for the commit.
void make_directory(const std::string& path, std::set<std::string>& to_sync) {
	if (::mkdir(path.c_str(), 0700) == 0) {
		to_sync.insert(path);
		to_sync.insert(parent_dir(path));
		return;
	}
	int err = errno;
	if (err == EEXIST && is_directory(path)) return;
	throw file_error("mkdir", path, err == EEXIST ? ENOTDIR : err);
}

// mkdir -p: the account's Maildir root may sit under directories that do
// not exist yet (data_dir/accounts/<name>/Maildir).
void make_directory_tree(const std::string& path, std::set<std::string>& to_sync) {
	if (path.empty() || is_directory(path)) return;
	std::string parent = parent_dir(path);
	if (parent != path) make_directory_tree(parent, to_sync);
	make_directory(path, to_sync);
}

// Makes `folder` a usable Maildir(++) folder: tmp, new, cur and, for
// folders below the root, the `maildirfolder` marker Dovecot looks for.
void prepare_folder(const std::string& folder, bool is_root, std::set<std::string>& to_sync) {
	make_directory_tree(folder, to_sync);
	for (const char* sub : {"/tmp", "/new", "/cur"}) make_directory(folder + sub, to_sync);
	if (is_root) return;
	std::string marker = folder + "/maildirfolder";
	if (UniqueFd(::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600))) {
		to_sync.insert(folder);
	} else if (errno != EEXIST) {
		throw file_error("create", marker, errno);
	}
}

// Maildir host part: '/' and ':' cannot appear in a file name's host part
// (cr.yp.to/proto/maildir.html), so they are written as octal escapes.
std::string maildir_host(const std::string& hostname) {
	std::string host = hostname;
	if (host.empty()) {
		char buf[256] = {};
		if (::gethostname(buf, sizeof buf - 1) == 0) host = buf;
		if (host.empty()) host = "localhost";
	}
	std::string out;
	for (char c : host) {
		if (c == '/')
			out += "\\057";
		else if (c == ':')
			out += "\\072";
		else
			out += c;
	}
	return out;
}

// `<seconds>.M<microseconds>P<pid>Q<counter>.<host>,S=<size>` (the Dovecot
// form of the unique part).
std::string unique_name(const std::string& host, uint64_t size) {
	struct timeval now;
	::gettimeofday(&now, nullptr);
	uint64_t counter = ++delivery_counter;
	// Read once: the daemon forks (daemonizes) before its first delivery.
	static const pid_t pid = ::getpid();
	return std::to_string(now.tv_sec) + ".M" + std::to_string(now.tv_usec) + "P" + std::to_string(pid) + "Q" +
	    std::to_string(counter) + "." + host + ",S=" + std::to_string(size);
}

// The process-wide set behind remember_durable_folders. A folder removed
// by hand while the daemon runs is forgotten when creating a file in it
// fails, and prepared again by the next delivery.
std::mutex durable_folders_mutex;
std::set<std::string> durable_folders;

bool is_durable_folder(const std::string& folder) {
	std::lock_guard lock(durable_folders_mutex);
	return durable_folders.count(folder) != 0;
}

void forget_durable_folder(const std::string& folder) {
	std::lock_guard lock(durable_folders_mutex);
	durable_folders.erase(folder);
}

bool is_inbox(const std::string& mailbox) { return mailbox.empty() || iequals(mailbox, "INBOX"); }

// One copy between its tmp/ write and its rename.
struct StagedCopy {
	std::string tmp_path;
	std::string final_dir;
	std::string final_path;
	bool renamed = false;
};

void remove_unrenamed(const std::vector<StagedCopy>& staged) {
	for (const StagedCopy& s : staged) {
		if (!s.renamed) ::unlink(s.tmp_path.c_str());
	}
}

}  // namespace

void remember_durable_folders(const std::vector<std::string>& folders) {
	std::lock_guard lock(durable_folders_mutex);
	durable_folders.insert(folders.begin(), folders.end());
}

std::string mailbox_dir(const std::string& maildir, const std::string& mailbox) {
	if (is_inbox(mailbox)) return maildir;
	// Maildir++ flattens the hierarchy into one dot-separated directory name
	// under the root: "a/b" is ".a.b", each part in the modified UTF-7 that
	// Dovecot reads there. A part that is no valid name is refused: "."
	// alone would become "..", the Maildir's parent.
	std::string folder = maildir + "/";
	for (std::string_view part : split(mailbox, '/')) {
		if (!valid_mailbox_name(part)) throw std::runtime_error("invalid mailbox name: " + mailbox);
		folder += '.';
		folder += mailbox_to_utf7(part);
	}
	return folder;
}

std::string UnlistedDir::text() const { return file_error_text("listing", dir, error.value()); }

std::optional<UnlistedDir> for_each_message_file(const std::string& folder_dir,
                                                 const std::function<void(const MessageFile&)>& fn) {
	std::optional<UnlistedDir> unlisted;
	MessageFile file;
	for (const char* sub : {"new", "cur"}) {
		std::error_code ec;
		const std::string dir = folder_dir + "/" + sub;
		// The error_code forms throughout: a directory that fails is
		// reported, and the other one still walked.
		const std::filesystem::directory_iterator end;
		for (std::filesystem::directory_iterator it(dir, ec); !ec && it != end; it.increment(ec)) {
			file.path = it->path().string();
			file.file_name = std::string_view(file.path).substr(file.path.rfind('/') + 1);
			if (file.file_name.empty() || file.file_name[0] == '.') continue;
			file.unique_name = inbound::maildir_unique_name(file.file_name);
			file.in_cur = sub[0] == 'c';
			fn(file);
		}
		if (ec && !unlisted) unlisted = UnlistedDir{dir, ec};
	}
	return unlisted;
}

void fsync_dir(const std::string& dir) {
	UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (fd.get() < 0) throw file_error("open", dir, errno);
	if (::fsync(fd.get()) != 0) throw file_error("fsync", dir, errno);
}

DirSyncFailures sync_each_dir(const std::set<std::string>& dirs,
                              const std::function<void(const std::string& dir)>& sync_one) {
	DirSyncFailures failures;
	for (const std::string& dir : dirs) {
		// Whatever one directory does, the others are synced.
		try {
			sync_one(dir);
		} catch (const std::exception& e) {
			failures[dir] = e.what();
		} catch (...) {
			failures[dir] = "fsync " + dir + ": unknown error";
		}
	}
	return failures;
}

void fsync_dirs(const std::set<std::string>& dirs) {
	DirSyncFailures failures = sync_each_dir(dirs, fsync_dir);
	if (!failures.empty()) throw std::runtime_error(failures.begin()->second);
}

void withdraw_copies(std::vector<MaildirCopy>& copies) {
	for (MaildirCopy& c : copies) {
		if (c.final_path.empty()) continue;
		::unlink(c.final_path.c_str());
		c.final_path.clear();
	}
}

void deliver_maildir(const std::string& body_path, std::vector<MaildirCopy>& copies, const std::string& hostname) {
	std::set<std::string> to_sync;
	deliver_maildir_unsynced(body_path, copies, hostname, to_sync);
	// The group commit: each touched directory once.
	fsync_dirs(to_sync);
}

void deliver_maildir_unsynced(const std::string& body_path, std::vector<MaildirCopy>& copies,
                              const std::string& hostname, std::set<std::string>& to_sync, uint64_t body_offset) {
	MaildirBatch batch(hostname);
	batch.stage(body_path, copies, body_offset);
	std::vector<std::string> errors = batch.commit_files(to_sync);
	if (!errors[0].empty()) throw std::runtime_error(errors[0]);
	copies = batch.delivered(0);
}

struct MaildirBatch::Message {
	std::vector<MaildirCopy> copies;
	std::vector<StagedCopy> staged;
	std::vector<UniqueFd> fds;  // open tmp files, fsync'd at commit
	std::string error;
};

MaildirBatch::MaildirBatch(std::string hostname, bool remember_folders)
	: host_(maildir_host(hostname)), remember_folders_(remember_folders) {}

void MaildirBatch::prepare(const std::string& folder, bool is_root) {
	if (!prepared_.insert(folder).second) return;
	if (!remember_folders_) {
		prepare_folder(folder, is_root, dirs_);
		return;
	}
	if (is_durable_folder(folder)) return;
	prepare_folder(folder, is_root, dirs_);
	// Found existing is not known durable: another thread may have created
	// it a moment ago. Syncing the whole chain once per folder and process
	// is cheap, and afterwards the folder is remembered. The chain ends
	// below the first folder this process cannot list: every folder ternd
	// makes is its own (0700), so that one and those above it were made by
	// someone else, and opening it to sync would only fail the delivery.
	for (const char* sub : {"/tmp", "/new", "/cur"}) dirs_.insert(folder + sub);
	for (std::string dir = folder; dir != "/" && dir != "."; dir = parent_dir(dir)) {
		if (::faccessat(AT_FDCWD, dir.c_str(), R_OK, AT_EACCESS) != 0) break;
		dirs_.insert(dir);
	}
	new_folders_.push_back(folder);
}

MaildirBatch::~MaildirBatch() {
	for (auto& m : messages_) remove_unrenamed(m->staged);
}

size_t MaildirBatch::stage(const std::string& body_path, const std::vector<MaildirCopy>& copies, uint64_t body_offset) {
	UniqueFd body(::open(body_path.c_str(), O_RDONLY | O_CLOEXEC));
	int open_errno = errno;
	return stage_opened(body.get(), open_errno, -1, body_path, copies, body_offset);
}

size_t MaildirBatch::stage(int body_fd, uint64_t body_size, const std::string& body_path,
                           const std::vector<MaildirCopy>& copies) {
	return stage_opened(body_fd, EBADF, static_cast<int64_t>(body_size), body_path, copies, 0);
}

namespace {

// The body's bytes after `body_offset`: `known_size` when the caller knows
// how many it wrote, else what fstat(2) says.
uint64_t body_size_of(int body_fd, int64_t known_size, const std::string& body_path, uint64_t body_offset) {
	uint64_t file_size = static_cast<uint64_t>(known_size);
	if (known_size < 0) {
		struct stat body_stat;
		if (::fstat(body_fd, &body_stat) != 0) throw file_error("stat", body_path, errno);
		file_size = static_cast<uint64_t>(body_stat.st_size);
	}
	if (file_size < body_offset) throw std::runtime_error("body file shorter than its header: " + body_path);
	return file_size - body_offset;
}

}  // namespace

size_t MaildirBatch::stage_opened(int body_fd, int open_errno, int64_t known_size, const std::string& body_path,
                                  const std::vector<MaildirCopy>& copies, uint64_t body_offset) {
	auto msg = std::make_unique<Message>();
	msg->copies = copies;
	try {
		if (body_fd < 0) throw file_error("open", body_path, open_errno);
		const uint64_t body_size = body_size_of(body_fd, known_size, body_path, body_offset);
		// Every copy is written into tmp/; nothing is visible yet, so a failure
		// here delivers nothing. The fsyncs wait for commit_files, where the
		// first one commits the whole batch on a journaling file system.
		for (MaildirCopy& copy : msg->copies) {
			std::string folder = mailbox_dir(copy.maildir, copy.mailbox);
			// A folder lives inside a Maildir whose root must be one too
			// (Dovecot reads INBOX from it), so the root is prepared first.
			prepare(copy.maildir, true);
			prepare(folder, is_inbox(copy.mailbox));

			const uint64_t size = copy.prefix.size() + body_size;
			const std::string name = unique_name(host_, size);
			StagedCopy s;
			s.tmp_path = folder + "/tmp/" + name;
			s.final_dir = folder + (copy.seen ? "/cur" : "/new");
			s.final_path = s.final_dir + "/" + name + (copy.seen ? ":2,S" : "");

			UniqueFd created(::open(s.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
			if (!created) {
				int err = errno;
				if (err == ENOENT) forget_durable_folder(folder);
				throw file_error("create", s.tmp_path, err);
			}
			msg->staged.push_back(s);
			int fd = created.get();
			msg->fds.push_back(std::move(created));
			write_all(fd, copy.prefix, s.tmp_path);
			uint64_t copied = copy_file_bytes(body_fd, body_path, fd, s.tmp_path, body_offset, body_size);
			// The name already carries S=; a body that shrank under us
			// would make it lie.
			if (copied != body_size)
				throw std::runtime_error("body file changed size during delivery: " + body_path);
		}
	} catch (const std::exception& e) {
		msg->error = e.what();
		msg->fds.clear();
		remove_unrenamed(msg->staged);
		msg->staged.clear();
	}
	messages_.push_back(std::move(msg));
	return messages_.size() - 1;
}

std::vector<std::string> MaildirBatch::commit_files(std::set<std::string>& to_sync) {
	for (auto& m : messages_) {
		if (!m->error.empty()) continue;
		try {
			for (size_t i = 0; i < m->fds.size(); ++i) {
				// fdatasync(2) suffices for a file written once: it flushes
				// the data and the size and blocks needed to read it back
				// (not the times). The name is made durable by the rename
				// and the directory fsync that follow; the error keeps the
				// word "fsync" that the logs have always shown.
				if (::fdatasync(m->fds[i].get()) != 0)
					throw file_error("fsync", m->staged[i].tmp_path, errno);
				if (m->fds[i].close() != 0) throw file_error("close", m->staged[i].tmp_path, errno);
			}
			// The renames make the copies visible.
			for (size_t i = 0; i < m->staged.size(); ++i) {
				StagedCopy& s = m->staged[i];
				if (::rename(s.tmp_path.c_str(), s.final_path.c_str()) != 0) {
					int err = errno;
					// new/ or cur/ removed by hand while the folder was
					// remembered as prepared: made again (and its parent
					// synced with the batch's directories), then one retry.
					std::string folder = parent_dir(s.final_dir);
					if (err != ENOENT || ::mkdir(s.final_dir.c_str(), 0700) != 0 ||
					    ::rename(s.tmp_path.c_str(), s.final_path.c_str()) != 0) {
						forget_durable_folder(folder);
						throw file_error("rename to", s.final_path, err);
					}
					to_sync.insert(folder);
				}
				s.renamed = true;
				m->copies[i].final_path = s.final_path;
				to_sync.insert(s.final_dir);
			}
		} catch (const std::exception& e) {
			m->error = e.what();
			m->fds.clear();
			// The message failed whole: its copies renamed before the
			// failure go again, and the tmp/ files of the others.
			withdraw_copies(m->copies);
			remove_unrenamed(m->staged);
		}
	}
	to_sync.insert(dirs_.begin(), dirs_.end());
	std::vector<std::string> errors;
	for (auto& m : messages_) errors.push_back(m->error);
	return errors;
}

std::vector<MaildirCopy> MaildirBatch::delivered(size_t index) const { return messages_[index]->copies; }

}  // namespace tern::store
