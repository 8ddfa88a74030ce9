// Every command path on the delivery port, with exact codes and enhanced
// codes (doc/behaviour.md §2, §4; doc/behaviour.md §0).
#include "bb.h"

namespace {

const std::string mail_bob = "MAIL FROM:<bob@sender.example>";

}  // namespace

TEST_CASE("commands: order errors (no EHLO, no MAIL, no RCPT, second MAIL)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);

	SUBCASE("MAIL before EHLO") {
		Reply r = c.cmd(mail_bob);
		CHECK(r.plain() == "503 5.5.1 no ehlo/helo yet");
		CHECK(r.has_id());
	}
	SUBCASE("RCPT without MAIL") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		Reply r = c.cmd("RCPT TO:<alice@test.example>");
		CHECK(r.plain() == "503 5.5.1 missing MAIL FROM");
		CHECK(r.has_id());
	}
	SUBCASE("DATA without MAIL") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		CHECK(c.cmd("DATA").plain() == "503 5.5.1 missing MAIL FROM");
	}
	SUBCASE("DATA without RCPT") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		REQUIRE(c.cmd(mail_bob).code == 250);
		Reply r = c.cmd("DATA");
		CHECK(r.plain() == "503 5.5.1 missing RCPT TO");
		CHECK(r.has_id());
	}
	SUBCASE("second MAIL") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		CHECK(c.cmd(mail_bob).plain() == "250 2.1.0 looking good");
		Reply r = c.cmd(mail_bob);
		CHECK(r.plain() == "503 5.5.1 already have MAIL");
		CHECK(r.has_id());
	}
}

