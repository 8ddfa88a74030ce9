// A process that dies must never take the daemon down: ternctl writes
// through ternd's control socket while ternd runs, a broken database
// environment is recovered by ternd itself, a database failure during AUTH
// is a temporary error (454 4.7.0, never 535), and leftovers of an earlier
// run (temporary message files, scribbled region files) are cleaned at
// start.
#include <db.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "bb.h"
#include "helpers/dir_entries.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "correct horse 7 battery";
const char* const open_submission = R"({"listeners": {"test": {"submission": {"require_starttls": false}}}})";

// One login on a fresh connection: the reply line to AUTH PLAIN.
Reply login(const TernDaemon& d, const std::string& password = alice_password) {
	SmtpClient c;
	Reply none;
	none.error = "connect";
	if (!c.connect("127.0.0.1", d.submission_port()) || c.read_reply().code != 220) return none;
	if (c.cmd("EHLO client.sender.example").code != 250) return none;
	return c.cmd("AUTH PLAIN " + plain_response(alice, password));
}

// Logins until one succeeds (a recovery in progress answers 454), ≤ timeout_ms.
Reply login_until_accepted(const TernDaemon& d, int timeout_ms = 10000) {
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	Reply r;
	do {
		r = login(d);
		if (r.code == 235) return r;
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	} while (std::chrono::steady_clock::now() < deadline);
	return r;
}

void start_with_password(TernDaemon& d) {
	d.write_config();
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
}

// Spawns `ternctl -c CONFIG passwd alice` with the password on stdin
// (through a file, so the child can be killed at any moment of its work).
pid_t spawn_passwd(const TernDaemon& d, const std::string& password_file) {
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, password_file.c_str(), O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
	std::string path = ternctl_path(), config = d.config_path();
	std::vector<char*> argv{path.data(),
	                        const_cast<char*>("-c"),
	                        config.data(),
	                        const_cast<char*>("passwd"),
	                        const_cast<char*>("alice"),
	                        nullptr};
	pid_t pid = -1;
	if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
	posix_spawn_file_actions_destroy(&actions);
	return pid;
}

// Runs `act` in another process that joined the daemon's environment and
// then exits without closing it (act returns its exit code, 0 for done).
bool in_joined_process(const std::string& env_dir, int (*act)(DB_ENV*)) {
	pid_t pid = fork();
	if (pid < 0) return false;
	if (pid == 0) {
		DB_ENV* env = nullptr;
		if (db_env_create(&env, 0) != 0) _exit(2);
		env->set_errcall(env, [](const DB_ENV*, const char*, const char*) {});
		if (env->open(env, env_dir.c_str(), DB_JOINENV, 0) != 0) _exit(3);
		_exit(act(env));  // no close
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Another process joins the daemon's environment and panics it, as a
// process dying inside a write leaves it (Berkeley DB then answers
// DB_RUNRECOVERY to every call of every process).
bool panic_environment(const std::string& env_dir) {
	return in_joined_process(env_dir, [](DB_ENV* env) { return env->set_flags(env, DB_PANIC_ENVIRONMENT, 1); });
}

// Another process joins the daemon's environment, takes a write lock on
// alice's password record in a transaction and dies without finishing it:
// until a failchk aborts that transaction, every read of the record waits.
bool die_holding_password_lock(const std::string& env_dir) {
	return in_joined_process(env_dir, [](DB_ENV* env) {
		DB* db = nullptr;
		DB_TXN* txn = nullptr;
		if (db_create(&db, env, 0) != 0 ||
		    db->open(db, nullptr, "passwords.db", nullptr, DB_BTREE, DB_AUTO_COMMIT, 0) != 0)
			return 4;
		if (env->txn_begin(env, nullptr, &txn, 0) != 0) return 5;
		std::string key = "alice", value = "half-written";
		DBT k{}, v{};
		k.data = key.data();
		k.size = static_cast<u_int32_t>(key.size());
		v.data = value.data();
		v.size = static_cast<u_int32_t>(value.size());
		return db->put(db, txn, &k, &v, 0) != 0 ? 6 : 0;  // no commit: the lock stays
	});
}

// A small tmpfs mounted over a directory for the test's life (needs the
// privilege to mount; mounted() says whether it is there).
class SmallFileSystem {
public:
	SmallFileSystem(const std::string& dir, const std::string& size) : dir_(dir) {
		std::filesystem::create_directories(dir);
		mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size + ",mode=0755").c_str()) == 0;
	}
	~SmallFileSystem() {
		if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
	}
	bool mounted() const { return mounted_; }
	// Writes a file until the file system is full.
	void fill(const std::string& name) {
		FILE* f = std::fopen((dir_ + "/" + name).c_str(), "w");
		if (!f) return;
		std::string block(4096, 'x');
		while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
		}
		std::fclose(f);
	}

