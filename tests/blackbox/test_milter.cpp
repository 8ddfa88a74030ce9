// Milters (the Sendmail/Postfix milter protocol): a scripted milter in
// Python (python3-milter) that rejects, tempfails, discards and changes the
// message, Debian's OpenDKIM signing as a milter, and milters that are down
// or silent, which get their default action.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "bb.h"
#include "helpers/milter.h"
#include "helpers/smtp_sink.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

// A daemon whose listener "test" calls the given milters.
DaemonOptions with_milters(const std::string& milters_json) {
	DaemonOptions o;
	o.config_patch = R"({"listeners": {"test": {"milters": )" + milters_json + "}}}";
	return o;
}

std::string milter_entry(const std::string& address, const std::string& extra = "") {
	return R"({"address": ")" + address + R"(")" + (extra.empty() ? "" : ", " + extra) + "}";
}

// A message to alice with an X-Test header that tells the scripted milter
// what to do.
std::string test_message(const std::string& x_test, const std::string& body = "Hello Alice.\r\n") {
	return "From: bob@sender.example\r\nTo: alice@test.example\r\nSubject: milter test\r\n"
	       "Message-Id: <m1@sender.example>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nX-Test: " +
	    x_test + "\r\n\r\n" + body;
}

// The one stored message of alice, or "".
std::string stored_message(TernDaemon& d) {
	auto files = wait_for_maildir(d.maildir(), 1);
	CHECK_MESSAGE(files.size() == 1, "files in new/: " << files.size());
	return files.size() == 1 ? read_file(files[0]) : "";
}

// The header section of a stored message.
std::string header_of(const std::string& message) { return message.substr(0, message.find("\r\n\r\n") + 2); }

#define REQUIRE_MILTER(m) REQUIRE_MESSAGE((m), milter.error())

// Whether python3-dkim verifies the first DKIM-Signature of `message` with
// the key `record` (the TXT record text).
bool dkim_verifies(const std::string& message, const std::string& record) {
	std::string dir = make_temp_dir();
	write_file(dir + "/message", message);
	write_file(dir + "/record", record);
	RunResult r = run_command({"/usr/bin/python3", "-c",
	                           "import dkim,sys\n"
	                           "rec=open(sys.argv[2],'rb').read()\n"
	                           "ok=dkim.verify(open(sys.argv[1],'rb').read(), dnsfunc=lambda n, timeout=5: rec)\n"
	                           "print('verified' if ok else 'failed')\n",
	                           dir + "/message", dir + "/record"},
	                          30000);
	remove_tree(dir);
	INFO(r.output);
	return r.output == "verified\n";
}

// A loopback port that takes connections (the kernel completes them) but
// never reads or answers: a hung milter.
struct SilentListener {
	int fd = -1;
	int port = 0;
	SilentListener() {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in a{};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof(a);
		if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 && listen(fd, 16) == 0 &&
		    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
			port = ntohs(a.sin_port);
	}
	~SilentListener() { close(fd); }
};

// A milter written out byte by byte in the test, for what a real milter
// seldom does: it negotiates version 6 with no options, then answers every
// command that wants an answer (continue; accept at the end of the
// message) until its fault: a reply code no milter has, a packet length of
// 2 GB, or closing the connection when the body comes. With `drip` it
// sends each reply one byte at a time. It serves connections one after
// another until it goes.
struct RawMilter {
	enum class Fault { none, unknown_reply, huge_length, close_at_body };
	Fault fault = Fault::none;
	bool drip = false;
	SilentListener listener;
	std::atomic<bool> stopping{false};
	std::atomic<int> commands_seen{0};
	std::thread thread;

	RawMilter(Fault f, bool slow = false) : fault(f), drip(slow) {
		thread = std::thread([this] { serve(); });
	}
	~RawMilter() {
		stopping = true;
		shutdown(listener.fd, SHUT_RDWR);
		thread.join();
	}
	std::string address() const { return "inet:127.0.0.1:" + std::to_string(listener.port); }

