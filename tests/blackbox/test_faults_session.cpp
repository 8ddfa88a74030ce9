// Session faults found from outside (issue 8): each test reproduces one
// fault as a client sees it, then holds the fix in place.
#include "bb.h"

#include <unistd.h>

#include "helpers/tls_tools.h"

namespace {

// Counts complete reply lines equal to `wanted` in bytes.
size_t count_lines(const std::string& bytes, const std::string& wanted) {
	size_t n = 0, start = 0;
	for (size_t eol; (eol = bytes.find("\r\n", start)) != std::string::npos; start = eol + 2)
		if (bytes.compare(start, eol - start, wanted) == 0) ++n;
	return n;
}

std::string noop_batch(size_t count) {
	std::string batch;
	for (size_t i = 0; i < count; ++i) batch += "NOOP\r\n";
	return batch;
}

// Reads until `expected` NOOP replies came (or 20 s passed, or the peer
// stopped sending); returns how many came.
size_t read_noop_replies(SmtpClient& c, size_t expected) {
	std::string received;
	int64_t deadline = now_ms() + 20000;
	while (count_lines(received, "250 2.0.0 alrighty") < expected && now_ms() < deadline) {
		std::string more = c.recv_once();
		if (more.empty()) break;
		received += more;
	}
	return count_lines(received, "250 2.0.0 alrighty");
}

// Sends line and reads its reply one recv at a time; returns the reply
// bytes, the number of recv calls that brought bytes, and the time taken.
struct TimedReply {
	std::string bytes;
	size_t pieces = 0;
	int64_t ms = 0;
};
TimedReply timed_reply(SmtpClient& c, const std::string& line) {
	TimedReply r;
	int64_t start = now_ms();
	if (!c.send(line + "\r\n")) return r;
	while (!ends_with(r.bytes, "\r\n")) {
		std::string more = c.recv_once();
		if (more.empty()) break;
		r.bytes += more;
		++r.pieces;
	}
	r.ms = now_ms() - start;
	return r;
}

}  // namespace

TEST_CASE("faults: 5000 NOOPs in one write all get their reply, past the output backpressure") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.send(noop_batch(5000)));
	// Far more than 64 KiB of replies: the daemon must come back to the
	// buffered commands once its output has drained.
	CHECK(read_noop_replies(c, 5000) == 5000);
	CHECK(c.cmd("QUIT").code == 221);
}

TEST_CASE("faults: Received by and the Authentication-Results authserv-id use the global hostname") {
	DaemonOptions o;
	o.config_patch = R"({"listeners": {"test": {"hostname": "listener.test.example"}}})";
	TernDaemon d(o);
	REQUIRE_RUNNING(d);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	// The listener's name is for the greeting and EHLO.
	CHECK(starts_with(c.read_reply().plain(), "220 listener.test.example ESMTP "));
	Reply ehlo = c.cmd("EHLO " + test_ehlo);
	REQUIRE(ehlo.code == 250);
	CHECK(ehlo.lines[0] == "250-listener.test.example");
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("hostnames"));
	REQUIRE(t.reply.code == 250);
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	std::string header = delivered_header(files[0]);
	INFO(header);
	CHECK(starts_with(header_field(header, "Authentication-Results"), "mx.test.example;"));
	CHECK(contains(header_field(header, "Received"), " by mx.test.example ("));
	CHECK_FALSE(contains(header_field(header, "Received"), "listener.test.example"));
}

TEST_CASE("faults: Received-SPF receiver= is the global hostname, not the listener's") {
	DaemonOptions o;
	o.config_patch = R"({"listeners": {"test": {"hostname": "listener.test.example"}}})";
	TernDaemon d(o);
	REQUIRE_RUNNING(d);
	// Port 25: the sender's SPF record is checked, so Received-SPF is added.
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("spf receiver"));
	REQUIRE(t.reply.code == 250);
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	std::string spf = header_field(delivered_header(files[0]), "Received-SPF");
	INFO(spf);
	CHECK(starts_with(spf, "pass "));
	// RFC 7208 9.1: receiver= names the host that did the check, as
	// Received's "by" and the Authentication-Results authserv-id do.
	CHECK(contains(spf, " receiver=mx.test.example;"));
	CHECK_FALSE(contains(spf, "listener.test.example"));
}

