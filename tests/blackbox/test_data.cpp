// DATA: storage in Maildir, prefix headers, dot-unstuffing, bare newlines,
// smuggling, size limit, transaction reset (doc/behaviour.md §4 DATA, §5, §7;
// decisions 2, 8, 12; SPEC "Maildir").
#include "bb.h"

namespace {

// The only file in alice's new/, or "" (with a failed check) when there is
// not exactly one.
std::string only_message(TernDaemon& d, const std::string& account = "alice") {
	auto files = wait_for_maildir(d.maildir(account), 1);
	CHECK_MESSAGE(files.size() == 1, "files in new/: " << files.size());
	if (files.size() != 1) return "";
	return read_file(files[0]);
}

// The header lines the daemon put before the message it received.
std::string prefix_of(const std::string& stored, const std::string& sent) {
	if (!ends_with(stored, sent)) return "";
	return stored.substr(0, stored.size() - sent.size());
}

}  // namespace

TEST_CASE("DATA: delivery to alice lands in Maildir/new with Return-Path and Received first") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").plain() == "250 2.1.0 looking good");
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").plain() == "250 2.1.0 now on the list");
	Reply r = c.cmd("DATA");
	CHECK(r.lines == std::vector<std::string>{"354 see you at the bare dot"});
	std::string message = make_message("hello", "Hello Alice.\r\nSecond line.\r\n");
	REQUIRE(c.send(message + ".\r\n"));
	r = c.read_reply();
	CHECK(r.lines == std::vector<std::string>{"250 2.2.0 it is done"});

	std::string stored = only_message(d);
	REQUIRE(ends_with(stored, message));
	std::string prefix = unfold(prefix_of(stored, message));
	INFO("prefix:\n" << prefix);
	// Every prefix line is a header line ending in CRLF.
	CHECK(ends_with(prefix, "\r\n"));
	CHECK_FALSE(contains(prefix, "\r\n\r\n"));
	size_t return_path = prefix.find("Return-Path: <bob@sender.example>\r\n");
	size_t received = prefix.find("Received: from client.sender.example");
	CHECK(return_path != std::string::npos);
	CHECK(received != std::string::npos);
	CHECK(return_path < received);
	CHECK((return_path == 0 || prefix[return_path - 1] == '\n'));
	std::string received_line = prefix.substr(received, prefix.find("\r\n", received) - received);
	CHECK(contains(received_line, " by mx.test.example"));
	CHECK(contains(received_line, " for <alice@test.example>; "));
	CHECK(contains(received_line, " with ESMTP id "));
	// The Received header is the last one tern adds (doc/behaviour.md §7 delivery prefix order).
	CHECK(prefix.find("\r\n", received) + 2 == prefix.size());

	// Maildir file name: <seconds>.<unique>.<host>,S=<size>
	auto files = maildir_files(d.maildir());
	REQUIRE(files.size() == 1);
	std::string name = files[0].substr(files[0].rfind('/') + 1);
	CHECK(contains(name, ",S=" + std::to_string(stored.size())));
	CHECK(maildir_files(d.maildir(), "tmp").empty());
}

TEST_CASE(
    "DATA: under SMTPUTF8 Return-Path and Received's \"for\" take the ASCII form of a domain, and an IDN EHLO name is written in Unicode with its ASCII form as a comment") {
	// doc/behaviour.md §7, as the model writes them: the EHLO name in the
	// form the transaction uses, the reverse name when it differs from it,
	// then the ASCII form. (EHLO comes before SMTPUTF8, so its name is
	// ASCII; an A-label has a Unicode form.)
	DaemonOptions o;
	o.config_patch =
	    R"({"domains": {"b\u00fccher.example": {}},
	        "accounts": {"alice": {"destinations": {"alice@b\u00fccher.example": {"mailbox": "INBOX"}}}}})";
	TernDaemon d(o);
	REQUIRE_RUNNING(d);
	d.dns().add("xn--snder-nsa.example", "A", "127.0.0.1");
	SmtpClient c = connect_and_ehlo(d, "xn--clint-psa.example");
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@s\xc3\xab"
	              "nder.example> SMTPUTF8")
	            .plain() == "250 2.1.0 looking good");
	REQUIRE(c.cmd("RCPT TO:<alice@b\xc3\xbc"
	              "cher.example>")
	            .plain() == "250 2.1.0 now on the list");
	REQUIRE(c.cmd("DATA").code == 354);
	std::string message = make_message("idn");
	REQUIRE(c.send(message + ".\r\n"));
	REQUIRE(c.read_reply().plain() == "250 2.2.0 it is done");

	std::string stored = only_message(d);
	std::string prefix = unfold(prefix_of(stored, message));
	INFO("prefix:\n" << prefix);
	CHECK(contains(prefix, "Return-Path: <bob@xn--snder-nsa.example>\r\n"));
	CHECK(contains(prefix,
	               "Received: from cli\xc3\xab"
	               "nt.example (client.sender.example [127.0.0.1]) "
	               "(xn--clint-psa.example) by mx.test.example ([127.0.0.1]) via tcp with UTF8SMTP id "));
	CHECK(contains(prefix, " for <alice@xn--bcher-kva.example>; "));
	CHECK(contains(prefix,
	               " smtp.mailfrom=s\xc3\xab"
	               "nder.example (xn--snder-nsa.example)"));
}