	static bool read_exact(int fd, char* buf, size_t n) {
		while (n > 0) {
			pollfd p{fd, POLLIN, 0};
			if (poll(&p, 1, 10000) <= 0) return false;
			ssize_t got = read(fd, buf, n);
			if (got <= 0) return false;
			buf += got;
			n -= size_t(got);
		}
		return true;
	}
	void send_bytes(int fd, const std::string& bytes) const {
		if (!drip) {
			(void)!write(fd, bytes.data(), bytes.size());
			return;
		}
		for (char ch : bytes) {
			(void)!write(fd, &ch, 1);
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
		}
	}
	static std::string packet(char command, const std::string& data = "") {
		uint32_t len = htonl(uint32_t(data.size() + 1));
		return std::string(reinterpret_cast<const char*>(&len), 4) + command + data;
	}
	static std::string u32(uint32_t v) {
		v = htonl(v);
		return std::string(reinterpret_cast<const char*>(&v), 4);
	}
	void serve() {
		while (!stopping) {
			pollfd p{listener.fd, POLLIN, 0};
			if (poll(&p, 1, 100) <= 0) continue;
			int fd = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
			if (fd < 0) continue;
			converse(fd);
			close(fd);
		}
	}
	void converse(int fd) {
		for (;;) {
			char head[4];
			if (!read_exact(fd, head, 4)) return;
			uint32_t len;
			std::memcpy(&len, head, 4);
			len = ntohl(len);
			if (len == 0 || len > 1 << 20) return;
			std::string body(len, '\0');
			if (!read_exact(fd, body.data(), len)) return;
			char command = body[0];
			++commands_seen;
			switch (command) {
			case 'O': send_bytes(fd, packet('O', u32(6) + u32(0) + u32(0))); continue;
			case 'D':  // macros, abort, quit: no reply
			case 'A': continue;
			case 'Q': return;
			default: break;
			}
			if (command == 'B' && fault == Fault::close_at_body) return;
			if (command != 'C' && fault == Fault::unknown_reply) {
				send_bytes(fd, packet('z'));
				continue;
			}
			if (command != 'C' && fault == Fault::huge_length) {
				send_bytes(fd, u32(0x7fffffff) + "c");
				continue;
			}
			send_bytes(fd, packet(command == 'E' ? 'a' : 'c'));
		}
	}
};

// A raw milter and a daemon whose listener "test" calls it; the daemon goes
// first.
struct RawMilterDaemon {
	RawMilter milter;
	std::unique_ptr<TernDaemon> daemon;
	explicit RawMilterDaemon(RawMilter::Fault fault, bool drip = false) : milter(fault, drip) {
		REQUIRE(milter.listener.port > 0);
		daemon = std::make_unique<TernDaemon>(with_milters("[" + milter_entry(milter.address()) + "]"));
		REQUIRE_RUNNING(*daemon);
	}
};

// The scripted milter (python3-milter, in contrib/debian-packages.txt, so
// `make check` has it) and a daemon whose listener "test" calls it.
struct ScriptedMilterDaemon {
	MilterProcess milter;
	std::unique_ptr<TernDaemon> daemon;
	ScriptedMilterDaemon() {
		REQUIRE_MESSAGE(MilterProcess::scripted_available(), "needs /usr/bin/python3 with python3-milter");
		REQUIRE_MILTER(milter.start_scripted());
		daemon = std::make_unique<TernDaemon>(with_milters("[" + milter_entry(milter.address()) + "]"));
		REQUIRE_RUNNING(*daemon);
	}
};

}  // namespace

