// A private Dovecot (Debian's dovecot-core, dovecot-imapd, dovecot-lmtpd)
// for interoperability tests: its own config, base and state folders under
// a temp dir, IMAP and LMTP on free loopback ports, one user whose mail is
// a given Maildir. Never the system instance. Dovecot refuses to touch mail
// as root, so the mail user is `nobody`: the test hands the Maildir to that
// user (ternd runs with "user": "nobody" in such tests).
#pragma once
#include <string>
#include <vector>
#include <sys/types.h>

#include "helpers/daemon.h"

namespace tern::testing {

class DovecotServer {
public:
	// `maildir`: the user's Maildir root (INBOX), `user`/`password`: the one
	// login Dovecot accepts.
	DovecotServer(std::string maildir, std::string user, std::string password);
	~DovecotServer();
	DovecotServer(const DovecotServer&) = delete;
	DovecotServer& operator=(const DovecotServer&) = delete;

	// Whether Dovecot is installed here (`dovecot` in /usr/sbin).
	static bool available();

	// Writes the config and starts `dovecot -F`; waits ≤ 10 s for IMAP.
	bool start();
	void stop();

	int imap_port() const { return imap_port_; }
	int lmtp_port() const { return lmtp_port_; }
	// The auth socket for SASL clients (Dovecot's auth-client protocol).
	std::string auth_socket() const { return dir_ + "/run/auth-client"; }
	const std::string& error() const { return error_; }
	std::string log_text() const;

	// Runs a Python imaplib script with `imap` logged in as the user (INBOX
	// not selected); returns its output. The script prints what it checks.
	RunResult imap(const std::string& python_body, int timeout_ms = 15000) const;

private:
	std::string maildir_, user_, password_;
	std::string dir_;
	int imap_port_ = 0, lmtp_port_ = 0;
	pid_t pid_ = -1;
	std::string error_;
};

// Gives a folder tree to the unprivileged user that tests run mail as.
void chown_tree_to_nobody(const std::string& path);

// The names in a Maildir folder (cur/, new/), dot files left out.
std::vector<std::string> maildir_names(const std::string& dir);

}  // namespace tern::testing
