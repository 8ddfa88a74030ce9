// The LMTP client machine (src/smtp/lmtp_client_protocol.h) against
// scripted server replies.
#include <doctest/doctest.h>

#include "smtp/lmtp_client_protocol.h"

using namespace tern::smtp;
using Status = LmtpRecipientResult::Status;

namespace {

LmtpTransaction two_recipients() {
	LmtpTransaction tx;
	tx.lhlo_name = "mx.example.org";
	tx.mail_from = "bob@example.com";
	tx.recipients = {"alice@example.org", "carol@example.org"};
	return tx;
}

// Takes what the machine wants to send.
std::string sent(LmtpClientProtocol& p) {
	std::string out = p.output();
	p.output().clear();
	return out;
}

// Runs the conversation up to the body: greeting, LHLO, MAIL, the RCPT
// replies given, DATA's 354.
void up_to_body(LmtpClientProtocol& p, const std::vector<std::string>& rcpt_replies) {
	p.receive("220 lmtp ready\r\n");
	REQUIRE(sent(p) == "LHLO mx.example.org\r\n");
	p.receive("250-lmtp.example.org\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n");
	REQUIRE(sent(p) == "MAIL FROM:<bob@example.com>\r\n");
	p.receive("250 2.1.0 OK\r\n");
	for (size_t i = 0; i < rcpt_replies.size(); ++i) {
		REQUIRE(sent(p) == "RCPT TO:<" + p.transaction().recipients[i] + ">\r\n");
		p.receive(rcpt_replies[i] + "\r\n");
	}
	REQUIRE(sent(p) == "DATA\r\n");
	p.receive("354 OK\r\n");
	REQUIRE(p.step() == LmtpClientProtocol::Step::body);
}

}  // namespace

TEST_CASE("lmtp client: two recipients, one reply each after the final dot (RFC 2033 4.2)") {
	LmtpClientProtocol p(two_recipients());
	up_to_body(p, {"250 2.1.5 OK", "250 2.1.5 OK"});
	p.body_chunk("Subject: hi\r\n\r\nbody\r\n");
	p.body_end();
	CHECK(sent(p) == "Subject: hi\r\n\r\nbody\r\n.\r\n");
	CHECK_FALSE(p.done());
	p.receive("250 2.0.0 <alice@example.org> Saved\r\n");
	CHECK_FALSE(p.done());
	CHECK(p.results()[0].status == Status::delivered);
	CHECK(p.results()[1].status == Status::pending);
	p.receive("452 4.2.2 <carol@example.org> Quota exceeded\r\n");
	REQUIRE(p.done());
	CHECK(sent(p) == "QUIT\r\n");
	CHECK(p.results()[0].status == Status::delivered);
	CHECK(p.results()[1].status == Status::temporary);
	CHECK(p.results()[1].code == 452);
	CHECK(p.results()[1].enhanced == "4.2.2");
	CHECK(p.results()[1].text == "<carol@example.org> Quota exceeded");
}

TEST_CASE("lmtp client: a recipient refused at RCPT keeps its reply; the others get theirs after the dot") {
	LmtpClientProtocol p(two_recipients());
	up_to_body(p, {"550 5.1.1 <alice@example.org> User doesn't exist: alice@example.org", "250 2.1.5 OK"});
	p.body_end();
	CHECK(sent(p) == ".\r\n");
	// Only one reply is due: carol was the only one accepted.
	p.receive("250 2.0.0 <carol@example.org> Saved\r\n");
	REQUIRE(p.done());
	CHECK(p.results()[0].status == Status::permanent);
	CHECK(p.results()[0].code == 550);
	CHECK(p.results()[0].enhanced == "5.1.1");
	CHECK(p.results()[1].status == Status::delivered);
}

