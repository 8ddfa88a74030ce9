// The submission path (RFC 6409; doc/behaviour.md §7, §8; doc/behaviour.md's
// error table): what an authenticated client may send, and the headers an
// accepted message gets. Delivery of submitted mail to a local recipient
// goes through the outbound queue; `ternd --localserve` delivers before
// the 250, so the on-disk checks right after the 250 use it.
#include "bb.h"

#include <algorithm>
#include <regex>
#include <unistd.h>

#include "helpers/submission_setup.h"
#include "helpers/localserve.h"
#include "helpers/tls_tools.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "submission secret 42";

const char* const open_submission =
    R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
        "accounts": {"carol": {"domain": "test.example", "destinations": {"carol@test.example": {"mailbox": "INBOX"}}}}})";

void start_with_password(TernDaemon& d) { tern::testing::start_with_password(d, "", "alice", alice_password); }

// Connected to the submission port, EHLO done, logged in as alice.
SmtpClient login_alice(TernDaemon& d) {
	std::string reply;
	SmtpClient c = login_submission(d, alice, alice_password, &reply, "client.sender.example");
	REQUIRE(reply == "235 2.7.0 nice");
	return c;
}

// A message without Message-Id and Date (the submission path adds them).
std::string bare_message(const std::string& from, const std::string& to, const std::string& subject) {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\n\r\nHello from the test.\r\n";
}

// The header section (up to the empty line) of a stored message, unfolded.
std::string header_of(const std::string& stored) {
	size_t end = stored.find("\r\n\r\n");
	return unfold(stored.substr(0, end == std::string::npos ? stored.size() : end + 2));
}

size_t count_of(const std::string& s, const std::string& needle) {
	size_t n = 0;
	for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) n++;
	return n;
}

// The submission prefix (doc/behaviour.md §7): Received first, then the added
// Message-Id and Date, then Authentication-Results, then the message.
// A copy the queue delivered into a Maildir starts with the Return-Path the
// final delivery adds (RFC 5321 4.4); localserve's direct copy has none.
void check_submission_headers(const std::string& stored, const std::string& host, const std::string& mail_from,
                              const std::string& with, bool tls, bool return_path) {
	std::string header = header_of(stored);
	INFO(header);
	if (return_path) {
		std::string expected = "Return-Path: <" + mail_from + ">\r\n";
		CHECK(starts_with(header, expected));
		CHECK(count_of(header, "Return-Path:") == 1);
		header = header.substr(std::min(header.size(), expected.size()));
	} else {
		CHECK_FALSE(contains(header, "Return-Path:"));
	}
	CHECK(starts_with(header,
	                  "Received: from " + host + " by " + host + " ([127.0.0.1]) via tcp with " + with + " id "));
	CHECK(contains(header, " for <"));
	static const std::regex tls_comment(
	    R"(\(TLS1\.2 TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)\))");
	CHECK(std::regex_search(header, tls_comment) == tls);
	static const std::regex message_id("\r\nMessage-Id: <[A-Za-z0-9_-]{22}@[^>]+>\r\n", std::regex::icase);
	CHECK(std::regex_search(header, message_id));
	static const std::regex date(
	    "\r\nDate: [^\r\n]*[0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}[^\r\n]*\r\n");
	CHECK(std::regex_search(header, date));
	CHECK(contains(header,
	               "\r\nAuthentication-Results: " + host + "; auth=pass smtp.mailfrom=" + mail_from + "\r\n"));
	// The prefix comes before the message's own header.
	size_t received = header.find("Received: "), auth_results = header.find("Authentication-Results: "),
	       from = header.find("\r\nFrom: ");
	CHECK(received < auth_results);
	CHECK(auth_results < from);
	CHECK(count_of(header, "Message-Id:") + count_of(header, "Message-ID:") == 1);
	CHECK(contains(stored, "\r\n\r\nHello from the test.\r\n"));
}

}  // namespace

