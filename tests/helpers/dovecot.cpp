#include "helpers/dovecot.h"

#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace tern::testing {

namespace {

constexpr const char* dovecot_binary = "/usr/sbin/dovecot";

uid_t nobody_uid = 65534;
gid_t nobody_gid = 65534;

int chown_entry(const char* path, const struct stat*, int, struct FTW*) {
	if (lchown(path, nobody_uid, nobody_gid) != 0) return 0;  // best effort; the test sees the outcome
	return 0;
}

}  // namespace

std::vector<std::string> maildir_names(const std::string& dir) {
	std::vector<std::string> out;
	if (DIR* d = opendir(dir.c_str())) {
		while (dirent* e = readdir(d))
			if (e->d_name[0] != '.') out.push_back(e->d_name);
		closedir(d);
	}
	return out;
}

void chown_tree_to_nobody(const std::string& path) {
	if (struct passwd* pw = getpwnam("nobody")) {
		nobody_uid = pw->pw_uid;
		nobody_gid = pw->pw_gid;
	}
	nftw(path.c_str(), chown_entry, 32, FTW_PHYS);
}

DovecotServer::DovecotServer(std::string maildir, std::string user, std::string password)
	: maildir_(std::move(maildir)), user_(std::move(user)), password_(std::move(password)) {}

DovecotServer::~DovecotServer() {
	stop();
	if (!dir_.empty()) remove_tree(dir_);
}

bool DovecotServer::available() {
	return access(dovecot_binary, X_OK) == 0 && access("/usr/lib/dovecot/imap", X_OK) == 0;
}

bool DovecotServer::start() {
	dir_ = make_temp_dir("tern-dovecot-");
	// Dovecot's processes run as its own users and need to reach these.
	chmod(dir_.c_str(), 0755);
	imap_port_ = free_tcp_port();
	lmtp_port_ = free_tcp_port();
	std::string userdb = "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup home=" + dir_ +
	    "/home allow_all_users=yes\n}\n";
	if (!known_users_.empty()) {
		std::string users;
		for (const auto& u : known_users_) users += u + "::::::\n";
		write_file(dir_ + "/users", users);
		userdb = "userdb {\n  driver = passwd-file\n  args = " + dir_ +
		    "/users\n  default_fields = uid=nobody gid=nogroup home=" + dir_ + "/home\n}\n";
	}
	std::string conf = "base_dir = " + dir_ +
	    "/run\n"
	    "state_dir = " +
	    dir_ +
	    "/state\n"
	    "log_path = " +
	    dir_ +
	    "/dovecot.log\n"
	    "protocols = imap lmtp\n"
	    "listen = 127.0.0.1\n"
	    "ssl = no\n"
	    "disable_plaintext_auth = no\n"
	    "auth_mechanisms = " +
	    auth_mechanisms_ +
	    "\n"
	    "mail_location = maildir:" +
	    maildir_ + "\n" +
	    (passdb_.empty() ? "passdb {\n  driver = static\n  args = password=" + password_ + "\n}\n"
	                     : passdb_ + "\n") +
	    userdb + "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = " +
	    std::to_string(imap_port_) +
	    "\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n"
	    "service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = " +
	    std::to_string(lmtp_port_) +
	    "\n  }\n  unix_listener lmtp {\n    mode = 0666\n  }\n}\n"
	    "service auth {\n  unix_listener auth-client {\n    mode = 0666\n  }\n}\n"
	    "lmtp_save_to_detail_mailbox = no\n"
	    "postmaster_address = postmaster@test.example\n" +
	    extra_config_;
	write_file(dir_ + "/dovecot.conf", conf);
	mkdir((dir_ + "/state").c_str(), 0755);
	mkdir((dir_ + "/home").c_str(), 0755);
	chown_tree_to_nobody(dir_ + "/home");
	pid_ = spawn_child({dovecot_binary, "-F", "-c", dir_ + "/dovecot.conf"}, "/dev/null");
	if (pid_ < 0) {
		error_ = std::string("fork: ") + strerror(errno);
		return false;
	}
	if (wait_child_listening(pid_, {imap_port_, lmtp_port_})) return true;
	error_ = std::string(pid_ < 0 ? "dovecot exited at start: " : "dovecot did not listen in time: ") + log_text();
	return false;
}

void DovecotServer::stop() { stop_child(pid_); }

std::string DovecotServer::log_text() const { return dir_.empty() ? std::string() : read_file(dir_ + "/dovecot.log"); }

RunResult DovecotServer::imap(const std::string& python_body, int timeout_ms) const {
	std::string script =
	    "import imaplib, sys\n"
	    "imap = imaplib.IMAP4('127.0.0.1', " +
	    std::to_string(imap_port_) +
	    ")\n"
	    "imap.login('" +
	    user_ + "', '" + password_ + "')\n" + python_body + "\nimap.logout()\n";
	return run_command({"/usr/bin/python3", "-c", script}, timeout_ms);
}

RunResult DovecotServer::imap_login(const std::string& user, const std::string& password, int timeout_ms) const {
	std::string script =
	    "import imaplib, sys\n"
	    "imap = imaplib.IMAP4('127.0.0.1', " +
	    std::to_string(imap_port_) +
	    ")\n"
	    "try:\n"
	    "    imap.login(sys.argv[1], sys.argv[2])\n"
	    "    print('LOGIN OK')\n"
	    "    imap.logout()\n"
	    "except imaplib.IMAP4.error as e:\n"
	    "    print('LOGIN NO', e)\n";
	return run_command({"/usr/bin/python3", "-c", script, user, password}, timeout_ms);
}

}  // namespace tern::testing