TEST_CASE("DATA: without SMTPUTF8 an IDN EHLO name stays in its ASCII form, with no second comment") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d, "xn--clint-psa.example");
	REQUIRE(c.connected());
	std::string message = make_message("ascii");
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, message).reply.plain() == "250 2.2.0 it is done");
	std::string prefix = unfold(prefix_of(only_message(d), message));
	INFO("prefix:\n" << prefix);
	CHECK(contains(prefix, "Received: from xn--clint-psa.example (client.sender.example [127.0.0.1]) by "));
}

TEST_CASE("DATA: Return-Path of a null sender is <>") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string message = make_message("bounce");
	Transaction t = send_mail(c, "", {"alice@test.example"}, message);
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	std::string stored = only_message(d);
	CHECK(contains(prefix_of(stored, message), "Return-Path: <>\r\n"));
}

TEST_CASE("DATA: mail to <POSTMASTER> goes to the postmaster account, rendered with the hostname") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string message = make_message("to postmaster");
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<POSTMASTER>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(message + ".\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	std::string stored = only_message(d);
	// doc/behaviour.md D9.
	CHECK(contains(unfold(prefix_of(stored, message)), " for <postmaster@mx.test.example>; "));
}

TEST_CASE("DATA: body is stored byte-exact, dot-unstuffed, CRLF") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string body = "..leading dots\r\n.\r\n...\r\n. space\r\nend \t \r\n\r\n\r\n8bit \xc3\xa9\r\n";
	// The message as it should be stored: one dot removed at each line start.
	std::string message = make_message("dots", body);
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example> BODY=8BITMIME").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(dot_stuff(message) + ".\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	std::string stored = only_message(d);
	CHECK(ends_with(stored, message));
	CHECK(contains(stored, "\r\n\r\n..leading dots\r\n.\r\n...\r\n. space\r\n"));
}

TEST_CASE("DATA: a message of only the terminator is empty, the prefix is still added") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(".\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	std::string stored = only_message(d);
	CHECK(contains(stored, "Return-Path: <bob@sender.example>\r\n"));
}

TEST_CASE("DATA: the transaction is reset after any final DATA reply (doc/behaviour.md D2)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	SUBCASE("after success") {
		CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message()).reply.code == 250);
	}
	SUBCASE("after failure") {
		CHECK(send_mail(c, test_sender, {"nobody@test.example"}, make_message()).reply.code == 550);
	}
	CHECK(c.cmd("RCPT TO:<alice@test.example>").plain() == "503 5.5.1 missing MAIL FROM");
	CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() == "250 2.1.0 looking good");
}

TEST_CASE("DATA: two messages on one connection, several recipients") {
	TernDaemon d({.config_patch = R"({"accounts": {"bob": {"domain": "test.example",
		"destinations": {"bob@test.example": {"mailbox": "INBOX"}}}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(
	    send_mail(c, test_sender, {"alice@test.example", "bob@test.example"}, make_message("one")).reply.plain() ==
	    "250 2.2.0 it is done");
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message("two")).reply.plain() ==
	      "250 2.2.0 it is done");
	CHECK(wait_for_maildir(d.maildir("alice"), 2).size() == 2);
	auto bob = wait_for_maildir(d.maildir("bob"), 1);
	REQUIRE(bob.size() == 1);
	CHECK(contains(unfold(read_file(bob[0])), " for <bob@test.example>; "));
}