private:
	std::string dir_;
	bool mounted_ = false;
};

}  // namespace

TEST_CASE("trust db: ternctl passwd killed at random moments never breaks logins") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	std::string dir = make_temp_dir("tern-kill-");
	std::string password_file = dir + "/password";
	write_file(password_file, alice_password + "\n");

	// A client logs in again and again while ternctl is killed at random
	// moments of its run.
	std::atomic<bool> done{false};
	std::atomic<int> refused{0}, temporary{0}, accepted{0}, other{0};
	std::string last_bad;
	std::thread client([&] {
		while (!done) {
			Reply r = login(d);
			if (r.code == 235)
				accepted++;
			else if (r.code == 454)
				temporary++;
			else {
				(r.code == 535 ? refused : other)++;
				last_bad = r.plain() + " " + r.error;
			}
		}
	});
	std::mt19937 rng(12345);
	std::uniform_int_distribution<int> pause_us(0, 40000);
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
	int kills = 0;
	for (; kills < 30 && std::chrono::steady_clock::now() < deadline; kills++) {
		pid_t pid = spawn_passwd(d, password_file);
		if (pid <= 0) break;
		std::this_thread::sleep_for(std::chrono::microseconds(pause_us(rng)));
		kill(pid, SIGKILL);
		waitpid(pid, nullptr, 0);
		if (!d.running()) break;
	}
	done = true;
	client.join();
	CHECK(kills == 30);
	REQUIRE_RUNNING(d);
	INFO("last refused login: " << last_bad);
	CHECK(other == 0);
	CHECK(refused == 0);
	CHECK(accepted > 0);
	MESSAGE("logins accepted " << accepted.load() << ", temporary " << temporary.load());
	CHECK(login_until_accepted(d).code == 235);
	REQUIRE_RUNNING(d);
	CHECK(d.stop() == 0);
	remove_tree(dir);
}