TEST_CASE("milter: the scripted milter refuses recipients with the default and its own replies") {
	ScriptedMilterDaemon setup;
	TernDaemon& d = *setup.daemon;
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").plain() == "250 2.1.0 looking good");
	CHECK(c.cmd("RCPT TO:<reject@test.example>").plain() == "550 5.7.1 Command rejected");
	CHECK(c.cmd("RCPT TO:<tempfail@test.example>").plain() == "451 4.7.1 Service unavailable - try again later");
	CHECK(c.cmd("RCPT TO:<custom@test.example>").plain() == "554 5.7.0 custom refusal");
	CHECK(c.cmd("RCPT TO:<alice@test.example>").plain() == "250 2.1.0 now on the list");
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(test_message("none") + ".\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	std::string stored = stored_message(d);
	// The milter saw exactly the one recipient tern accepted.
	CHECK(contains(header_of(stored), "X-Test-Milter: seen rcpts=1\r\n"));
	INFO(log_tail(d));
	CHECK(contains(d.log_text(), "milter verdict"));
}

TEST_CASE("milter: CONNECT names the client by its verified reverse name, as Postfix does") {
	// Scoring milters read "[ip]" as a client without a reverse name. The
	// iprev lookup starts with the session; its answer is in by EHLO here
	// (the client waits a moment, as a real one's round trips do).
	ScriptedMilterDaemon setup;
	TernDaemon& d = *setup.daemon;
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(c.read_reply().code == 220);
	usleep(300 * 1000);
	REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
	Transaction t = send_mail(c, "bob@sender.example", {"alice@test.example"}, test_message("none"));
	REQUIRE(t.reply.code == 250);
	CHECK(contains(header_of(stored_message(d)), "X-Test-Milter-Client: client.sender.example\r\n"));
}

TEST_CASE("milter: header and body changes reach the stored message") {
	ScriptedMilterDaemon setup;
	TernDaemon& d = *setup.daemon;
	struct Case {
		const char* x_test;
		std::vector<std::string> present;
		std::vector<std::string> absent;
	};
	const Case cases[] = {
	    {"change-subject",
	     {"Subject: changed by milter\r\n", "X-Test-Milter: seen rcpts=1\r\n", "\r\n\r\nHello Alice.\r\n"},
	     {"Subject: milter test"}},
	    {"delete-subject", {"X-Test-Milter: seen"}, {"Subject:"}},
	    {"replace-body", {"\r\n\r\nreplaced by the test milter\r\n"}, {"Hello Alice."}},
	    {"insert-first", {"\r\nX-First: top\r\nFrom: bob@sender.example\r\n"}, {}},
	    {"quarantine", {"X-Test-Milter: seen", "Hello Alice."}, {}},
	    {"add-rcpt", {"X-Test-Milter: seen"}, {}},
	};
	for (const auto& k : cases) {
		CAPTURE(k.x_test);
		remove_tree(d.maildir() + "/new");
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		Transaction t = send_mail(c, test_sender, {"alice@test.example"}, test_message(k.x_test));
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		std::string stored = stored_message(d);
		for (const auto& p : k.present) CHECK_MESSAGE(contains(stored, p), stored);
		for (const auto& a : k.absent) CHECK_MESSAGE(!contains(stored, a), stored);
		// tern's own headers still come first (the reason, then Return-Path).
		CHECK(starts_with(stored, "X-Tern-Reason: no-bad-signals\r\nReturn-Path: <bob@sender.example>\r\n"));
	}
	std::string log = d.log_text();
	CHECK(contains(log, "milter asks to quarantine the message, storing it as usual"));
	CHECK(contains(log, "milter envelope change ignored"));
}

TEST_CASE("milter: reject, tempfail and discard at the end of the message") {
	ScriptedMilterDaemon setup;
	TernDaemon& d = *setup.daemon;
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, test_message("reject"));
	CHECK(t.reply.plain() == "550 5.7.1 message refused by the test milter");
	t = send_mail(c, test_sender, {"alice@test.example"}, test_message("tempfail"));
	CHECK(t.reply.plain() == "451 4.7.1 Service unavailable - try again later");
	t = send_mail(c, test_sender, {"alice@test.example"}, test_message("discard"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	// A discard at RCPT drops the whole message, alice's copy too.
	t = send_mail(c, test_sender, {"alice@test.example", "discard@test.example"}, test_message("none"));
	CHECK(t.step == "END");
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	// The same session still delivers a message the milter lets through.
	t = send_mail(c, test_sender, {"alice@test.example"}, test_message("none"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir(), 1);
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	files = maildir_files(d.maildir());
	REQUIRE(files.size() == 1);
	CHECK(contains(read_file(files[0]), "X-Test: none\r\n"));
	CHECK(contains(d.log_text(), "message discarded by milter"));
}

TEST_CASE("milter: a milter that is down gets its default action") {
	int dead_port = free_tcp_port();  // nothing listens there
	std::string address = "inet:127.0.0.1:" + std::to_string(dead_port);
	SUBCASE("tempfail: 451 4.7.1 for mail, nothing stored") {
		TernDaemon d(with_milters("[" + milter_entry(address) + "]"));
		REQUIRE_RUNNING(d);
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() ==
		      "451 4.7.1 Service unavailable - try again later");
		CHECK(contains(d.log_text(), "milter failed"));
	}
	SUBCASE("accept: delivered as if there were no milter") {
		TernDaemon d(with_milters("[" + milter_entry(address, R"("default_action": "accept")") + "]"));
		REQUIRE_RUNNING(d);
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		Transaction t = send_mail(c, test_sender, {"alice@test.example"}, test_message("none"));
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		CHECK(contains(stored_message(d), "X-Test: none"));
	}
	SUBCASE("a unix socket that does not exist") {
		TernDaemon d(with_milters("[" + milter_entry("unix:/nonexistent/milter.sock") + "]"));
		REQUIRE_RUNNING(d);
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() ==
		      "451 4.7.1 Service unavailable - try again later");
	}
}

TEST_CASE("milter: a milter that never answers times out; a client gone meanwhile harms nothing") {
	SilentListener silent;
	REQUIRE(silent.port > 0);
	std::string address = "inet:127.0.0.1:" + std::to_string(silent.port);
	TernDaemon d(
	    with_milters("[" + milter_entry(address, R"("timeouts_ms": {"connect": 400, "command": 400})") + "]"));
	REQUIRE_RUNNING(d);
	{
		// The client leaves while MAIL waits for the milter; the timeout
		// that follows finds no connection.
		SmtpClient gone = connect_and_ehlo(d);
		REQUIRE(gone.connected());
		REQUIRE(gone.send("MAIL FROM:<bob@sender.example>\r\n"));
	}
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	auto start = std::chrono::steady_clock::now();
	CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() == "451 4.7.1 Service unavailable - try again later");
	CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
	std::this_thread::sleep_for(std::chrono::milliseconds(600));
	CHECK(d.running());
	CHECK(contains(d.log_text(), "timeout connecting"));
}