TEST_CASE("lmtp client: every recipient refused at RCPT ends without DATA") {
	LmtpClientProtocol p(two_recipients());
	p.receive("220 ready\r\n250 lmtp\r\n");  // greeting and LHLO reply in one read
	CHECK(sent(p) == "LHLO mx.example.org\r\nMAIL FROM:<bob@example.com>\r\n");
	p.receive("250 OK\r\n550 no\r\n");
	CHECK(sent(p) == "RCPT TO:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\n");
	p.receive("450 later\r\n");
	REQUIRE(p.done());
	CHECK(sent(p) == "QUIT\r\n");
	CHECK(p.results()[0].status == Status::permanent);
	CHECK(p.results()[0].enhanced == "5.0.0");  // the default for a reply without one
	CHECK(p.results()[1].status == Status::temporary);
	CHECK(p.results()[1].enhanced == "4.0.0");
}

TEST_CASE("lmtp client: a server that answers fewer replies than recipients leaves the rest temporary") {
	LmtpClientProtocol p(two_recipients());
	up_to_body(p, {"250 OK", "250 OK"});
	p.body_end();
	sent(p);
	p.receive("250 2.0.0 saved\r\n");
	// Then the server closes (or the deadline passes).
	p.connection_failed("LMTP server closed the connection");
	REQUIRE(p.done());
	CHECK(sent(p) == "");
	CHECK(p.results()[0].status == Status::delivered);
	CHECK(p.results()[1].status == Status::temporary);
	CHECK(p.results()[1].code == 451);
	CHECK(p.results()[1].enhanced == "4.3.0");
	CHECK(p.results()[1].text == "LMTP server closed the connection");
	CHECK(p.results()[1].local);
	CHECK_FALSE(p.results()[0].local);
}

TEST_CASE("lmtp client: garbage from the server fails what is pending, temporarily") {
	SUBCASE("in the greeting") {
		LmtpClientProtocol p(two_recipients());
		p.receive("HTTP/1.1 400 Bad Request\r\n");
		REQUIRE(p.done());
		CHECK(sent(p) == "");
		CHECK(p.results()[0].status == Status::temporary);
		CHECK(p.results()[0].code == 451);
		CHECK(p.results()[1].status == Status::temporary);
	}
	SUBCASE("a multi-line reply whose codes differ") {
		LmtpClientProtocol p(two_recipients());
		p.receive("220 ready\r\n");
		sent(p);
		p.receive("250-one\r\n251 two\r\n");
		REQUIRE(p.done());
		CHECK(p.results()[1].status == Status::temporary);
	}
	SUBCASE("after the dot, garbage instead of the second reply") {
		LmtpClientProtocol p(two_recipients());
		up_to_body(p, {"250 OK", "250 OK"});
		p.body_end();
		p.receive("250 2.0.0 saved\r\nxyz\r\n");
		REQUIRE(p.done());
		CHECK(p.results()[0].status == Status::delivered);
		CHECK(p.results()[1].status == Status::temporary);
	}
	SUBCASE("an endless line") {
		LmtpClientProtocol p(two_recipients());
		p.receive(std::string(5000, '2'));
		REQUIRE(p.done());
		CHECK(p.results()[0].status == Status::temporary);
	}
	SUBCASE("a reply while the body is being sent") {
		LmtpClientProtocol p(two_recipients());
		up_to_body(p, {"250 OK", "250 OK"});
		p.receive("421 4.4.2 timeout\r\n");
		REQUIRE(p.done());
		CHECK(p.results()[0].status == Status::temporary);
	}
}

