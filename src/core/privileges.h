// Running as the configured `user`. ternd binds its ports and opens its
// files as root, then switches to `user`; but SIGHUP rereads the config,
// the certificate and the DKIM keys, SIGUSR1 reopens the log, and the
// database is opened after the switch, all as `user`. So before the switch
// ternd checks that `user` can reach each of those files, and refuses to
// start (or `ternd -n` reports) with the path and the reason when it
// cannot, instead of failing at the first reload or certificate renewal.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace tern::core {

struct UserIds {
	std::string name;
	uid_t uid = 0;
	gid_t gid = 0;
};

// The account `name` from the passwd database; nullopt when there is none.
std::optional<UserIds> lookup_user(const std::string& name);

// setgid, initgroups and setuid to `user` (root only); throws with the reason.
void become_user(const UserIds& user);

// What `user` must be able to do with one file.
enum class Need {
	read,          // open it for reading
	write,         // a file: open it for writing; a directory: create and remove entries in it
	write_entries  // a directory and every file directly in it (the database)
};

struct FileNeed {
	std::string path;
	std::string key;  // the config key it comes from ("tls.key_file"), or what it is
	Need need = Need::read;
	bool may_be_missing = false;  // absent is fine (ternd creates it)
	bool warning_only = false;    // a problem is reported, the start goes on
};

// Pure: the files the daemon reopens, or opens only after the privilege
// drop, for `cfg` (pid_file: the one in effect, "" for none).
std::vector<FileNeed> files_needed_after_drop(const config::Config& cfg, const std::string& pid_file);

struct FileProblem {
	FileNeed file;
	std::string path;    // the file that failed (an entry, for write_entries)
	int error = 0;       // errno
	std::string reason;  // strerror text
};

// Tries each need for real (open(2) and access(2) with the kernel's own
// rules: modes, ACLs, groups, every directory on the way). With `as` and
// root privileges, the tries run in a child process switched to `as`;
// otherwise as this process.
std::vector<FileProblem> check_files(const std::vector<FileNeed>& needs, const std::optional<UserIds>& as);

// "<path>: <key>: user <name> cannot read it: <reason>" (the form of the
// config errors: file, key path, what is wrong).
std::string describe_problem(const FileProblem& problem, const std::string& user_name);

// The start-up verdict for `cfg` as ternd would run it: who it would run as,
// the file problems for that user, and the DKIM keys that do not load.
struct StartCheck {
	std::vector<std::string> errors;    // the start must not go on
	std::vector<std::string> warnings;  // said, the start goes on
};
// `config_check` (ternd -n, ternctl check) judges a config that may be
// checked before it is deployed: a file that does not exist yet, or a
// `user` not yet created, is a warning there and an error at start.
enum class CheckFor { start, config_check };
StartCheck check_start(const config::Config& cfg, const std::string& pid_file, CheckFor purpose);

}  // namespace tern::core