TEST_CASE("trust db: while ternd runs, ternctl writes through its control socket") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	std::string sock = d.data_dir() + "/control.sock";
	// The socket is made after the ports start() waits for: wait for it too.
	REQUIRE(wait_for_unix_socket(sock));
	struct stat st {};
	REQUIRE(lstat(sock.c_str(), &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK((st.st_mode & 0777) == 0600);

	ProgramResult r = run_ternctl({"-c", d.config_path(), "passwd", "alice"}, "a new password 42\n");
	CHECK(r.exit_code == 0);
	CHECK(r.out == "password updated for alice\n");
	// ternd did the write: its log names the request (never the secrets).
	std::string log = d.log_text();
	CHECK(log.find("control request") != std::string::npos);
	CHECK(log.find("command=passwd") != std::string::npos);
	CHECK(login(d, "a new password 42").code == 235);
	CHECK(login(d).code == 535);

	// Unknown account and unknown queue ids: the same output and status as
	// without a daemon.
	r = run_ternctl({"-c", d.config_path(), "passwd", "nobody"}, "x\n");
	CHECK(r.exit_code == 1);
	CHECK(r.err == "error: no such account: nobody\n");
	r = run_ternctl({"-c", d.config_path(), "queue", "drop", "999"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "no such message\n");
	r = run_ternctl({"-c", d.config_path(), "queue", "kick", "999"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "no such message\n");
	r = run_ternctl({"-c", d.config_path(), "queue", "list"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR\n");
	r = run_ternctl({"-c", d.config_path(), "queue", "kick"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "kicked 0\n");
	CHECK(log_tail(d).find("command=queue") != std::string::npos);

	CHECK(d.stop() == 0);
	CHECK(!file_exists(sock));
	// Without a daemon ternctl opens the database itself, as before.
	r = run_ternctl({"-c", d.config_path(), "passwd", "alice"}, alice_password + "\n");
	CHECK(r.exit_code == 0);
	CHECK(r.out == "password updated for alice\n");
	REQUIRE(d.start());
	CHECK(login(d).code == 235);
	CHECK(d.stop() == 0);
}

TEST_CASE("trust db: a database failure during AUTH is 454 4.7.0, and ternd recovers") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	REQUIRE(login(d).code == 235);

	REQUIRE(panic_environment(d.data_dir() + "/db"));
	Reply r = login(d);
	CHECK(r.code == 454);
	CHECK(r.ecode == "4.7.0");
	CHECK(starts_with(r.plain(), "454 4.7.0 temporary server error"));
	CHECK(r.has_id());
	// Not a failed login: nothing counted against the client.
	CHECK(log_tail(d).find("authentication failed") == std::string::npos);
	// ternd reopens the environment with recovery by itself, no restart.
	CHECK(login_until_accepted(d).code == 235);
	CHECK(login(d, "wrong password").code == 535);
	REQUIRE_RUNNING(d);
	CHECK(d.stop() == 0);
}

// The idle daemon runs failchk only after a process left the environment
// (DatabaseUpkeep in ternd.cpp): this one leaves by dying with a lock.
TEST_CASE("trust db: a process that dies holding a lock inside the database is found") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	REQUIRE(login(d).code == 235);
	// Long enough for the start-up ticks to pass with nothing to do.
	std::this_thread::sleep_for(std::chrono::seconds(6));

	REQUIRE(die_holding_password_lock(d.data_dir() + "/db"));
	// The check runs within 5 s of the death, aborts the dead transaction,
	// and the record reads as before.
	CHECK(login_until_accepted(d, 20000).code == 235);
	CHECK(login(d, "wrong password").code == 535);
	// What the library said on the way goes into ternd's log, not to a
	// stderr nobody reads.
	CHECK(contains(d.log_text(), "msg=\"database message\""));
	REQUIRE_RUNNING(d);
	CHECK(d.stop() == 0);
}

// Every worker waiting for the dead process's lock (more logins at once
// than ternd has workers, up to 4): the check that releases it must not
// wait behind them for a worker (it runs on a thread of its own).
TEST_CASE("trust db: a dead process's lock is found while every worker waits for it") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	REQUIRE(login(d).code == 235);

	REQUIRE(die_holding_password_lock(d.data_dir() + "/db"));
	constexpr int more_than_workers = 6;
	std::vector<std::unique_ptr<SmtpClient>> waiting;
	for (int i = 0; i < more_than_workers; i++) {
		auto c = std::make_unique<SmtpClient>();
		REQUIRE(c->connect("127.0.0.1", d.submission_port()));
		REQUIRE(c->read_reply().code == 220);
		REQUIRE(c->cmd("EHLO client.sender.example").code == 250);
		REQUIRE(c->send("AUTH PLAIN " + plain_response(alice, alice_password) + "\r\n"));
		waiting.push_back(std::move(c));
	}
	// Each lookup waits until the check (within 5 s of the death) aborts
	// the dead transaction, then reads the record as before.
	for (auto& c : waiting) {
		c->timeout_ms = 20000;
		CHECK(c->read_reply().code == 235);
	}
	REQUIRE_RUNNING(d);
	CHECK(d.stop() == 0);
}

// The log files (db/log.*) under the database's writes, here a history
// record per received message.
std::vector<std::string> log_files(const TernDaemon& d) {
	std::vector<std::string> logs;
	for (std::string& name : dir_entries(d.data_dir() + "/db"))
		if (name.rfind("log.", 0) == 0) logs.push_back(std::move(name));
	return logs;
}

// A server that only receives mail writes a history record per copy, and
// no outbound message's write follows: the checkpoints that let old log
// files go come on their own, not only when ternd stops.
TEST_CASE("trust db: the log of a server that only receives mail is let go while it runs") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	// 1 MiB log files: received mail until a second one is started.
	const std::string message = make_message("history", std::string(200, 'x') + "\r\n");
	int sent = 0;
	for (; sent < 5000 && log_files(d).size() < 2; sent++) {
		Transaction t = send_mail(c, test_sender, {"alice@test.example"}, message);
		REQUIRE_MESSAGE(t.reply.code == 250, t.step << " " << t.reply.plain());
	}
	REQUIRE_MESSAGE(log_files(d).size() >= 2, "no second log file after " << sent << " messages");
	// The next checkpoint (ternd's every 5 s after writes) removes the
	// first file; the daemon keeps running meanwhile.
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
	while (log_files(d).size() > 1 && std::chrono::steady_clock::now() < deadline)
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
	CHECK(log_files(d).size() == 1);
	REQUIRE_RUNNING(d);
	CHECK(d.stop() == 0);
}

TEST_CASE("trust db: leftovers of an earlier run are cleaned at start") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	REQUIRE(d.stop() == 0);

	SUBCASE("temporary message files") {
		std::string tmp = d.data_dir() + "/tmp";
		for (int i = 0; i < 5; i++) write_file(tmp + "/data-" + std::to_string(i) + "-1", "partial message");
		// A reused spool file (core/spool_pool.h) of a killed daemon, with a
		// message it was receiving: never a stored message, removed too.
		write_file(tmp + "/data-spool-999-3", "partial message");
		REQUIRE(file_exists(tmp + "/data-3-1"));
		REQUIRE(d.start());
		for (int i = 0; i < 5; i++) CHECK(!file_exists(tmp + "/data-" + std::to_string(i) + "-1"));
		CHECK(!file_exists(tmp + "/data-spool-999-3"));
		CHECK(login(d).code == 235);
	}
	SUBCASE("the control socket of a killed ternd") {
		REQUIRE(d.start());
		d.kill9();
		REQUIRE(file_exists(d.data_dir() + "/control.sock"));
		REQUIRE_MESSAGE(d.start(), d.error() << "\n" << log_tail(d));
		ProgramResult r = run_ternctl({"-c", d.config_path(), "passwd", "alice"}, alice_password + "\n");
		CHECK(r.exit_code == 0);
		CHECK(log_tail(d).find("command=passwd") != std::string::npos);
		CHECK(login(d).code == 235);
	}
	SUBCASE("a region file scribbled while ternd was stopped") {
		std::string region = d.data_dir() + "/db/__db.001";
		REQUIRE(file_exists(region));
		auto size = std::filesystem::file_size(region);
		std::string garbage(size, '\0');
		std::mt19937 rng(7);
		for (auto& c : garbage) c = static_cast<char>(rng());
		write_file(region, garbage);
		REQUIRE_MESSAGE(d.start(), d.error() << "\n" << log_tail(d));
		CHECK(login(d).code == 235);
	}
	REQUIRE_RUNNING(d);
	CHECK(d.stop() == 0);
}

TEST_CASE("trust db: a full disk is named at start and never hangs the daemon") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	d.write_config();
	SmallFileSystem fs(d.data_dir(), "4m");
	if (!fs.mounted()) {
		MESSAGE("cannot mount a tmpfs here (no privilege); full-disk case not run");
		return;
	}
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
	REQUIRE(login(d).code == 235);

	fs.fill("filler");
	// ternd does the write for ternctl: it works in the log space already
	// there or fails cleanly; either way the daemon keeps answering.
	ProgramResult r = run_ternctl({"-c", d.config_path(), "passwd", "alice"}, alice_password + "\n", 30000);
	CHECK((r.exit_code == 0 || starts_with(r.err, "error: ")));
	Reply again = login(d);
	CHECK((again.code == 235 || again.code == 454));
	REQUIRE_RUNNING(d);
	// SIGTERM still stops it.
	CHECK(d.stop() == 0);

	// Started again with no room for the environment's region files: the
	// log names the full disk, not a database recovery message.
	for (const auto& entry : std::filesystem::directory_iterator(d.data_dir() + "/db"))
		if (entry.path().filename().string().rfind("__db.", 0) == 0) std::filesystem::remove(entry.path());
	fs.fill("filler2");
	CHECK_FALSE(d.start());
	CHECK(d.log_text().find("no space left on device (ENOSPC)") != std::string::npos);

	std::filesystem::remove(d.data_dir() + "/filler2");
	std::filesystem::remove(d.data_dir() + "/filler");
	REQUIRE_MESSAGE(d.start(), d.error() << "\n" << log_tail(d));
	CHECK(login_until_accepted(d).code == 235);
	CHECK(d.stop() == 0);
}