TEST_CASE("lmtp client: session-level refusals") {
	SUBCASE("a 554 greeting is the setup's problem: temporary") {
		LmtpClientProtocol p(two_recipients());
		p.receive("554 go away\r\n");
		REQUIRE(p.done());
		CHECK(sent(p) == "QUIT\r\n");
		CHECK(p.results()[0].status == Status::temporary);
		CHECK(p.results()[0].code == 451);
		CHECK(p.results()[0].local);
	}
	SUBCASE("MAIL refused with 5xx fails every recipient permanently") {
		LmtpClientProtocol p(two_recipients());
		p.receive("220 x\r\n250 x\r\n553 5.1.7 bad sender\r\n");
		REQUIRE(p.done());
		CHECK(p.results()[0].status == Status::permanent);
		CHECK(p.results()[1].code == 553);
		CHECK(p.results()[1].enhanced == "5.1.7");
		CHECK_FALSE(p.results()[1].local);  // the server's own answer
	}
	SUBCASE("DATA refused with 4xx fails the accepted recipients temporarily") {
		LmtpClientProtocol p(two_recipients());
		p.receive("220 x\r\n250 x\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n");
		CHECK(p.output().find("DATA\r\n") != std::string::npos);
		p.receive("451 4.3.0 busy\r\n");
		REQUIRE(p.done());
		CHECK(p.results()[0].status == Status::permanent);  // its RCPT refusal stays
		CHECK(p.results()[1].status == Status::temporary);
		CHECK(p.results()[1].code == 451);
	}
}

TEST_CASE("lmtp client: MAIL parameters follow what LHLO offers") {
	LmtpTransaction tx = two_recipients();
	tx.body_8bit = true;
	tx.smtputf8 = true;
	SUBCASE("offered") {
		LmtpClientProtocol p(tx);
		p.receive("220 x\r\n250-x\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
		CHECK(sent(p) == "LHLO mx.example.org\r\nMAIL FROM:<bob@example.com> BODY=8BITMIME SMTPUTF8\r\n");
	}
	SUBCASE("SMTPUTF8 required but not offered: permanent 5.6.7 (RFC 6531 3.4)") {
		LmtpClientProtocol p(tx);
		p.receive("220 x\r\n250-x\r\n250 8BITMIME\r\n");
		REQUIRE(p.done());
		CHECK(p.results()[0].status == Status::permanent);
		CHECK(p.results()[0].enhanced == "5.6.7");
	}
	SUBCASE("the null reverse path") {
		LmtpTransaction t = two_recipients();
		t.mail_from = "";
		LmtpClientProtocol p(t);
		p.receive("220 x\r\n250 x\r\n");
		CHECK(sent(p) == "LHLO mx.example.org\r\nMAIL FROM:<>\r\n");
	}
}

TEST_CASE("lmtp client: the body is dot-stuffed across chunk boundaries and ends with CRLF.CRLF") {
	LmtpTransaction tx = two_recipients();
	tx.recipients.resize(1);
	LmtpClientProtocol p(tx);
	p.receive("220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	sent(p);
	REQUIRE(p.step() == LmtpClientProtocol::Step::body);
	p.body_chunk(".leading dot\r\nmiddle .\r\n");
	p.body_chunk(".");  // a chunk ending right after a line start
	p.body_chunk("\r\n..two\r\nno final line end");
	p.body_end();
	CHECK(sent(p) == "..leading dot\r\nmiddle .\r\n..\r\n...two\r\nno final line end\r\n.\r\n");
	p.receive("250 2.0.0 ok\r\n");
	REQUIRE(p.done());
	CHECK(p.results()[0].status == Status::delivered);
}

TEST_CASE("lmtp client: bare LF line ends from the server are read, and replies split across reads") {
	LmtpClientProtocol p(two_recipients());
	p.receive("22");
	CHECK(sent(p) == "");
	p.receive("0 ready\n");
	CHECK(sent(p) == "LHLO mx.example.org\r\n");
}

TEST_CASE("lmtp client: a code of no known class is a local failure, its text for the log only") {
	Reply weird;
	weird.code = 650;
	weird.lines = {"weird"};
	LmtpRecipientResult r = lmtp_result_of(weird);
	CHECK(r.status == Status::temporary);
	CHECK(r.code == 451);
	CHECK(r.enhanced == "4.3.0");
	CHECK(r.local);
	CHECK(r.text.find("650") != std::string::npos);
}