TEST_CASE("milter: a milter that breaks the protocol gets its default action, and the daemon carries on") {
	struct Case {
		const char* name;
		RawMilter::Fault fault;
	};
	for (Case k : {Case{"a reply code no milter has", RawMilter::Fault::unknown_reply},
	               Case{"a packet length of 2 GB", RawMilter::Fault::huge_length}}) {
		CAPTURE(k.name);
		RawMilterDaemon setup(k.fault);
		RawMilter& milter = setup.milter;
		TernDaemon& d = *setup.daemon;
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		auto start = std::chrono::steady_clock::now();
		// The fault comes with the answer to HELO; the session learns of
		// it at MAIL, as with a milter that is down. The length is an
		// error at once, not a wait for 2 GB.
		CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() ==
		      "451 4.7.1 Service unavailable - try again later");
		CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
		CHECK(contains(d.log_text(), "milter failed"));
		CHECK(c.cmd("QUIT").code == 221);
		// The next session finds the daemon up and the milter asked again.
		int before = milter.commands_seen;
		SmtpClient next = connect_and_ehlo(d);
		REQUIRE(next.connected());
		CHECK(next.cmd("MAIL FROM:<bob@sender.example>").code == 451);
		CHECK(milter.commands_seen > before);
		CHECK(d.running());
	}
}

TEST_CASE("milter: a milter gone in the middle of the body fails the message; nothing is stored") {
	RawMilterDaemon setup(RawMilter::Fault::close_at_body);
	TernDaemon& d = *setup.daemon;
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, test_message("none"));
	CHECK(t.reply.plain() == "451 4.7.1 Service unavailable - try again later");
	// The session goes on: the client may try again at once.
	CHECK(c.cmd("RSET").code == 250);
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	CHECK(maildir_files(d.maildir()).empty());
	CHECK(d.running());
}