TEST_CASE("submission: refusals with exact codes") {
	TernDaemon d(daemon_options(true, false, open_submission, false));
	start_with_password(d);
	REQUIRE_RUNNING(d);

	SUBCASE("MAIL before AUTH: 530 5.7.0") {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", d.submission_port()));
		REQUIRE(c.greet_and_ehlo());
		Reply r = c.cmd("MAIL FROM:<alice@test.example>");
		CHECK(r.plain() == "530 5.7.0 authentication required");
		CHECK(r.has_id());
		// RCPT, too, asks for authentication first (the model's order).
		CHECK(c.cmd("RCPT TO:<alice@test.example>").plain() == "530 5.7.0 authentication required");
		CHECK(c.cmd("DATA").plain() == "530 5.7.0 authentication required");
	}
	SUBCASE("MAIL FROM of another address: 550 5.7.1") {
		SmtpClient c = login_alice(d);
		Reply r = c.cmd("MAIL FROM:<bob@sender.example>");
		CHECK(r.plain() == "550 5.7.1 must match authenticated user");
		CHECK(r.has_id());
		REQUIRE(c.cmd("RSET").code == 250);
		// another local account's address
		CHECK(c.cmd("MAIL FROM:<carol@test.example>").plain() == "550 5.7.1 must match authenticated user");
		REQUIRE(c.cmd("RSET").code == 250);
		// an address literal
		CHECK(c.cmd("MAIL FROM:<alice@[127.0.0.1]>").plain() == "550 5.7.1 must match authenticated user");
		REQUIRE(c.cmd("RSET").code == 250);
		// the user's own address still works afterwards
		CHECK(c.cmd("MAIL FROM:<alice@test.example>").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("From header of another address: 550 5.7.1; the transaction ends") {
		SmtpClient c = login_alice(d);
		Transaction t = send_mail(c, alice, {"alice@test.example"},
		                          bare_message("bob@sender.example", "alice@test.example", "foreign from"));
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "550 5.7.1 must match authenticated user");
		CHECK(t.reply.has_id());
		t = send_mail(c, alice, {"alice@test.example"},
		              bare_message("carol@test.example", "alice@test.example", "other account's from"));
		CHECK(t.reply.plain() == "550 5.7.1 must match authenticated user");
		// doc/behaviour.md D2: the failed DATA ended the transaction.
		CHECK(c.cmd("MAIL FROM:<alice@test.example>").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("Return-Path header: 550 5.6.0") {
		SmtpClient c = login_alice(d);
		Transaction t = send_mail(c, alice, {"alice@test.example"},
		                          "Return-Path: <alice@test.example>\r\n" +
		                              bare_message(alice, "alice@test.example", "rp"));
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "550 5.6.0 message must not have Return-Path header");
		CHECK(t.reply.has_id());
	}
	SUBCASE("no header/body separator: 554 5.6.0") {
		SmtpClient c = login_alice(d);
		Transaction t = send_mail(c, alice, {"alice@test.example"},
		                          "From: <alice@test.example>\r\nSubject: no body\r\n");
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "554 5.6.0 message requires both header and body section");
		CHECK(t.reply.has_id());
	}
	SUBCASE("unparsable From: 550 5.6.0") {
		SmtpClient c = login_alice(d);
		Transaction t = send_mail(
		    c, alice, {"alice@test.example"},
		    "From: <alice@test.example>, <carol@test.example>\r\nSubject: two\r\n\r\nhi\r\n");
		CHECK(t.step == "END");
		CHECK(starts_with(t.reply.plain(), "550 5.6.0 cannot parse header or From address: "));
	}
	// None of the refused messages went anywhere.
	usleep(300000);
	CHECK(maildir_files(d.maildir("alice")).empty());
	CHECK(maildir_files(d.maildir("carol")).empty());
}

TEST_CASE("submission: a foreign From over STARTTLS with smtplib is refused 550 5.7.1") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	SmtplibLogin s;
	s.mode = TlsMode::starttls;
	s.port = d.submission_port();
	s.ca_file = cert.cert_file();
	s.user = alice;
	s.password = alice_password;
	s.mechanism = "PLAIN";
	s.mail_from = alice;
	s.rcpt_to = "alice@test.example";
	s.message = bare_message("mallory@sender.example", "alice@test.example", "foreign");
	RunResult r = run_smtplib(s);
	INFO(r.output);
	CHECK(output_line(r.output, "AUTH ") == "235 2.7.0 nice");
	CHECK(contains(output_line(r.output, "SENT "), "550, b'5.7.1 must match authenticated user ("));
}