TEST_CASE("MAIL FROM: parameters") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());

	SUBCASE("success reply has no id") {
		Reply r = c.cmd(mail_bob);
		CHECK(r.plain() == "250 2.1.0 looking good");
		CHECK_FALSE(r.has_id());
	}
	SUBCASE("unknown parameter: 555 5.3.3") {
		CHECK(c.cmd(mail_bob + " FOO=bar").plain() == "555 5.3.3 unrecognized parameter \"FOO\"");
		// The failed MAIL leaves no transaction behind.
		CHECK(c.cmd(mail_bob).code == 250);
	}
	SUBCASE("BODY=BINARYMIME: 555 5.5.4") {
		CHECK(c.cmd(mail_bob + " BODY=BINARYMIME").plain() == "555 5.5.4 unrecognized parameter \"BODY\"");
	}
	SUBCASE("BODY=8BITMIME and BODY=7bit are accepted") {
		CHECK(c.cmd(mail_bob + " BODY=8BITMIME").plain() == "250 2.1.0 looking good");
		CHECK(c.cmd("RSET").code == 250);
		CHECK(c.cmd(mail_bob + " BODY=7bit").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("duplicate parameter: 501 5.5.4, named as written") {
		CHECK(c.cmd(mail_bob + " SIZE=10 size=20").plain() == "501 5.5.4 duplicate param \"size\"");
	}
	SUBCASE("SIZE over the maximum: 552 5.3.4") {
		CHECK(c.cmd(mail_bob + " SIZE=104857601").plain() == "552 5.3.4 message too large");
	}
	SUBCASE("SIZE at the maximum is fine") {
		CHECK(c.cmd(mail_bob + " SIZE=104857600").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("SIZE with 21 digits: 501 5.5.2 bad syntax") {
		Reply r = c.cmd(mail_bob + " SIZE=100000000000000000000");
		CHECK(r.code == 501);
		CHECK(r.ecode == "5.5.2");
		CHECK(starts_with(r.message(), "bad syntax"));
		CHECK(r.has_id());
	}
	SUBCASE("AUTH=<> is accepted and ignored (doc/behaviour.md D3)") {
		CHECK(c.cmd(mail_bob + " AUTH=<>").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("AUTH=<xtext address> is accepted (doc/behaviour.md D3)") {
		CHECK(c.cmd(mail_bob + " AUTH=<bob+40sender.example>").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("SMTPUTF8 parameter is accepted") {
		CHECK(c.cmd(mail_bob + " SMTPUTF8").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("null reverse path") { CHECK(c.cmd("MAIL FROM:<>").plain() == "250 2.1.0 looking good"); }
	SUBCASE("IP-literal sender on the delivery port: 550 5.7.0") {
		CHECK(c.cmd("MAIL FROM:<bob@[127.0.0.1]>").plain() == "550 5.7.0 domain name required");
	}
	SUBCASE("sender domain without MX or address: 550 5.7.27") {
		CHECK(c.cmd("MAIL FROM:<bob@nomail.example>").plain() ==
		      "550 5.7.27 mailfrom domain not configured for mail");
	}
	SUBCASE("sender domain with a null MX: 550 5.7.27") {
		d.dns().add("nullmx.example", "MX", "0 .");
		d.dns().add("nullmx.example", "A", "127.0.0.1");
		CHECK(c.cmd("MAIL FROM:<bob@nullmx.example>").plain() ==
		      "550 5.7.27 mailfrom domain not configured for mail");
	}
	SUBCASE("sender domain whose lookup fails: 451 4.4.0") {
		d.dns().add_servfail_name("broken.example");
		Reply r = c.cmd("MAIL FROM:<bob@broken.example>");
		CHECK(r.plain() == "451 4.4.0 cannot verify mx records for mailfrom domain");
	}
	SUBCASE("space after FROM: is a syntax error on port 25") {
		Reply r = c.cmd("MAIL FROM: <bob@sender.example>");
		CHECK(r.code == 501);
		CHECK(r.ecode == "5.5.2");
	}
}

TEST_CASE("MAIL FROM: sender domain lookup that never answers gets 451 4.4.0 in bounded time") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SilentSenderReply s = mail_from_silent_sender(d);
	REQUIRE(s.client.connected());
	CHECK(s.reply.plain() == "451 4.4.0 cannot verify mx records for mailfrom domain");
	CHECK(s.ms < 15000);
	// The loop kept running meanwhile: the connection still answers.
	CHECK(s.client.cmd("NOOP").plain() == "250 2.0.0 alrighty");
}

TEST_CASE("RCPT TO: paths and classification") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd(mail_bob).code == 250);

	SUBCASE("known local recipient") {
		Reply r = c.cmd("RCPT TO:<alice@test.example>");
		CHECK(r.plain() == "250 2.1.0 now on the list");
		CHECK_FALSE(r.has_id());
	}
	SUBCASE("local recipient, other case") {
		CHECK(c.cmd("RCPT TO:<Alice@TEST.example>").plain() == "250 2.1.0 now on the list");
	}
	SUBCASE("unknown parameter: 555 5.3.3; DSN's NOTIFY is known (RFC 3461)") {
		CHECK(c.cmd("RCPT TO:<alice@test.example> FOO=bar").plain() ==
		      "555 5.3.3 unrecognized parameter \"FOO\"");
		CHECK(c.cmd("RCPT TO:<alice@test.example> NOTIFY=NEVER").plain() == "250 2.1.0 now on the list");
	}
	SUBCASE("non-ascii localpart without SMTPUTF8: 553 5.6.7") {
		CHECK(c.cmd("RCPT TO:<j\xc3\xb6rg@test.example>").plain() ==
		      "553 5.6.7 non-ascii address not permitted without smtputf8");
	}
	SUBCASE("<POSTMASTER> without domain is accepted") {
		CHECK(c.cmd("RCPT TO:<POSTMASTER>").plain() == "250 2.1.0 now on the list");
	}
	SUBCASE("<postmaster> lower case without domain is accepted") {
		CHECK(c.cmd("RCPT TO:<postmaster>").plain() == "250 2.1.0 now on the list");
	}
	SUBCASE("postmaster at the hostname is accepted") {
		CHECK(c.cmd("RCPT TO:<postmaster@mx.test.example>").plain() == "250 2.1.0 now on the list");
	}
	SUBCASE("domain not hosted here: 550 5.1.1") {
		Reply r = c.cmd("RCPT TO:<someone@elsewhere.example>");
		CHECK(r.plain() == "550 5.1.1 not accepting email for domain");
		CHECK(r.has_id());
	}
	SUBCASE("IP-literal recipient on port 25: 550 5.1.1") {
		CHECK(c.cmd("RCPT TO:<alice@[127.0.0.1]>").plain() == "550 5.1.1 not accepting email for ip");
	}
	SUBCASE("unknown user of a hosted domain is accepted at RCPT") {
		CHECK(c.cmd("RCPT TO:<nobody@test.example>").plain() == "250 2.1.0 now on the list");
	}
	SUBCASE("syntax error in the path") {
		Reply r = c.cmd("RCPT TO:alice@test.example");
		CHECK(r.code == 501);
		CHECK(r.ecode == "5.5.2");
	}
}

TEST_CASE("RCPT TO: non-ascii localpart accepted with SMTPUTF8") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd(mail_bob + " SMTPUTF8").code == 250);
	CHECK(c.cmd("RCPT TO:<j\xc3\xb6rg@test.example>").plain() == "250 2.1.0 now on the list");
}

TEST_CASE("RCPT TO: the 101st recipient gets 452 4.5.3") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd(mail_bob).code == 250);
	int accepted = 0;
	for (int i = 0; i < 100; i++) {
		Reply r = c.cmd("RCPT TO:<user" + std::to_string(i) + "@test.example>");
		if (r.code == 250)
			accepted++;
		else
			FAIL_CHECK("recipient " << i << ": " << r.plain());
	}
	CHECK(accepted == 100);
	CHECK(c.cmd("RCPT TO:<alice@test.example>").plain() == "452 4.5.3 max of 100 recipients reached");
}

TEST_CASE("RCPT TO: null sender allows one recipient only") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<>").code == 250);
	CHECK(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	CHECK(c.cmd("RCPT TO:<postmaster@test.example>").plain() ==
	      "452 4.5.3 only one recipient allowed with null reverse address");
}

TEST_CASE("RCPT TO: a second recipient needs SPF pass for the sender domain") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("nospf.example", "A", "127.0.0.1");
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@nospf.example>").code == 250);
	CHECK(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	CHECK(c.cmd("RCPT TO:<postmaster@test.example>").plain() ==
	      "452 4.5.3 only one recipient allowed without spf pass");
}

TEST_CASE("DATA: all recipients unknown gets 550 5.1.1 no such user(s)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Transaction t = send_mail(c, test_sender, {"nobody@test.example"}, make_message());
	CHECK(t.step == "END");
	CHECK(t.reply.plain() == "550 5.1.1 no such user(s)");
	CHECK(t.reply.has_id());
	CHECK(maildir_files(d.maildir()).empty());
	// doc/behaviour.md D2: the failed DATA ended the transaction.
	CHECK(c.cmd(mail_bob).plain() == "250 2.1.0 looking good");
}

TEST_CASE("DATA: a looping message to unknown users is refused as a loop first, as the model does") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string hops;
	for (int i = 0; i < 101; ++i) hops += "Received: from hop" + std::to_string(i) + ".example; " + "x\r\n";
	Transaction t = send_mail(c, test_sender, {"nobody@test.example"}, hops + make_message());
	CHECK(t.reply.plain() == "550 5.4.6 loop detected, more than 100 Received headers");
	CHECK(c.cmd(mail_bob).plain() == "250 2.1.0 looking good");
}

TEST_CASE("DATA: an unknown user beside a refused one is its own 550 5.1.1 in the list") {
	// doc/behaviour.md §9: all failed with different codes: 554 5.3.0 lines,
	// then "multiple errors" (the model's aggregation).
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=reject");
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	// An SPF pass lets a second recipient in; the From domain, aligned with
	// neither SPF nor a signature, fails DMARC.
	Transaction t = send_mail(c, test_sender, {"nobody@test.example", "alice@test.example"},
	                          make_message("dmarc fails", "x\r\n", "someone@other.example"));
	INFO(t.reply.raw);
	REQUIRE(t.reply.lines.size() == 3);
	CHECK(t.reply.lines[0] == "554-5.3.0 550 5.1.1 no such user");
	CHECK(t.reply.lines[1] == "554-5.3.0 550 5.7.26 rejecting per dmarc policy");
	CHECK(starts_with(t.reply.lines[2], "554 5.3.0 multiple errors ("));  // the received id
}

TEST_CASE("RSET, VRFY, EXPN, HELP, NOOP") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);

	SUBCASE("RSET before EHLO") {
		Reply r = c.cmd("RSET");
		CHECK(r.plain() == "250 2.0.0 all clear");
		CHECK_FALSE(r.has_id());
	}
	SUBCASE("RSET clears the transaction") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		REQUIRE(c.cmd(mail_bob).code == 250);
		CHECK(c.cmd("RSET").plain() == "250 2.0.0 all clear");
		CHECK(c.cmd("RCPT TO:<alice@test.example>").plain() == "503 5.5.1 missing MAIL FROM");
		CHECK(c.cmd(mail_bob).plain() == "250 2.1.0 looking good");
	}
	SUBCASE("RSET with an argument: 501 5.5.2") {
		Reply r = c.cmd("RSET x");
		CHECK(r.code == 501);
		CHECK(r.ecode == "5.5.2");
		CHECK(starts_with(r.message(), "bad syntax"));
	}
	SUBCASE("VRFY") {
		Reply r = c.cmd("VRFY alice");
		CHECK(r.plain() == "252 2.7.0 no verify but will try delivery");
		CHECK(r.has_id());
	}
	SUBCASE("EXPN") {
		Reply r = c.cmd("EXPN staff");
		CHECK(r.plain() == "252 2.7.0 no expand but will try delivery");
		CHECK(r.has_id());
	}
	SUBCASE("VRFY without argument: 501 5.5.2") {
		Reply r = c.cmd("VRFY");
		CHECK(r.code == 501);
		CHECK(r.ecode == "5.5.2");
		CHECK(starts_with(r.message(), "bad syntax"));
	}
	SUBCASE("HELP, with and without arguments") {
		CHECK(c.cmd("HELP").plain() == "214 2.0.0 see rfc 5321 (smtp)");
		CHECK(c.cmd("HELP MAIL").plain() == "214 2.0.0 see rfc 5321 (smtp)");
	}
	SUBCASE("NOOP, with and without a string") {
		Reply r = c.cmd("NOOP");
		CHECK(r.plain() == "250 2.0.0 alrighty");
		CHECK_FALSE(r.has_id());
		CHECK(c.cmd("NOOP \"x\"").plain() == "250 2.0.0 alrighty");
	}
	SUBCASE("verbs are case-insensitive, bare LF ends a command") {
		CHECK(c.cmd("noop").plain() == "250 2.0.0 alrighty");
		REQUIRE(c.send("NoOp\n"));
		CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");
	}
}

