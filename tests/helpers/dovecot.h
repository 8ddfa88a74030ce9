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
#include <vector>

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

	// Before start(): the passdb block to use instead of the static one
	// (e.g. a checkpassword driver), and Dovecot's auth_mechanisms.
	void set_passdb(std::string passdb_block) { passdb_ = std::move(passdb_block); }
	void set_auth_mechanisms(std::string mechanisms) { auth_mechanisms_ = std::move(mechanisms); }
	// Config text added at the end (e.g. a snippet from contrib/dovecot/).
	void add_config(std::string text) { extra_config_ += text + "\n"; }
	// Before start(): Dovecot knows only these users (a passwd-file userdb;
	// names as RCPT TO gives them, e.g. full addresses), so its LMTP refuses
	// any other recipient with 550 5.1.1. The IMAP login must be one of them.
	// Without it, every user exists (a static userdb).
	void set_known_users(std::vector<std::string> users) { known_users_ = std::move(users); }

	// Writes the config and starts `dovecot -F`; waits ≤ 10 s for IMAP.
	bool start();
	void stop();

	int imap_port() const { return imap_port_; }
	int lmtp_port() const { return lmtp_port_; }
	// LMTP on a unix socket (mode 0666, so ternd running as nobody reaches it).
	std::string lmtp_socket() const { return dir_ + "/run/lmtp"; }
	// The auth socket for SASL clients (Dovecot's auth-client protocol).
	std::string auth_socket() const { return dir_ + "/run/auth-client"; }
	// Dovecot's base_dir, where relative unix_listener names are created.
	std::string run_dir() const { return dir_ + "/run"; }
	const std::string& error() const { return error_; }
	std::string log_text() const;

	// Runs a Python imaplib script with `imap` logged in as the user (INBOX
	// not selected); returns its output. The script prints what it checks.
	RunResult imap(const std::string& python_body, int timeout_ms = 15000) const;
	// One IMAP LOGIN as `user`; the output is "LOGIN OK" or "LOGIN NO <why>".
	RunResult imap_login(const std::string& user, const std::string& password, int timeout_ms = 15000) const;

private:
	std::string maildir_, user_, password_;
	std::string passdb_;  // "" = the static passdb
	std::string auth_mechanisms_ = "plain login";
	std::string extra_config_;
	std::vector<std::string> known_users_;
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
