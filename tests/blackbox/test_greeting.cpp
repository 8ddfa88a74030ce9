// Greeting, EHLO and HELO on the delivery port (doc/behaviour.md §1, §4 HELO/EHLO;
// doc/behaviour.md D1 and 7).
#include "bb.h"

#include <netinet/in.h>
#include <sys/socket.h>

TEST_CASE("greeting: 220 with hostname, ESMTP tern and version, no received id") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.connected());
	Reply g = c.read_reply();
	CHECK(g.code == 220);
	CHECK(g.lines.size() == 1);
	CHECK(starts_with(g.plain(), "220 mx.test.example ESMTP tern "));
	CHECK(g.plain().size() > std::string("220 mx.test.example ESMTP tern ").size());
	CHECK_FALSE(g.has_id());
}

TEST_CASE("greeting: also on ::1 when the listener binds it") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"ips": ["127.0.0.1", "::1"]}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c;
	if (!c.connect("::1", d.smtp_port())) {
		MESSAGE("no IPv6 loopback here: " << c.last_error);
		return;
	}
	CHECK(starts_with(c.read_reply().plain(), "220 mx.test.example ESMTP tern "));
}

// The addresses come from accept4 and, on a listener bound to a specific
// address, from the listener itself; both must match what the client sees.
TEST_CASE("greeting: the new connection line names the client's and the listener's address and port") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"ips": ["127.0.0.1", "::1"]}}})"});
	REQUIRE_RUNNING(d);
	auto client_port = [](const SmtpClient& c) {
		sockaddr_storage ss{};
		socklen_t len = sizeof ss;
		REQUIRE(getsockname(c.fd(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
		return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
		                                      : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
	};
	std::string port = std::to_string(d.smtp_port());
	SmtpClient v4;
	REQUIRE(v4.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(v4.read_reply().code == 220);
	// The line is written before the greeting is sent.
	CHECK(contains(d.log_text(),
	               "msg=\"new connection\" remote=127.0.0.1:" + std::to_string(client_port(v4)) +
	                   " local=127.0.0.1:" + port + " listener=test service=smtp"));
	SmtpClient v6;
	if (!v6.connect("::1", d.smtp_port())) {
		MESSAGE("no IPv6 loopback here: " << v6.last_error);
		return;
	}
	REQUIRE(v6.read_reply().code == 220);
	CHECK(contains(d.log_text(),
	               "msg=\"new connection\" remote=[::1]:" + std::to_string(client_port(v6)) +
	                   " local=[::1]:" + port + " listener=test service=smtp"));
}

TEST_CASE("EHLO on port 25: exact extension list, no STARTTLS or AUTH without TLS config") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	Reply r = c.cmd("EHLO client.sender.example");
	CHECK(r.code == 250);
	std::vector<std::string> expected{
	    "250-mx.test.example",
	    "250-PIPELINING",
	    "250-SIZE 104857600",
	    "250-ENHANCEDSTATUSCODES",
	    "250-8BITMIME",
	    "250-CHUNKING",
	    "250-DSN",
	    "250-LIMITS RCPTMAX=100 MAILMAX=1000",
	    "250 SMTPUTF8",
	};
	CHECK(r.lines == expected);
}

TEST_CASE("EHLO: SIZE advertises the listener's max_message_size") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"max_message_size": 10000}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	Reply r = c.cmd("EHLO client.sender.example");
	REQUIRE(r.lines.size() >= 3);
	CHECK(r.lines[2] == "250-SIZE 10000");
}

TEST_CASE("EHLO: may be repeated; an address literal is accepted") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	CHECK(c.cmd("EHLO client.sender.example").code == 250);
	CHECK(c.cmd("EHLO [127.0.0.1]").code == 250);
	Reply r = c.cmd("EHLO [IPv6:::1]");
	CHECK(r.code == 250);
	CHECK(r.lines.front() == "250-mx.test.example");
}

TEST_CASE("HELO: one line 250 hostname (doc/behaviour.md D1)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	Reply r = c.cmd("HELO client.sender.example");
	CHECK(r.lines == std::vector<std::string>{"250 mx.test.example"});
	// The session works after HELO.
	CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() == "250 2.1.0 looking good");
}

TEST_CASE("HELO: a name that does not resolve is refused on the delivery port") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	Reply r = c.cmd("HELO nowhere.invalid-test.example");
	CHECK(r.plain() == "550 5.5.0 your ehlo domain does not resolve to an IP address");
	CHECK(r.has_id());
}

TEST_CASE("HELO/EHLO: syntax errors") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	Reply r = c.cmd("HELO [127.0.0.1]");
	CHECK(r.code == 501);
	CHECK(r.ecode == "5.5.2");
	CHECK(starts_with(r.message(), "bad syntax"));
	r = c.cmd("EHLO [::1]");
	CHECK(r.code == 501);
	CHECK(r.ecode == "5.5.2");
	r = c.cmd("EHLO");
	CHECK(r.code == 501);
	CHECK(r.ecode == "5.5.2");
}

TEST_CASE("STARTTLS without a TLS config: 502 5.5.1 (doc/behaviour.md D7)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Reply r = c.cmd("STARTTLS");
	CHECK(r.code == 502);
	CHECK(r.ecode == "5.5.1");
	// The connection stays usable.
	CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
}

TEST_CASE("AUTH on the delivery port: 503 5.5.1") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==").plain() ==
	      "503 5.5.1 authentication only allowed on submission ports");
}