TEST_CASE("milter: replies that come one byte at a time are put together") {
	RawMilterDaemon setup(RawMilter::Fault::none, true);
	TernDaemon& d = *setup.daemon;
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, test_message("dripped"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(contains(stored_message(d), "X-Test: dripped"));
}

TEST_CASE("milter: OpenDKIM signs, and the signature tern stores verifies") {
	REQUIRE_MESSAGE(MilterProcess::opendkim_available(), "needs Debian's opendkim and opendkim-tools");
	MilterProcess milter;
	REQUIRE_MILTER(milter.start_opendkim("sender.example", "sel1"));
	TernDaemon d(with_milters("[" + milter_entry(milter.address()) + "]"));
	REQUIRE_RUNNING(d);
	d.dns().add("sel1._domainkey.sender.example", "TXT", milter.dkim_record());
	// A short body, and one past the first megabyte that tern reads with
	// the header section: the rest goes to the milter in chunks read on a
	// worker, and the signature covers every byte of it, in order.
	std::string long_body;
	for (int i = 0; long_body.size() < 1536 * 1024; ++i)
		long_body += "Line " + std::to_string(i) + " of a long body, numbered so no chunk can be swapped.\r\n";
	for (const std::string& body : {std::string("Signed body.\r\nSecond line.\r\n"), long_body}) {
		CAPTURE(body.size());
		remove_tree(d.maildir() + "/new");
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		Transaction t = send_mail(c, test_sender, {"alice@test.example"}, test_message("none", body));
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		std::string stored = stored_message(d);
		INFO(stored.substr(0, 4096));
		INFO(milter.log_text());
		REQUIRE(contains(
		    stored,
		    "\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.example;\r\n\ts=sel1;"));
		CHECK(ends_with(stored, body));
		// tern's own inbound check ran on the changed copy and verified it.
		CHECK(contains(unfold(header_of(stored)), "dkim=pass"));
		// An independent check (python3-dkim) with the key OpenDKIM made.
		CHECK(dkim_verifies(stored, milter.dkim_record()));
	}
}

TEST_CASE("milter: on submission the changes come before tern's DKIM signature") {
	REQUIRE_MESSAGE(MilterProcess::scripted_available(), "needs /usr/bin/python3 with python3-milter");
	MilterProcess milter;
	REQUIRE_MILTER(milter.start_scripted());
	SmtpSink sink;
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	TernDaemon d(o);
	ProgramResult key = run_ternctl({"dkim", "genkey", "rsa", "--out", d.dir() + "/s1.pem"}, "", 60000);
	REQUIRE_MESSAGE(key.exit_code == 0, key.both());
	d.write_config(R"({"listeners": {"test": {"submission": {"require_starttls": false}, "milters": [)" +
	               milter_entry(milter.address()) + R"(]}},
		"queue": {"smarthost": "127.0.0.1:)" +
	               std::to_string(sink.port()) + R"(", "smarthost_tls": "none"},
		"domains": {"test.example": {"dkim": {"selectors": {"s1": {"private_key_file": ")" +
	               d.dir() + R"(/s1.pem", "headers": ["From", "To", "Subject"]}}, "sign": ["s1"]}}}})");
	std::string out;
	const std::string password = "milter submission 7";
	REQUIRE_MESSAGE(set_password(d, "alice", password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());

	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo("client.test.example"));
	REQUIRE(c.cmd("AUTH PLAIN " + plain_response("alice@test.example", password)).code == 235);
	std::string message =
	    "From: <alice@test.example>\r\nTo: <carol@remote.example>\r\nSubject: original\r\n"
	    "X-Test: change-subject\r\n\r\nSigned after the milter.\r\n";
	Transaction t = send_mail(c, "alice@test.example", {"carol@remote.example"}, message);
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	REQUIRE_MESSAGE(sink.wait_for_messages(1, 15000), log_tail(d));
	std::string sent = sink.messages()[0].data;
	INFO(sent);
	CHECK(contains(sent, "\r\nSubject: changed by milter\r\n"));
	CHECK_FALSE(contains(sent, "Subject: original"));
	// tern signed the changed Subject: the signature verifies.
	CHECK(dkim_verifies(sent, key.out.substr(0, key.out.find('\n'))));
}
