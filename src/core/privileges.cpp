#include "core/privileges.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "util/unique_fd.h"

namespace tern::core {

std::optional<UserIds> lookup_user(const std::string& name) {
	passwd* pw = getpwnam(name.c_str());
	if (!pw) return std::nullopt;
	return UserIds{pw->pw_name, pw->pw_uid, pw->pw_gid};
}

void become_user(const UserIds& user) {
	// Group first: once the uid changed, the groups can no longer be set.
	if (initgroups(user.name.c_str(), user.gid) != 0 || setgid(user.gid) != 0 || setuid(user.uid) != 0)
		throw std::runtime_error("dropping privileges to " + user.name + ": " + std::strerror(errno));
}

std::vector<FileNeed> files_needed_after_drop(const config::Config& cfg, const std::string& pid_file) {
	std::vector<FileNeed> needs;
	if (cfg.localserve) return needs;
	// SIGHUP rereads the config and everything it names.
	if (!cfg.file.empty()) needs.push_back({cfg.file, "config file", Need::read});
	if (!cfg.tls.cert_file.empty()) {
		needs.push_back({cfg.tls.cert_file, "tls.cert_file", Need::read});
		needs.push_back({cfg.tls.key_file, "tls.key_file", Need::read});
	}
	for (const auto& [name, domain] : cfg.domains)
		for (const auto& selector : domain.dkim_sign) {
			auto it = domain.dkim_selectors.find(selector);
			if (it == domain.dkim_selectors.end()) continue;
			needs.push_back({it->second.private_key_file,
			                 "domains." + name + ".dkim.selectors." + selector + ".private_key_file",
			                 Need::read});
		}
	if (!cfg.queue.smarthost_password_file.empty())
		needs.push_back({cfg.queue.smarthost_password_file, "queue.smarthost_auth.password_file", Need::read});
	// The database is opened after the drop; files a root process left in
	// it (a ternd or ternctl run as root without `user`) would lock us out.
	needs.push_back({cfg.data_dir + "/db", "data_dir", Need::write_entries, true});
	for (const auto& [name, account] : cfg.accounts)
		needs.push_back({account.maildir, "accounts." + name + ".maildir", Need::write, true});
	// SIGUSR1 reopens the log (after logrotate); ternd creates a missing one for `user`.
	if (!cfg.log.file.empty()) needs.push_back({cfg.log.file, "log.file", Need::write, true});
	// Removing the pid file at exit needs its folder; ternd creates a missing one for `user`.
	if (!pid_file.empty()) {
		std::string dir = std::filesystem::path(pid_file).parent_path().string();
		needs.push_back({dir.empty() ? "." : dir, "pid_file", Need::write, true, true});
	}
	return needs;
}

namespace {

// errno of the first failure, 0 when `need` is met. `failed_path` names the
// file that failed (an entry of a write_entries directory).
int try_need(const FileNeed& need, std::string& failed_path) {
	failed_path = need.path;
	struct stat st {};
	if (stat(need.path.c_str(), &st) != 0) return (errno == ENOENT && need.may_be_missing) ? 0 : errno;
	if (need.need == Need::read) {
		UniqueFd fd(open(need.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
		return fd ? 0 : errno;
	}
	// access(2) checks the real ids: this process's own, or those the
	// checking child switched to.
	int mode = S_ISDIR(st.st_mode) ? (W_OK | X_OK) : W_OK;
	if (access(need.path.c_str(), mode) != 0) return errno;
	if (need.need != Need::write_entries || !S_ISDIR(st.st_mode)) return 0;
	if (access(need.path.c_str(), R_OK) != 0) return errno;
	DIR* dir = opendir(need.path.c_str());
	if (!dir) return errno;
	int err = 0;
	while (dirent* e = readdir(dir)) {
		std::string entry = need.path + "/" + e->d_name;
		struct stat est {};
		if (lstat(entry.c_str(), &est) != 0 || !S_ISREG(est.st_mode)) continue;
		if (access(entry.c_str(), R_OK | W_OK) != 0) {
			err = errno;
			failed_path = entry;
			break;
		}
	}
	closedir(dir);
	return err;
}

std::vector<FileProblem> check_here(const std::vector<FileNeed>& needs) {
	std::vector<FileProblem> problems;
	for (const auto& need : needs) {
		std::string path;
		if (int err = try_need(need, path)) problems.push_back({need, path, err, std::strerror(err)});
	}
	return problems;
}

bool write_all(int fd, const std::string& text) {
	size_t done = 0;
	while (done < text.size()) {
		ssize_t n = write(fd, text.data() + done, text.size() - done);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return false;
		done += size_t(n);
	}
	return true;
}

// The child's report, one line per problem: "<index>\t<path>\t<errno>".
// A first line "!<text>" means it could not switch users.
std::vector<FileProblem> check_as(const std::vector<FileNeed>& needs, const UserIds& user) {
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
	UniqueFd read_end(fds[0]), write_end(fds[1]);
	pid_t pid = fork();
	if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
	if (pid == 0) {
		read_end.reset();
		std::string report;
		try {
			become_user(user);
			for (size_t i = 0; i < needs.size(); i++) {
				std::string path;
				if (int err = try_need(needs[i], path))
					report += std::to_string(i) + "\t" + path + "\t" + std::to_string(err) + "\n";
			}
		} catch (const std::exception& e) {
			report = std::string("!") + e.what() + "\n";
		}
		_exit(write_all(write_end.get(), report) ? 0 : 1);
	}
	write_end.reset();  // the child's copy is the only writer left: EOF when it exits
	std::string report;
	char buf[4096];
	for (;;) {
		ssize_t n = read(read_end.get(), buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		report.append(buf, size_t(n));
	}
	read_end.reset();
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		throw std::runtime_error("checking files as user " + user.name + ": the checking process failed");
	if (!report.empty() && report[0] == '!') throw std::runtime_error(report.substr(1, report.find('\n') - 1));
	std::vector<FileProblem> problems;
	size_t start = 0;
	while (start < report.size()) {
		size_t end = report.find('\n', start);
		std::string line = report.substr(start, end - start);
		start = end + 1;
		size_t t1 = line.find('\t'), t2 = line.rfind('\t');
		if (t1 == std::string::npos || t2 == t1) continue;
		size_t index = std::stoul(line.substr(0, t1));
		if (index >= needs.size()) continue;
		int err = std::stoi(line.substr(t2 + 1));
		problems.push_back({needs[index], line.substr(t1 + 1, t2 - t1 - 1), err, std::strerror(err)});
	}
	return problems;
}

}  // namespace

std::vector<FileProblem> check_files(const std::vector<FileNeed>& needs, const std::optional<UserIds>& as) {
	if (as && geteuid() == 0 && as->uid != 0) return check_as(needs, *as);
	return check_here(needs);
}

std::string describe_problem(const FileProblem& problem, const std::string& user_name) {
	std::string what;
	switch (problem.file.need) {
	case Need::read: what = "cannot read it"; break;
	case Need::write: what = "cannot write it"; break;
	case Need::write_entries:
		what = "cannot write it (chown -R " + user_name + " " + problem.file.path + ")";
		break;
	}
	std::string text = problem.path + ": " + problem.file.key + ": user " + user_name + " " + what + ": " +
	    problem.reason;
	if (problem.file.key == "pid_file") text += "; the pid file will stay after exit";
	return text;
}

namespace {

// Listeners that start but cannot serve anyone without a certificate.
std::vector<std::string> listeners_without_tls(const config::Config& cfg) {
	std::vector<std::string> warnings;
	if (!cfg.tls.cert_file.empty()) return warnings;
	for (const auto& [name, l] : cfg.listeners) {
		if (l.submissions.enabled)
			warnings.push_back(cfg.file + ": listeners." + name +
			                   ".submissions: no tls.cert_file: every client of port " +
			                   std::to_string(l.submissions.port) + " is closed before the greeting");
		if (l.submission.enabled && l.submission.require_starttls)
			warnings.push_back(
			    cfg.file + ": listeners." + name +
			    ".submission.require_starttls: no tls.cert_file, so no STARTTLS: no client of "
			    "port " +
			    std::to_string(l.submission.port) + " can log in");
	}
	return warnings;
}

}  // namespace

StartCheck check_start(const config::Config& cfg, const std::string& pid_file, CheckFor purpose) {
	StartCheck result;
	if (cfg.localserve) return result;
	result.warnings = listeners_without_tls(cfg);
	std::optional<UserIds> as;
	std::string user_name;
	if (geteuid() == 0 && !cfg.user.empty()) {
		as = lookup_user(cfg.user);
		if (!as) {
			(purpose == CheckFor::start ? result.errors : result.warnings)
			    .push_back(cfg.file + ": user: no such user: " + cfg.user);
			return result;
		}
		user_name = as->name;
	} else {
		auto self = getpwuid(geteuid());
		user_name = self ? self->pw_name : std::to_string(geteuid());
		// ternd changes user only when started as root: checking as anyone
		// but `user` would answer the wrong question.
		if (!cfg.user.empty() && cfg.user != user_name) {
			result.warnings.push_back("not running as root: the files were not checked for user " +
			                          cfg.user);
			return result;
		}
	}
	auto needs = files_needed_after_drop(cfg, pid_file);
	// ternd hands a data_dir that is not yet `user`'s over to it at start
	// (so its own folder cannot lock it out); until then, what is inside
	// cannot be judged as `user`.
	struct stat data_dir_stat {};
	if (as && stat(cfg.data_dir.c_str(), &data_dir_stat) == 0 && data_dir_stat.st_uid != as->uid)
		std::erase_if(needs, [&](const FileNeed& n) { return n.path.rfind(cfg.data_dir + "/", 0) == 0; });
	std::set<std::string> unreadable;
	for (const auto& problem : check_files(needs, as)) {
		bool not_yet = purpose == CheckFor::config_check && problem.error == ENOENT;
		(problem.file.warning_only || not_yet ? result.warnings : result.errors)
		    .push_back(describe_problem(problem, user_name));
		unreadable.insert(problem.path);
	}
	for (const config::DkimSelector* sel : cfg.unloaded_signing_keys())
		if (!unreadable.count(sel->private_key_file)) result.errors.push_back(sel->key_error);
	return result;
}

}  // namespace tern::core