TEST_CASE("QUIT: 221 then closed") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Reply r = c.cmd("QUIT");
	CHECK(r.lines == std::vector<std::string>{"221 2.0.0 okay thanks bye"});
	CHECK(c.expect_closed());
}

TEST_CASE("unknown command: first one closes, later ones do not") {
	TernDaemon d;
	REQUIRE_RUNNING(d);

	SUBCASE("as the first command") {
		SmtpClient c = connect_smtp(d);
		REQUIRE(c.read_reply().code == 220);
		Reply r = c.cmd("GET / HTTP/1.0");
		CHECK(r.lines == std::vector<std::string>{"500 5.5.2 please try again speaking smtp"});
		CHECK(c.expect_closed());
	}
	SUBCASE("after a recognised command") {
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		Reply r = c.cmd("FOO bar");
		CHECK(r.plain() == "500 5.5.1 unknown command");
		CHECK(r.has_id());
		CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	}
	SUBCASE("verbs tern does not implement count as unknown") {
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		CHECK(c.cmd("XCLIENT ADDR=192.0.2.1").plain() == "500 5.5.1 unknown command");
		CHECK(c.cmd("ETRN test.example").plain() == "500 5.5.1 unknown command");
	}
}

TEST_CASE("line too long: 500 5.5.0 then closed") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Reply r = c.cmd("NOOP " + std::string(3000, 'x'));
	CHECK(r.lines == std::vector<std::string>{"500 5.5.0 line too long, smtp max is 512, we reached 2048"});
	CHECK(c.expect_closed());
}

