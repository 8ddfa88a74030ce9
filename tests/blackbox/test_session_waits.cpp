// Every waiting state has a deadline (doc/design.md "One lifetime rule"): a
// command suspended on a lookup that never completes is ended by the
// session, not left waiting for ever.
#include "bb.h"

TEST_CASE("waits: a command whose lookup never completes gets 421 4.4.2 after timeouts_s.data_total") {
	// The resolver's own timeout (dns.timeout_ms) is longer than the
	// session's bound here, so only the session's deadline can answer.
	TernDaemon d({.config_patch = R"({"timeouts_s": {"data_total": 1}, "dns": {"timeout_ms": 30000}})"});
	REQUIRE_RUNNING(d);
	SilentSenderReply s = mail_from_silent_sender(d);
	REQUIRE(s.client.connected());
	CHECK(s.reply.plain() == "421 4.4.2 timeout, closing connection");
	CHECK(s.ms >= 900);
	CHECK(s.ms < 10000);
	CHECK(s.client.expect_closed());
	// Logged like every other timeout, with the state that timed out.
	CHECK(d.log_text().find("msg=timeout state=waiting") != std::string::npos);
}

TEST_CASE("waits: a lookup that answers within the bound is not cut short") {
	TernDaemon d({.config_patch = R"({"timeouts_s": {"data_total": 5}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() == "250 2.1.0 looking good");
	CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
}