// The model folds localparts with Go's strings.ToLower: every letter, not
// only ASCII ones (doc/behaviour.md §9).
TEST_CASE("DATA: a UTF-8 localpart in capitals reaches the account of its lower-case destination") {
	TernDaemon d({.config_patch = R"({"accounts": {"joerg": {"domain": "test.example",
		"destinations": {"jörg@test.example": {"mailbox": "INBOX"}}}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example> SMTPUTF8").code == 250);
	REQUIRE(c.cmd("RCPT TO:<JÖRG@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(make_message("capitals", "hi\r\n", test_sender, "JÖRG@test.example") + ".\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	CHECK(wait_for_maildir(d.maildir("joerg"), 1).size() == 1);
}

TEST_CASE("DATA: some recipients unknown: the known ones get the message, reply 250") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Transaction t = send_mail(c, test_sender, {"alice@test.example", "nobody@test.example"}, make_message());
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(wait_for_maildir(d.maildir(), 1).size() == 1);
}

TEST_CASE("DATA: smuggling sequences do not end DATA") {
	struct Case {
		const char* name;
		const char* sequence;
	};
	const Case cases[] = {
	    {"LF . LF", "\n.\n"},
	    {"LF . CRLF", "\n.\r\n"},
	    {"CRLF . LF", "\r\n.\n"},
	    {"CR . CR", "\r.\r"},
	};
	TernDaemon d;
	REQUIRE_RUNNING(d);
	int delivered = 0;
	for (const Case& kase : cases) {
		CAPTURE(kase.name);
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
		REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
		REQUIRE(c.cmd("DATA").code == 354);
		std::string data = "Subject: smuggle\r\n\r\nhello" + std::string(kase.sequence) +
		    "MAIL FROM:<evil@sender.example>\r\nRCPT TO:<postmaster@test.example>\r\nDATA\r\n"
		    "smuggled body\r\n.\r\n";
		REQUIRE(c.send(data));
		Reply r = c.read_reply();
		CHECK(r.plain() == "250 2.2.0 it is done");
		if (r.code == 250) delivered++;
		// Nothing else was executed: the next reply is the NOOP's.
		CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
		auto files = wait_for_maildir(d.maildir(), size_t(delivered));
		REQUIRE(files.size() == size_t(delivered));
		// Every stored message holds the smuggled commands as text.
		int with_smuggled_text = 0;
		for (auto& f : files) {
			std::string s = read_file(f);
			if (contains(s, "hello") && contains(s, "MAIL FROM:<evil@sender.example>\r\n") &&
			    contains(s, "smuggled body\r\n"))
				with_smuggled_text++;
		}
		CHECK(with_smuggled_text == delivered);
	}
	CHECK(delivered == 4);
	CHECK(maildir_files(d.maildir()).size() == 4);
}

TEST_CASE("DATA: bare LF and bare CR are stored as CRLF with the default normalize") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send("Subject: bare\r\n\r\nline one\nline two\rline three\r\n.\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	std::string stored = only_message(d);
	CHECK(ends_with(stored, "Subject: bare\r\n\r\nline one\r\nline two\r\nline three\r\n"));
	// No bare LF or CR anywhere in the stored file.
	for (size_t i = 0; i < stored.size(); i++) {
		if (stored[i] == '\n') REQUIRE((i > 0 && stored[i - 1] == '\r'));
		if (stored[i] == '\r') REQUIRE((i + 1 < stored.size() && stored[i + 1] == '\n'));
	}
}

TEST_CASE("DATA: bare_newlines reject fails the transaction with 500 5.5.2, connection stays usable") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"bare_newlines": "reject"}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send("Subject: bare\r\n\r\nline one\nline two\r\n.\r\n"));
	Reply r = c.read_reply();
	CHECK(r.plain() == "500 5.5.2 invalid bare carriage return or newline, may be smtp smuggling");
	CHECK(r.has_id());
	CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	// The transaction ended; a clean one is delivered.
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message());
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir(), 1);
	CHECK(files.size() == 1);
	if (files.size() == 1) CHECK_FALSE(contains(read_file(files[0]), "line one"));
}

