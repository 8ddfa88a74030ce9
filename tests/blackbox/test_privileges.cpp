// Privileges and files (ternd(8) "PRIVILEGES"): ternd started as root with
// "user": "nobody" checks that nobody can reach the files it reopens after
// the drop, a DKIM key that does not load stops a start and a reload,
// ternctl as root leaves database files to `user`, and the pid file goes
// away at exit.
#include "bb.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

#define SKIP_UNLESS_ROOT_AND_NOBODY()                                                                                  \
	if (geteuid() != 0 || getpwnam("nobody") == nullptr) {                                                         \
		MESSAGE("skipped: needs root and a user \"nobody\" to test the privilege drop");                       \
		return;                                                                                                \
	}

// Opens the test's folders and config to other users, as an installation
// must (the daemon's user reads its config and enters its folders).
void open_up(const TernDaemon& d) {
	chmod(d.dir().c_str(), 0755);
	chmod(d.config_path().c_str(), 0644);
}

// A DKIM key made by ternctl (mode 0600, owned by root) in the test's dir.
std::string make_dkim_key(const TernDaemon& d, const std::string& name) {
	std::string path = d.dir() + "/" + name;
	ProgramResult r = run_ternctl({"dkim", "genkey", "ed25519", "--out", path});
	REQUIRE_MESSAGE(r.exit_code == 0, r.both());
	return path;
}

std::string signing_patch(const std::string& key_path) {
	return R"({"user": "nobody", "domains": {"test.example": {"dkim": {"selectors": {"s1": {"private_key_file": ")" +
	    key_path + R"("}}, "sign": ["s1"]}}}})";
}

DaemonOptions stopped() {
	DaemonOptions o;
	o.start = false;
	return o;
}

uid_t nobody_uid() { return getpwnam("nobody")->pw_uid; }

uid_t owner_of(const std::string& path) {
	struct stat st {};
	return stat(path.c_str(), &st) == 0 ? st.st_uid : uid_t(-1);
}

}  // namespace

TEST_CASE("privileges: a DKIM key the user cannot read stops the start, naming the file and the reason") {
	SKIP_UNLESS_ROOT_AND_NOBODY();
	TernDaemon d(stopped());
	std::string key = make_dkim_key(d, "s1.pem");
	d.write_config(signing_patch(key));
	open_up(d);
	CHECK_FALSE(d.start());
	INFO(d.error());
	CHECK(contains(d.error(),
	               key +
	                   ": domains.test.example.dkim.selectors.s1.private_key_file: user nobody cannot read "
	                   "it: Permission denied"));
	CHECK(contains(d.error(), "cannot start"));

	// The same key readable by nobody's group: the start goes on.
	chown(key.c_str(), 0, getpwnam("nobody")->pw_gid);
	chmod(key.c_str(), 0640);
	CHECK_MESSAGE(d.start(), d.error());
}

TEST_CASE("privileges: a DKIM key that is not a key stops the start and a reload keeps the old config") {
	SKIP_UNLESS_ROOT_AND_NOBODY();
	TernDaemon d(stopped());
	std::string key = d.dir() + "/broken.pem";
	write_file(key, "not a key\n");
	chmod(key.c_str(), 0644);
	d.write_config(signing_patch(key));
	open_up(d);
	CHECK_FALSE(d.start());
	CHECK(contains(d.error(), "domains.test.example.dkim.selectors.s1.private_key_file: cannot load the key"));

	// Start without signing, then a reload that adds the broken key.
	d.write_config(R"({"user": "nobody"})");
	open_up(d);
	REQUIRE_MESSAGE(d.start(), d.error());
	d.write_config(signing_patch(key));
	open_up(d);
	REQUIRE(d.signal(SIGHUP));
	std::string log;
	for (int i = 0; i < 250 && !contains(log, "reload failed"); i++) {
		usleep(20000);
		log = d.log_text();
	}
	INFO(log);
	CHECK(contains(log, "reload failed, keeping the old configuration"));
	CHECK(contains(log, "cannot load the key"));
	CHECK(d.running());
}

TEST_CASE("privileges: ternd -n reports a TLS key the user cannot read") {
	SKIP_UNLESS_ROOT_AND_NOBODY();
	TestCert cert;
	chmod(cert.dir().c_str(), 0755);
	chmod(cert.cert_file().c_str(), 0644);
	chmod(cert.key_file().c_str(), 0600);
	TernDaemon d(stopped());
	d.write_config(cert.config_patch(R"({"user": "nobody"})"));
	open_up(d);
	RunResult r = run_check_config(d.config_path());
	INFO(r.output);
	CHECK(r.exit_code == 1);
	CHECK(contains(r.output,
	               "error: " + cert.key_file() + ": tls.key_file: user nobody cannot read it: Permission denied"));
	CHECK_FALSE(contains(r.output, "config ok"));

	// Readable by nobody: the check passes.
	chmod(cert.key_file().c_str(), 0644);
	r = run_check_config(d.config_path());
	INFO(r.output);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "config ok"));
}

