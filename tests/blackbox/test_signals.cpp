// SIGTERM (graceful shutdown) and SIGHUP (reload) — SPEC "Logs, signals,
// metrics" and "Shutdown".
#include "bb.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>

#include "helpers/tls_tools.h"

TEST_CASE("SIGTERM: an idle client gets 421 4.3.2 and the close, ternd exits 0") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient before_ehlo = connect_smtp(d);
	REQUIRE(before_ehlo.read_reply().code == 220);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(d.signal(SIGTERM));
	for (SmtpClient* client : {&c, &before_ehlo}) {
		Reply r = client->read_reply();
		CHECK(r.code == 421);
		CHECK(starts_with(r.plain(), "421 4.3.2 shutting down"));
		CHECK(client->expect_closed());
	}
	CHECK(d.wait_exit(15000) == 0);
}

// SPEC "Files on disk": the queue's directory is there from the start; a
// clean stop takes the reusable spool files (core/spool_pool.h) with it.
TEST_CASE("SIGTERM: data_dir/queue/ is made at start, a clean stop leaves no spool file in tmp/") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	struct stat st {};
	REQUIRE(stat((d.data_dir() + "/queue").c_str(), &st) == 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK((st.st_mode & 0777) == 0700);

	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(make_message("spool", "body\r\n") + ".\r\n"));
	REQUIRE(c.read_reply().code == 250);
	auto spool_files = [&] {
		std::vector<std::string> found;
		for (const auto& e : std::filesystem::directory_iterator(d.data_dir() + "/tmp"))
			if (e.path().filename().string().starts_with("data-spool-")) found.push_back(e.path());
		return found;
	};
	REQUIRE(!spool_files().empty());  // the message's file, kept for the next one

	CHECK(d.stop() == 0);
	CHECK(spool_files().empty());
	CHECK(maildir_files(d.maildir()).size() == 1);
}