TEST_CASE("submission: accepted mail is queued and delivered to the local recipient with the added headers") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);

	SUBCASE("plaintext (ESMTPA)") {
		SmtpClient c = login_alice(d);
		Transaction t = send_mail(c, alice, {"alice@test.example"},
		                          bare_message(alice, "alice@test.example", "plaintext submission"));
		INFO(log_tail(d));
		REQUIRE(t.step == "END");
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		auto files = wait_for_maildir(d.maildir("alice"), 1, 15000);
		REQUIRE(files.size() == 1);
		check_submission_headers(read_file(files[0]), "mx.test.example", alice, "ESMTPA", false, true);
	}
	SUBCASE("STARTTLS with smtplib (ESMTPSA, TLS comment)") {
		SmtplibLogin s;
		s.mode = TlsMode::starttls;
		s.port = d.submission_port();
		s.ca_file = cert.cert_file();
		s.user = alice;
		s.password = alice_password;
		s.mechanism = "CRAM-MD5";
		s.mail_from = alice;
		s.rcpt_to = "alice@test.example";
		s.message = bare_message(alice, "alice@test.example", "tls submission");
		RunResult r = run_smtplib(s);
		INFO(r.output << "\n" << log_tail(d));
		CHECK(output_line(r.output, "AUTH ") == "235 2.7.0 nice");
		CHECK(output_line(r.output, "SENT ") == "ok");
		auto files = wait_for_maildir(d.maildir("alice"), 1, 15000);
		REQUIRE(files.size() == 1);
		check_submission_headers(read_file(files[0]), "mx.test.example", alice, "ESMTPSA", true, true);
	}
	SUBCASE("a message with its own Message-Id and Date keeps them") {
		SmtpClient c = login_alice(d);
		std::string message =
		    "From: <alice@test.example>\r\nTo: <alice@test.example>\r\nSubject: own ids\r\n"
		    "Message-Id: <own-id-1@client.example>\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\n"
		    "\r\nHello from the test.\r\n";
		Transaction t = send_mail(c, alice, {"alice@test.example"}, message);
		REQUIRE(t.step == "END");
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		auto files = wait_for_maildir(d.maildir("alice"), 1, 15000);
		REQUIRE(files.size() == 1);
		std::string header = header_of(read_file(files[0]));
		INFO(header);
		CHECK(count_of(header, "Message-Id:") == 1);
		CHECK(contains(header, "\r\nMessage-Id: <own-id-1@client.example>\r\n"));
		CHECK(count_of(header, "\r\nDate: ") == 1);
		CHECK(contains(
		    header, "Authentication-Results: mx.test.example; auth=pass smtp.mailfrom=alice@test.example\r\n"));
	}
}