TEST_CASE("DATA: bare_newlines reject also catches a bare CR and a smuggling dot") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"bare_newlines": "reject"}}})"});
	REQUIRE_RUNNING(d);
	for (const char* data : {"Subject: x\r\n\r\na\rb\r\n.\r\n", "Subject: x\r\n\r\na\n.\nb\r\n.\r\n"}) {
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
		REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
		REQUIRE(c.cmd("DATA").code == 354);
		REQUIRE(c.send(data));
		CHECK(c.read_reply().plain() ==
		      "500 5.5.2 invalid bare carriage return or newline, may be smtp smuggling");
	}
	CHECK(maildir_files(d.maildir()).empty());
}

TEST_CASE("DATA: over max_message_size gets 552 5.2.3 and the close (doc/behaviour.md D12)") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"max_message_size": 10000}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	std::string body;
	for (int i = 0; i < 250; i++) body += std::string(78, 'a' + char(i % 26)) + "\r\n";  // 20000 bytes
	// One write, so the whole message is in the daemon's socket buffer.
	c.send(make_message("big", body) + ".\r\n");
	Reply r = c.read_reply();
	CHECK(r.code == 552);
	CHECK(r.ecode == "5.2.3");
	CHECK(r.message() == "message too large");
	CHECK(c.expect_closed());
	CHECK(maildir_files(d.maildir()).empty());
}

TEST_CASE("DATA: MAIL SIZE over a small limit gets 552 5.2.3") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"max_message_size": 10000}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(c.cmd("MAIL FROM:<bob@sender.example> SIZE=10001").plain() == "552 5.2.3 message too large");
	CHECK(c.cmd("MAIL FROM:<bob@sender.example> SIZE=10000").plain() == "250 2.1.0 looking good");
}

TEST_CASE("DATA: a message just under max_message_size is accepted") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"max_message_size": 10000}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string body;
	for (int i = 0; i < 80; i++) body += std::string(78, 'b') + "\r\n";  // 6400 bytes
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message("fits", body)).reply.plain() ==
	      "250 2.2.0 it is done");
}

TEST_CASE("DATA: a large message (5 MB) in many writes is stored intact") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string body;
	for (int i = 0; body.size() < 5 * 1024 * 1024; i++)
		body += "line " + std::to_string(i) + " " + std::string(60, char('a' + i % 26)) + "\r\n";
	std::string message = make_message("large", body);
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	for (size_t off = 0; off < message.size(); off += 7001) REQUIRE(c.send(message.substr(off, 7001)));
	REQUIRE(c.send(".\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	std::string stored = only_message(d);
	CHECK(ends_with(stored, message));
}

TEST_CASE("DATA: data without a header section becomes the body of the stored copy, as the model stores it") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	const std::string data = "Subject: no separator here\r\nX-Foo: bar\r\n";
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, data).reply.plain() == "250 2.2.0 it is done");
	std::string stored = only_message(d);
	REQUIRE(ends_with(stored, data));
	std::string prefix = stored.substr(0, stored.size() - data.size());
	// The added fields, Received last, then the empty line.
	CHECK(ends_with(prefix, "\r\n\r\n"));
	CHECK(contains(unfold(prefix), "Received: from client.sender.example"));
	// With a header section nothing is added between.
	std::string with_header = make_message("normal");
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, with_header).reply.code == 250);
	auto files = wait_for_maildir(d.maildir(), 2);
	REQUIRE(files.size() == 2);
	for (const auto& f : files) {
		std::string text = read_file(f);
		if (!ends_with(text, with_header)) continue;
		CHECK_FALSE(ends_with(text.substr(0, text.size() - with_header.size()), "\r\n\r\n"));
	}
}

TEST_CASE("DATA: a header of more than 10,000 fields is stored intact (doc/behaviour.md D19)") {
	// Parsed, each tiny field would cost about a hundred bytes of memory on
	// the analysis worker; past the limit the header counts as unreadable.
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string fields;
	for (int i = 0; i < 12000; i++) fields += "X:\r\n";
	std::string message = fields + make_message("many fields");
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, message).reply.plain() == "250 2.2.0 it is done");
	CHECK(ends_with(only_message(d), message));
	CHECK(c.cmd("NOOP").code == 250);
}