TEST_CASE("faults: ternd as root without a \"user\" key warns that it keeps root") {
	if (geteuid() != 0) {
		MESSAGE("skipped: the tests do not run as root");
		return;
	}
	TernDaemon d;
	REQUIRE_RUNNING(d);
	// The line follows the binding of the ports: wait for it.
	std::string log = d.log_text();
	for (int64_t deadline = now_ms() + 5000; !contains(log, "running as root") && now_ms() < deadline;
	     log = d.log_text())
		usleep(20000);
	INFO(log);
	size_t at = log.find("running as root");
	REQUIRE(at != std::string::npos);
	size_t line = log.rfind('\n', at);
	line = line == std::string::npos ? 0 : line + 1;
	CHECK(contains(log.substr(line, at - line), "level=warn "));
}

TEST_CASE("faults: slow mode from the 3rd failed AUTH sends each reply byte by byte until a good AUTH") {
	const int delay_ms = 50;
	const std::string alice = "alice@test.example", password = "correct horse 7 battery";
	TernDaemon d(daemon_options(true, false,
	                            R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
	                                "delays_ms": {"bad_client": 50}})",
	                            false));
	d.write_config();
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
	SmtpClient c;
	c.timeout_ms = 30000;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo());

	// Two failures: still fast.
	for (int i = 0; i < 2; ++i) REQUIRE(c.cmd("AUTH PLAIN " + plain_response(alice, "wrong")).code == 535);
	TimedReply fast = timed_reply(c, "NOOP");
	CHECK(fast.bytes == "250 2.0.0 alrighty\r\n");
	CHECK(fast.ms < int64_t(fast.bytes.size()) * delay_ms / 2);

	// The third failure turns slow mode on (its own reply is already slow).
	REQUIRE(c.cmd("AUTH PLAIN " + plain_response(alice, "wrong")).code == 535);
	TimedReply slow = timed_reply(c, "NOOP");
	CHECK(slow.bytes == "250 2.0.0 alrighty\r\n");
	// The read waits one delay, then each byte after the first one more.
	CHECK(slow.ms >= int64_t(slow.bytes.size()) * delay_ms - delay_ms / 2);
	// Byte by byte: far more pieces than one write would make.
	CHECK(slow.pieces >= slow.bytes.size() / 2);

	// Pipelined lines wait for the reply before them: still paced.
	TimedReply two = timed_reply(c, "NOOP\r\nNOOP");
	CHECK(two.bytes == "250 2.0.0 alrighty\r\n");
	CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");

	// A successful AUTH turns slow mode off: replies are fast again. LOGIN
	// (RFC 4954 4) so that the SASL lines go through slow mode too.
	CHECK(c.cmd("AUTH LOGIN").plain() == "334 VXNlcm5hbWU6");
	CHECK(c.cmd(base64(alice)).plain() == "334 UGFzc3dvcmQ6");
	CHECK(c.cmd(base64(password)).plain() == "235 2.7.0 nice");
	TimedReply again = timed_reply(c, "NOOP");
	CHECK(again.bytes == "250 2.0.0 alrighty\r\n");
	CHECK(again.ms < int64_t(again.bytes.size()) * delay_ms / 2);
	CHECK(c.cmd("QUIT").code == 221);
}

TEST_CASE("faults: a message refused by analysis puts the connection in slow mode") {
	const int delay_ms = 50;
	DaemonOptions o;
	o.config_patch = R"({"delays_ms": {"bad_client": 50}})";
	TernDaemon d(o);
	REQUIRE_RUNNING(d);
	d.dns().add("spffail.example", "A", "192.0.2.10");
	d.dns().add("spffail.example", "TXT", "v=spf1 -all");
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	c.timeout_ms = 30000;
	TimedReply fast = timed_reply(c, "NOOP");
	CHECK(fast.ms < int64_t(fast.bytes.size()) * delay_ms / 2);
	Transaction t = send_mail(c, "bob@spffail.example", {"alice@test.example"},
	                          make_message("refused", "Hello Alice.\r\n", "bob@spffail.example"));
	CHECK(t.reply.plain() == "451 4.3.0 error processing");
	TimedReply slow = timed_reply(c, "NOOP");
	CHECK(slow.bytes == "250 2.0.0 alrighty\r\n");
	CHECK(slow.ms >= int64_t(slow.bytes.size()) * delay_ms - delay_ms / 2);
}