TEST_CASE("submission: localserve has the message on disk with its headers when the 250 arrives") {
	LocalserveDaemon ls;
	std::string why = ls.start();
	if (starts_with(why, "busy: ")) {
		MESSAGE("skipped localserve submission test: " << why);
		return;
	}
	REQUIRE_MESSAGE(why.empty(), why);
	std::string newdir = ls.maildir() + "/new";

	SUBCASE("implicit TLS with smtplib: FILES listed right after sendmail returns") {
		SmtplibLogin s;
		s.mode = TlsMode::implicit;
		s.port = 1465;
		s.ca_file = "";  // localserve's own self-signed certificate
		s.user = "tern@localhost";
		s.password = "terntern";
		s.mechanism = "PLAIN";
		s.mail_from = "tern@localhost";
		s.rcpt_to = "someone@example.com";
		s.message = bare_message("tern@localhost", "someone@example.com", "localserve implicit");
		s.check_dir = newdir;
		RunResult r = run_smtplib(s);
		INFO(r.output << "\n" << ls.log());
		CHECK(output_line(r.output, "AUTH ") == "235 2.7.0 nice");
		CHECK(output_line(r.output, "SENT ") == "ok");
		CHECK(starts_with(output_line(r.output, "FILES "), "1 "));
		auto files = maildir_files(ls.maildir());
		REQUIRE(files.size() == 1);
		check_submission_headers(read_file(files[0]), "localhost", "tern@localhost", "ESMTPSA", true, false);
	}
	SUBCASE("STARTTLS on 1587, raw commands: FILES checked before anything else is sent") {
		ScriptResult s = run_smtp_script(
		    TlsMode::starttls, 1587, "",
		    {"EHLO client.example", "AUTH PLAIN " + plain_response("tern@localhost", "terntern"),
		     "MAIL FROM:<tern@localhost>", "RCPT TO:<someone@example.com>", "DATA",
		     "@DATA " + bare_message("tern@localhost", "someone@example.com", "localserve starttls") + ".\r\n",
		     "@CHECKDIR " + newdir, "QUIT"});
		INFO(s.run.output << "\n" << ls.log());
		CHECK(s.error.empty());
		CHECK(s.reply_to(1).last() == "235 2.7.0 nice");
		CHECK(s.reply_to(5).last() == "250 2.2.0 it is done");
		CHECK(starts_with(output_line(s.run.output, "FILES "), "1 "));
		auto files = maildir_files(ls.maildir());
		REQUIRE(files.size() == 1);
		check_submission_headers(read_file(files[0]), "localhost", "tern@localhost", "ESMTPSA", true, false);
	}
	SUBCASE("plaintext on 1587 (STARTTLS offered, not required): ESMTPA, no TLS comment") {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", 1587));
		REQUIRE(c.greet_and_ehlo("client.example"));
		REQUIRE(c.cmd("AUTH PLAIN " + plain_response("tern@localhost", "terntern")).plain() ==
		        "235 2.7.0 nice");
		Transaction t = send_mail(c, "tern@localhost", {"someone@example.com"},
		                          bare_message("tern@localhost", "someone@example.com", "localserve plain"));
		REQUIRE(t.step == "END");
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		// No waiting: the copy is in the Maildir before the 250.
		auto files = maildir_files(ls.maildir());
		REQUIRE(files.size() == 1);
		check_submission_headers(read_file(files[0]), "localhost", "tern@localhost", "ESMTPA", false, false);
	}
}

// doc/behaviour.md §8 step 5: the daily limits from the account's outgoing
// history, one count per recipient, refused with 451 4.7.1 and the model's
// texts.
TEST_CASE("submission: daily message and first-time-recipient limits give 451 4.7.1") {
	SUBCASE("messages per day") {
		TernDaemon d(daemon_options(
		    true, false,
		    merge_patches(open_submission, R"({"accounts": {"alice": {"max_outgoing_messages_per_day": 2}}})"),
		    false));
		start_with_password(d);
		REQUIRE_RUNNING(d);
		SmtpClient c = login_alice(d);
		// Two recipients use up the day's two messages.
		Transaction t = send_mail(c, alice, {"alice@test.example", "carol@test.example"},
		                          bare_message(alice, "carol@test.example", "first"));
		REQUIRE(t.reply.plain() == "250 2.2.0 it is done");
		t = send_mail(c, alice, {"carol@test.example"}, bare_message(alice, "carol@test.example", "second"));
		CHECK(t.step == "END");
		CHECK(t.reply.plain() ==
		      "451 4.7.1 max number of messages (2) over past 24h reached, try increasing per-account setting "
		      "MaxOutgoingMessagesPerDay");
		CHECK(t.reply.has_id());
	}
	SUBCASE("first-time recipients per day") {
		TernDaemon d(daemon_options(
		    true, false,
		    merge_patches(open_submission,
		                  R"({"accounts": {"alice": {"max_first_time_recipients_per_day": 1}}})"),
		    false));
		start_with_password(d);
		REQUIRE_RUNNING(d);
		SmtpClient c = login_alice(d);
		Transaction t = send_mail(c, alice, {"carol@test.example"},
		                          bare_message(alice, "carol@test.example", "one"));
		REQUIRE(t.reply.plain() == "250 2.2.0 it is done");
		// carol is known now; a new recipient on top of the one allowed is refused.
		t = send_mail(c, alice, {"dave@remote.example"}, bare_message(alice, "dave@remote.example", "two"));
		CHECK(t.reply.plain() ==
		      "451 4.7.1 max number of new/first-time recipients (1) over past 24h reached, try increasing "
		      "per-account setting MaxFirstTimeRecipientsPerDay");
		// Sending again to a known recipient is still fine.
		t = send_mail(c, alice, {"carol@test.example"}, bare_message(alice, "carol@test.example", "three"));
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
	}
}