// Each ternctl command that opens the database itself (ternd is down),
// run as root: the region and log files it makes there stay the user's,
// or ternd, as that user, could not open the environment next.
TEST_CASE("privileges: database files ternctl creates as root belong to the configured user") {
	SKIP_UNLESS_ROOT_AND_NOBODY();
	TernDaemon d(stopped());
	d.write_config(R"({"user": "nobody"})");
	open_up(d);
	ProgramResult r = run_ternctl({"-c", d.config_path(), "passwd", "alice"}, "a long enough secret\n");
	INFO(r.both());
	REQUIRE(r.exit_code == 0);
	SUBCASE("passwd") {}
	SUBCASE("tlsrpt reports") {
		ProgramResult reports = run_ternctl({"-c", d.config_path(), "tlsrpt", "reports"});
		CHECK_MESSAGE(reports.err == "no reports\n", reports.both());  // exit 1 (man/ternctl.8)
	}
	SUBCASE("dmarc reports") {
		ProgramResult reports = run_ternctl({"-c", d.config_path(), "dmarc", "reports"});
		CHECK_MESSAGE(reports.err == "no reports\n", reports.both());  // exit 1 (man/ternctl.8)
	}
	SUBCASE("checkpassword, as Dovecot runs it") {
		// The program run on success keeps root: Dovecot's reply program
		// reports a changed user as the mail user.
		const std::string input = d.dir() + "/checkpassword-in", ran_as = d.dir() + "/ran-as";
		write_file(input, std::string("alice\0a long enough secret\0\0", 28));
		RunResult check = run_command(
		    {"/bin/sh", "-c", "\"$0\" -c \"$1\" checkpassword /bin/sh -c 'id -u > \"$0\"' \"$3\" 3<\"$2\"",
		     ternctl_path(), d.config_path(), input, ran_as});
		CHECK_MESSAGE(check.exit_code == 0, check.output);
		CHECK(read_file(ran_as) == "0\n");
	}
	std::string db = d.data_dir() + "/db";
	CHECK(owner_of(d.data_dir()) == nobody_uid());
	CHECK(owner_of(db) == nobody_uid());
	size_t files = 0;
	for (const auto& e : std::filesystem::directory_iterator(db)) {
		INFO(e.path().string());
		CHECK(owner_of(e.path().string()) == nobody_uid());
		files++;
	}
	CHECK(files > 0);
	// And ternd, as nobody, opens that environment.
	CHECK_MESSAGE(d.start(), d.error());
}

TEST_CASE("privileges: the pid file is gone after SIGTERM, its folder made for the user") {
	SKIP_UNLESS_ROOT_AND_NOBODY();
	TernDaemon d(stopped());
	// Two folders missing: both are made, the pid file's own for the user.
	std::string pid_file = d.dir() + "/run/tern/ternd.pid";
	d.write_config(R"({"user": "nobody", "pid_file": ")" + pid_file + R"("})");
	open_up(d);
	REQUIRE_MESSAGE(d.start(), d.error());
	REQUIRE(file_exists(pid_file));
	CHECK(read_file(pid_file) == std::to_string(d.pid()) + "\n");
	CHECK(owner_of(d.dir() + "/run/tern") == nobody_uid());
	CHECK(d.stop() == 0);
	CHECK_FALSE(file_exists(pid_file));
}

// A folder above data_dir that the user may enter but not list (0711) holds
// nothing ternd made, so there is nothing of ternd's in it to sync: the
// first message to a new Maildir is stored once and answered 250, not 451
// after its file is in new/ (which made every retry a duplicate).
TEST_CASE("privileges: a folder above data_dir the user cannot list does not fail deliveries") {
	SKIP_UNLESS_ROOT_AND_NOBODY();
	TernDaemon d(stopped());
	d.write_config(R"({"user": "nobody"})");
	open_up(d);
	chmod(d.dir().c_str(), 0711);
	REQUIRE_MESSAGE(d.start(), d.error());
	for (int i = 1; i <= 2; ++i) {
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		Transaction t = send_mail(c, test_sender, {"alice@test.example"},
		                          make_message("listing " + std::to_string(i)));
		CHECK_MESSAGE(t.reply.code == 250, t.reply.plain());
		CHECK(wait_for_maildir(d.maildir(), static_cast<size_t>(i)).size() == static_cast<size_t>(i));
	}
	CHECK(d.stop() == 0);
}