TEST_CASE("a line just under the buffer limit is read") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(c.cmd("NOOP " + std::string(1500, 'x')).plain() == "250 2.0.0 alrighty");
}

TEST_CASE("too many failed transactions: the 12th MAIL gets 550 5.1.0 and the close") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	// A transaction fails when its DATA fails (here: every recipient unknown).
	for (int i = 0; i < 11; i++) {
		Transaction t = send_mail(c, test_sender, {"nobody@test.example"}, make_message());
		REQUIRE_MESSAGE(t.reply.plain() == "550 5.1.1 no such user(s)",
		                "transaction " << i << " at " << t.step);
	}
	Reply r = c.cmd(mail_bob);
	CHECK(r.lines == std::vector<std::string>{"550 5.1.0 too many failures"});
	CHECK(c.expect_closed());
}

TEST_CASE("ten failed transactions are tolerated; a good one resets the verdict") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	for (int i = 0; i < 10; i++)
		REQUIRE(send_mail(c, test_sender, {"nobody@test.example"}, make_message()).reply.code == 550);
	// Bad count 10 is not "more than 10".
	Transaction good = send_mail(c, test_sender, {"alice@test.example"}, make_message());
	CHECK(good.reply.plain() == "250 2.2.0 it is done");
	for (int i = 0; i < 3; i++)
		REQUIRE(send_mail(c, test_sender, {"nobody@test.example"}, make_message()).reply.code == 550);
	// More than 10 bad, but one good: MAIL still works.
	CHECK(c.cmd(mail_bob).plain() == "250 2.1.0 looking good");
}

TEST_CASE("received id: the same 22-char id on every error of a connection, different per connection") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c1 = connect_and_ehlo(d);
	SmtpClient c2 = connect_and_ehlo(d);
	REQUIRE(c1.connected());
	REQUIRE(c2.connected());
	Reply a = c1.cmd("RCPT TO:<alice@test.example>");
	Reply b = c1.cmd("DATA");
	Reply other = c2.cmd("RCPT TO:<alice@test.example>");
	REQUIRE(a.has_id());
	REQUIRE(b.has_id());
	REQUIRE(other.has_id());
	CHECK(a.id().size() == 22);
	CHECK(a.id() == b.id());
	CHECK(a.id() != other.id());
}