// A client in slow mode (three failed logins: output leaves a byte per
// delays_ms.bad_client) still gets the 421 at once, with the rest of the
// reply it was being fed, and the close (SPEC "Shutdown").
TEST_CASE("SIGTERM: an idle client in slow mode gets the rest of its reply and 421 at once") {
	TernDaemon d({.submission = true, .config_patch = R"({"delays_ms": {"bad_client": 1000},
		"listeners": {"test": {"submission": {"require_starttls": false}}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo("client.test.example"));
	const std::string wrong = "AUTH PLAIN " + plain_response("nobody@test.example", "wrong");
	for (int i = 0; i < 2; i++) CHECK(c.cmd(wrong).code == 535);
	REQUIRE(c.send(wrong + "\r\n"));  // its 535 comes a byte a second
	usleep(1500000);
	int64_t signalled = now_ms();
	REQUIRE(d.signal(SIGTERM));
	Reply refused = c.read_reply();
	CHECK(refused.code == 535);
	Reply r = c.read_reply();
	CHECK(starts_with(r.plain(), "421 4.3.2 shutting down"));
	CHECK(c.expect_closed());
	CHECK(now_ms() - signalled < 5000);  // not 40 bytes at a second each
	CHECK(d.wait_exit(15000) == 0);
}

TEST_CASE("SIGTERM: a client inside DATA finishes (250), then gets 421; ternd exits 0") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient sender = connect_and_ehlo(d);
	SmtpClient idle = connect_and_ehlo(d);
	REQUIRE(sender.connected());
	REQUIRE(idle.connected());
	REQUIRE(sender.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(sender.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(sender.cmd("DATA").code == 354);
	std::string message = make_message("during shutdown", "first half\r\nsecond half\r\n");
	size_t half = message.find("second half");
	REQUIRE(sender.send(message.substr(0, half)));

	REQUIRE(d.signal(SIGTERM));
	// The idle client's 421 shows the daemon is shutting down.
	Reply r = idle.read_reply();
	CHECK(starts_with(r.plain(), "421 4.3.2 shutting down"));
	CHECK(idle.expect_closed());
	// No new connections are greeted.
	SmtpClient late;
	late.timeout_ms = 2000;
	if (late.connect("127.0.0.1", d.smtp_port())) {
		Reply g = late.read_reply();
		CHECK(g.code != 220);
	}

	REQUIRE(sender.send(message.substr(half) + ".\r\n"));
	CHECK(sender.read_reply().plain() == "250 2.2.0 it is done");
	Reply bye = sender.read_reply();
	CHECK(starts_with(bye.plain(), "421 4.3.2 shutting down"));
	CHECK(sender.expect_closed());
	CHECK(d.wait_exit(15000) == 0);
	auto files = maildir_files(d.maildir());
	REQUIRE(files.size() == 1);
	CHECK(ends_with(read_file(files[0]), message));
}

// The DATA in flight at SIGTERM may end in a reply given without waiting on
// anything (here a refused bare newline): the 421 follows it at once, not
// at timeouts_s.shutdown.
TEST_CASE("SIGTERM: a DATA refused at its end without any wait gets its refusal, then 421 at once") {
	TernDaemon d({.config_patch = R"({"timeouts_s": {"shutdown": 30},
		"listeners": {"test": {"bare_newlines": "reject"}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient sender = connect_and_ehlo(d);
	REQUIRE(sender.connected());
	REQUIRE(sender.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(sender.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(sender.cmd("DATA").code == 354);
	REQUIRE(sender.send("Subject: bare\r\n\r\nfirst\nsecond\r\n"));
	usleep(200000);
	REQUIRE(d.signal(SIGTERM));
	usleep(200000);
	const int64_t sent = now_ms();
	REQUIRE(sender.send(".\r\n"));
	sender.timeout_ms = 10000;
	Reply refused = sender.read_reply();
	CHECK(refused.code / 100 == 5);
	Reply bye = sender.read_reply();
	CHECK(bye.plain() == "421 4.3.2 shutting down");
	CHECK(sender.expect_closed());
	CHECK(now_ms() - sent < 5000);
	CHECK(d.wait_exit(15000) == 0);
	CHECK(maildir_files(d.maildir()).empty());
}

TEST_CASE("SIGTERM: a client still inside DATA at timeouts_s.shutdown gets 421 4.3.2, then the close") {
	TernDaemon d({.config_patch = R"({"timeouts_s": {"shutdown": 1}})"});
	REQUIRE_RUNNING(d);
	SmtpClient sender = connect_and_ehlo(d);
	REQUIRE(sender.connected());
	REQUIRE(sender.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(sender.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(sender.cmd("DATA").code == 354);
	REQUIRE(sender.send(make_message("never finished").substr(0, 40)));
	REQUIRE(d.signal(SIGTERM));
	// Nothing more is sent: the bound passes with the message unfinished.
	Reply r = sender.read_reply();
	CHECK(r.plain() == "421 4.3.2 shutting down");
	CHECK(sender.expect_closed());
	CHECK(d.wait_exit(15000) == 0);
	CHECK(maildir_files(d.maildir()).empty());
}

TEST_CASE("SIGTERM: exit 0 with no clients; SIGINT does the same") {
	SUBCASE("SIGTERM") {
		TernDaemon d;
		REQUIRE_RUNNING(d);
		CHECK(d.stop() == 0);
	}
	SUBCASE("SIGINT") {
		TernDaemon d;
		REQUIRE_RUNNING(d);
		REQUIRE(d.signal(SIGINT));
		CHECK(d.wait_exit(15000) == 0);
	}
}

namespace {

const std::string with_bob = R"({"accounts": {"bob": {"domain": "test.example",
	"destinations": {"bob@test.example": {"mailbox": "INBOX"}}}}})";

// Tries a delivery to bob on fresh connections until it is accepted or
// timeout_ms passes; returns the last final reply.
Reply deliver_to_bob_until_accepted(TernDaemon& d, int timeout_ms) {
	int64_t deadline = now_ms() + timeout_ms;
	Reply last;
	for (;;) {
		SmtpClient c = connect_and_ehlo(d);
		if (c.connected()) {
			last = send_mail(c, test_sender, {"bob@test.example"}, make_message("for bob")).reply;
			if (last.code == 250 || now_ms() > deadline) return last;
		} else if (now_ms() > deadline) {
			return last;
		}
		usleep(100000);
	}
}

}  // namespace

TEST_CASE("SIGHUP: a new account becomes deliverable; an idle connection survives the reload") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient survivor = connect_and_ehlo(d);
	REQUIRE(survivor.connected());
	{
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		CHECK(send_mail(c, test_sender, {"bob@test.example"}, make_message()).reply.plain() ==
		      "550 5.1.1 no such user(s)");
	}
	d.write_config(with_bob);
	REQUIRE(d.signal(SIGHUP));
	Reply r = deliver_to_bob_until_accepted(d, 5000);
	CHECK(r.plain() == "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir("bob"), 1);
	REQUIRE(files.size() == 1);
	CHECK(contains(unfold(read_file(files[0])), " for <bob@test.example>; "));
	CHECK(survivor.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	CHECK(d.running());
}

TEST_CASE("SIGHUP: a broken config keeps the old one working") {
	TernDaemon d({.config_patch = with_bob});
	REQUIRE_RUNNING(d);
	d.write_config_text("{ \"hostname\": \"mx.test.example\", \"listeners\": 12 ");
	REQUIRE(d.signal(SIGHUP));
	usleep(500000);
	REQUIRE(d.running());
	Reply r = deliver_to_bob_until_accepted(d, 2000);
	CHECK(r.plain() == "250 2.2.0 it is done");
	CHECK(wait_for_maildir(d.maildir("bob"), 1).size() == 1);

	// A valid config without bob after that is taken again.
	d.write_config(R"({"accounts": {"bob": null}})");
	REQUIRE(d.signal(SIGHUP));
	int64_t deadline = now_ms() + 5000;
	Reply last;
	while (now_ms() < deadline) {
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		last = send_mail(c, test_sender, {"bob@test.example"}, make_message()).reply;
		if (last.code == 550) break;
		usleep(100000);
	}
	CHECK(last.plain() == "550 5.1.1 no such user(s)");
	CHECK(d.stop() == 0);
}

TEST_CASE("SIGUSR1 does not kill the daemon") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	REQUIRE(d.signal(SIGUSR1));
	usleep(200000);
	CHECK(d.running());
	SmtpClient c = connect_and_ehlo(d);
	CHECK(c.connected());
}

// man/ternd.8 SIGHUP: a ternd in the background (no -f) has changed to /,
// and reads its config again from the path given with -c made absolute at
// start, so a relative -c reloads, with the config's own relative paths.
namespace {

// A ternd started in the background (no -f) from the test's folder with
// `args`, its pid read from run/ternd.pid (the config must name it); it is
// killed when this goes, as it is not the test's child.
struct BackgroundTernd {
	pid_t pid = 0;
	BackgroundTernd(TernDaemon& d, const std::string& args) {
		RunResult started = run_command(
		    {"/bin/sh", "-c", "cd '" + d.dir() + "' && exec '" + ternd_path() + "' " + args});
		REQUIRE_MESSAGE(started.exit_code == 0, started.output);
		std::string pid_file = d.dir() + "/run/ternd.pid";
		int64_t deadline = now_ms() + 10000;
		while (now_ms() < deadline && !(pid > 0 && tcp_port_listening(d.smtp_port()))) {
			if (pid <= 0 && file_exists(pid_file))
				pid = static_cast<pid_t>(std::atoi(read_file(pid_file).c_str()));
			usleep(50000);
		}
		REQUIRE_MESSAGE(pid > 0, d.log_text());
		REQUIRE(tcp_port_listening(d.smtp_port()));
	}
	~BackgroundTernd() {
		if (pid > 0) ::kill(pid, SIGKILL);
	}
	// SIGTERM and the wait for the exit; whether it left in time.
	bool stop() {
		if (::kill(pid, SIGTERM) != 0) return false;
		int64_t deadline = now_ms() + 15000;
		while (now_ms() < deadline && ::kill(pid, 0) == 0) usleep(50000);
		return ::kill(pid, 0) != 0;
	}
};

}  // namespace

// man/ternd.8 EXIT STATUS: the ternd that was started into the background
// exits only once the daemon runs, or with status 1 and the reason on its
// standard error when the start failed, before the fork or after it.
TEST_CASE("start-up in the background: a failure is exit status 1 with its reason on standard error") {
	TernDaemon d(
	    {.config_patch = R"({"pid_file": "run/ternd.pid", "log": {"file": "ternd.log"}})", .start = false});
	d.write_config();
	auto start_in_background = [&] {
		return run_command(
		    {"/bin/sh", "-c", "cd '" + d.dir() + "' && exec '" + ternd_path() + "' -c tern.json"});
	};

	// After the fork: the database cannot be opened (data_dir/db a file).
	std::filesystem::create_directories(d.data_dir());
	write_file(d.data_dir() + "/db", "not a directory\n");
	RunResult late = start_in_background();
	INFO(late.output);
	CHECK(late.exit_code == 1);
	CHECK(contains(late.output,
	               "error: recovering the database environment " + d.data_dir() + "/db: Not a directory"));
	CHECK_FALSE(file_exists(d.dir() + "/run/ternd.pid"));
	CHECK(contains(d.log_text(), "cannot start"));
	std::filesystem::remove(d.data_dir() + "/db");

	// Before the fork: the SMTP port is taken.
	// The failed daemon reported only after closing its ports.
	int taken = take_tcp_port(d.smtp_port());
	REQUIRE(taken >= 0);
	REQUIRE(tcp_port_listening(d.smtp_port()));
	RunResult early = start_in_background();
	::close(taken);
	INFO(early.output);
	CHECK(early.exit_code == 1);
	CHECK(contains(early.output,
	               "error: listen 127.0.0.1:" + std::to_string(d.smtp_port()) + ": Address already in use"));

	// A start that works returns once the daemon runs: its pid file and
	// ports are there when the started process exits.
	RunResult works = start_in_background();
	REQUIRE_MESSAGE(works.exit_code == 0, works.output);
	CHECK(works.output.empty());
	REQUIRE(file_exists(d.dir() + "/run/ternd.pid"));
	pid_t pid = static_cast<pid_t>(std::atoi(read_file(d.dir() + "/run/ternd.pid").c_str()));
	REQUIRE(pid > 0);
	CHECK(tcp_port_listening(d.smtp_port()));
	CHECK(::kill(pid, SIGTERM) == 0);
	int64_t deadline = now_ms() + 15000;
	while (now_ms() < deadline && ::kill(pid, 0) == 0) usleep(50000);
	CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("SIGHUP: a ternd in the background, started with a relative -c, reloads that file") {
	TernDaemon d(
	    {.config_patch = R"({"pid_file": "run/ternd.pid", "log": {"file": "ternd.log"}})", .start = false});
	d.write_config();
	BackgroundTernd ternd(d, "-c tern.json");

	d.write_config(with_bob);
	REQUIRE(::kill(ternd.pid, SIGHUP) == 0);
	Reply r = deliver_to_bob_until_accepted(d, 5000);
	INFO(d.log_text());
	CHECK(r.plain() == "250 2.2.0 it is done");
	CHECK_FALSE(contains(d.log_text(), "reload failed"));

	CHECK(ternd.stop());
	CHECK_FALSE(file_exists(d.dir() + "/run/ternd.pid"));
}

// man/ternd.8 -l: it overrides log.level, also across a reload (the line
// that says the configuration was reloaded is info, so it is not written).
TEST_CASE("SIGHUP: -l error stays in force after a reload; no info line is written") {
	TernDaemon d(
	    {.config_patch = R"({"pid_file": "run/ternd.pid", "log": {"file": "ternd.log", "level": "debug"}})",
	     .start = false});
	d.write_config();
	BackgroundTernd ternd(d, "-l error -c tern.json");
	d.write_config(with_bob);
	REQUIRE(::kill(ternd.pid, SIGHUP) == 0);
	CHECK(deliver_to_bob_until_accepted(d, 5000).plain() == "250 2.2.0 it is done");
	CHECK(ternd.stop());
	std::string log = d.log_text();
	INFO(log);
	CHECK_FALSE(contains(log, "level=info"));
	CHECK_FALSE(contains(log, "level=debug"));
}
