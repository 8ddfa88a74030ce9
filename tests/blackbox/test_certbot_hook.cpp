// The certbot deploy hook (contrib/certbot/tern-deploy-hook.in): run as
// certbot would, with RENEWED_LINEAGE pointing at a renewed certificate,
// it installs the files where tern.json points, readable by ternd's user,
// and the running ternd serves the new certificate without a restart.
#include "bb.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

DaemonOptions not_started() {
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	return o;
}

struct stat stat_of(const std::string& path) {
	struct stat st {};
	stat(path.c_str(), &st);
	return st;
}

}  // namespace

TEST_CASE("certbot hook: a renewed certificate is installed for the user and served after the hook's SIGHUP") {
	if (geteuid() != 0 || getpwnam("nobody") == nullptr) {
		MESSAGE("skipped: needs root and a user \"nobody\" (the hook gives the key to ternd's group)");
		return;
	}
	gid_t nobody_gid = getpwnam("nobody")->pw_gid;
	TestCert first("first.localhost"), renewed("renewed.localhost");
	TernDaemon d(not_started());
	// The installed certificate, as a first run of the hook would leave it.
	std::string tls = d.dir() + "/tls", pid_file = d.dir() + "/run/ternd.pid";
	mkdir(tls.c_str(), 0755);
	write_file(tls + "/cert.pem", read_file(first.cert_file()));
	write_file(tls + "/key.pem", read_file(first.key_file()));
	chown((tls + "/key.pem").c_str(), 0, nobody_gid);
	chmod((tls + "/key.pem").c_str(), 0640);
	chmod((tls + "/cert.pem").c_str(), 0644);
	d.write_config(R"({"user": "nobody", "pid_file": ")" + pid_file + R"(",
	                   "tls": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem"}})");
	chmod(d.dir().c_str(), 0755);
	chmod(d.config_path().c_str(), 0644);
	REQUIRE_MESSAGE(d.start(), d.error());
	TlsProbe before = openssl_probe(d.submission_port(), true);
	INFO(before.output);
	REQUIRE(before.fingerprint == first.fingerprint());

	// certbot's live/<name> folder: fullchain.pem and privkey.pem (mode 0600, root's).
	std::string lineage = d.dir() + "/live/mail.test.example";
	REQUIRE(system(("mkdir -p " + lineage).c_str()) == 0);
	write_file(lineage + "/fullchain.pem", read_file(renewed.cert_file()));
	write_file(lineage + "/privkey.pem", read_file(renewed.key_file()));
	chmod((lineage + "/privkey.pem").c_str(), 0600);
	ProgramResult hook = run_program(
	    {"/usr/bin/env", "RENEWED_LINEAGE=" + lineage, "RENEWED_DOMAINS=mail.test.example",
	     "TERN_CERT_FILE=" + tls + "/cert.pem", "TERN_KEY_FILE=" + tls + "/key.pem", "TERN_USER=nobody",
	     "TERN_PID_FILE=" + pid_file, "TERN_HOSTNAME=mail.test.example", "TERN_CERTBOT_CONF=/nonexistent",
	     "/bin/sh", repo_root() + "/contrib/certbot/tern-deploy-hook.in"});
	INFO(hook.both());
	REQUIRE(hook.exit_code == 0);
	CHECK(contains(hook.err, "reloads"));
	struct stat key = stat_of(tls + "/key.pem");
	CHECK(key.st_uid == 0);
	CHECK(key.st_gid == nobody_gid);
	CHECK((key.st_mode & 07777) == 0640);
	CHECK(read_file(tls + "/cert.pem") == read_file(renewed.cert_file()));

	TlsProbe after;
	int64_t deadline = now_ms() + 10000;
	do {
		usleep(100000);
		after = openssl_probe(d.submission_port(), true);
	} while (after.fingerprint != renewed.fingerprint() && now_ms() < deadline);
	INFO(after.output << "\n" << log_tail(d));
	CHECK(after.fingerprint == renewed.fingerprint());
	CHECK(contains(after.subject, "CN = renewed.localhost"));
	CHECK(d.running());
}

TEST_CASE("certbot hook: another lineage is left alone; without RENEWED_LINEAGE it fails") {
	std::string dir = make_temp_dir("tern-hook-");
	std::string hook = repo_root() + "/contrib/certbot/tern-deploy-hook.in";
	ProgramResult other = run_program({"/usr/bin/env", "RENEWED_LINEAGE=" + dir + "/live/www",
	                                   "RENEWED_DOMAINS=www.test.example", "TERN_HOSTNAME=mail.test.example",
	                                   "TERN_CERT_FILE=" + dir + "/cert.pem", "TERN_CERTBOT_CONF=/nonexistent",
	                                   "/bin/sh", hook});
	CHECK(other.exit_code == 0);
	CHECK_FALSE(file_exists(dir + "/cert.pem"));
	ProgramResult none = run_program(
	    {"/usr/bin/env", "-u", "RENEWED_LINEAGE", "TERN_CERTBOT_CONF=/nonexistent", "/bin/sh", hook});
	CHECK(none.exit_code == 1);
	CHECK(contains(none.err, "RENEWED_LINEAGE is not set"));
	remove_tree(dir);
}
