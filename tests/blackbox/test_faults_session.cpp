// Session faults found from outside (issue 8): each test reproduces one
// fault as a client sees it, then holds the fix in place.
#include "bb.h"

#include <unistd.h>

namespace {

// Counts complete reply lines equal to `wanted` in bytes.
size_t count_lines(const std::string& bytes, const std::string& wanted) {
	size_t n = 0, start = 0;
	for (size_t eol; (eol = bytes.find("\r\n", start)) != std::string::npos; start = eol + 2)
		if (bytes.compare(start, eol - start, wanted) == 0)
			++n;
	return n;
}

// The first header field `name` (unfolded, without CRLF) of a stored message, "" when absent.
std::string header_field(const std::string& message, const std::string& name) {
	std::string text = "\r\n" + unfold(message);
	size_t at = text.find("\r\n" + name + ":");
	if (at == std::string::npos || at > text.find("\r\n\r\n"))
		return "";
	at += 2;
	return text.substr(at, text.find("\r\n", at) - at);
}

}  // namespace

TEST_CASE("faults: 5000 NOOPs in one write all get their reply, past the output backpressure") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	const size_t count = 5000;
	std::string batch;
	for (size_t i = 0; i < count; ++i)
		batch += "NOOP\r\n";
	REQUIRE(c.send(batch));
	// Far more than 64 KiB of replies: the daemon must come back to the
	// buffered commands once its output has drained.
	std::string received;
	int64_t deadline = now_ms() + 20000;
	while (count_lines(received, "250 2.0.0 alrighty") < count && now_ms() < deadline) {
		std::string more = c.recv_once();
		if (more.empty())
			break;
		received += more;
	}
	CHECK(count_lines(received, "250 2.0.0 alrighty") == count);
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
	std::string stored = read_file(files[0]);
	INFO(stored);
	CHECK(starts_with(header_field(stored, "Authentication-Results"), "Authentication-Results: mx.test.example;"));
	CHECK(contains(header_field(stored, "Received"), " by mx.test.example ("));
	CHECK_FALSE(contains(header_field(stored, "Received"), "listener.test.example"));
}

TEST_CASE("faults: ternd as root without a \"user\" key warns that it keeps root") {
	if (geteuid() != 0) {
		MESSAGE("skipped: the tests do not run as root");
		return;
	}
	TernDaemon d;
	REQUIRE_RUNNING(d);
	std::string log = d.log_text();
	INFO(log);
	size_t at = log.find("running as root");
	REQUIRE(at != std::string::npos);
	size_t line = log.rfind('\n', at);
	line = line == std::string::npos ? 0 : line + 1;
	CHECK(contains(log.substr(line, at - line), "level=warn "));
}
