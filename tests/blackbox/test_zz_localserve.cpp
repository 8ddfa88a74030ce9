// `ternd --localserve` (SPEC "localserve"). It uses fixed ports (1025 …),
// so this file runs last (doctest orders by file name) and skips when the
// ports are taken.
#include "bb.h"
#include "helpers/localserve.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

TEST_CASE("localserve: swaks delivers to the tern account; special localparts fail as told") {
	LocalserveDaemon ls;
	std::string why = ls.start();
	if (starts_with(why, "busy: ")) {
		MESSAGE("skipped localserve test: " << why);
		return;
	}
	REQUIRE_MESSAGE(why.empty(), why);

	SUBCASE("swaks") {
		RunResult r = run_command({"/usr/bin/timeout", "30", "/usr/bin/swaks", "--server", "127.0.0.1:1025",
		                           "--to", "someone@example.com", "--from", "sender@example.org", "--helo",
		                           "client.example"},
		                          40000);
		INFO(r.output);
		CHECK(r.exit_code == 0);
		auto files = wait_for_maildir(ls.maildir(), 1);
		REQUIRE(files.size() == 1);
		std::string stored = unfold(read_file(files[0]));
		CHECK(contains(stored, "Return-Path: <sender@example.org>\r\n"));
		// No lookups in localserve, so every method is none (RFC 8601 2.2).
		CHECK(contains(stored, "\r\nAuthentication-Results: localhost; none\r\n"));
		CHECK(contains(stored, "Received: from client.example"));
		CHECK(contains(stored, " for <someone@example.com>; "));
		// The log names the reason the delivery metric counts.
		CHECK(contains(ls.log(), "msg=\"message delivered\" recipients=1 reason=no-bad-signals"));
	}

	SUBCASE("sendmail.tern with the data directory as -C") {
		REQUIRE(wait_for_unix_socket(ls.data_dir() + "/public/sendmail.sock"));
		ProgramResult r = run_program({repo_root() + "/src/sendmail.tern", "-C", ls.data_dir(), "-t"},
		                              "To: someone@example.com\nSubject: from php\n\nhello\n");
		INFO(r.both());
		CHECK(r.exit_code == 0);
		auto files = wait_for_maildir(ls.maildir(), 1);
		REQUIRE(files.size() == 1);
		std::string stored = read_file(files[0]);
		CHECK(contains(stored, "Received: by localhost (tern sendmail, from userid 0)"));
		CHECK(contains(stored, "\r\n\r\nhello\r\n"));
	}

	SUBCASE("special localparts") {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", 1025));
		REQUIRE(c.greet_and_ehlo("client.example"));
		CHECK(c.cmd("MAIL FROM:<mailfrompermerror@x.example>").plain() ==
		      "550 5.0.0 failure with code 550 due to special localpart");
		CHECK(c.cmd("MAIL FROM:<mailfrom451@x.example>").plain() ==
		      "451 4.0.0 failure with code 451 due to special localpart");
		REQUIRE(c.cmd("MAIL FROM:<sender@x.example>").code == 250);
		Reply r = c.cmd("RCPT TO:<rcptto451@x.example>");
		CHECK(r.plain() == "451 4.0.0 failure with code 451 due to special localpart");
		CHECK(r.has_id());
		CHECK(c.cmd("RCPT TO:<rcpttotemperror@x.example>").code == 451);
		CHECK(c.cmd("RCPT TO:<x554@x.example>").plain() == "250 2.1.0 now on the list");
		REQUIRE(c.cmd("DATA").code == 354);
		REQUIRE(c.send(make_message("special", "hi\r\n", "sender@x.example", "x554@x.example") + ".\r\n"));
		CHECK(c.read_reply().plain() == "554 5.0.0 failure with code 554 due to special localpart");
		CHECK(maildir_files(ls.maildir()).empty());
	}

	SUBCASE("/metrics on 127.0.0.1 and, where there is ::1, on ::1 (SPEC \"localserve\")") {
		const char* fetch =
		    "import sys, urllib.request\n"
		    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
		    "r = opener.open(sys.argv[1], timeout=10)\n"
		    "print(r.status)\n"
		    "print(r.read().decode())\n";
		for (std::string host : {"127.0.0.1", "[::1]"}) {
			SmtpClient probe;
			if (host == "[::1]" && !probe.connect("::1", 1025)) continue;  // no ::1 here
			RunResult r = run_command({"/usr/bin/python3", "-c", fetch, "http://" + host + ":1080/metrics"},
			                          20000);
			INFO(host << ": " << r.output);
			CHECK(r.exit_code == 0);
			CHECK(starts_with(r.output, "200\n"));
			CHECK(contains(r.output, "tern_connections_open"));
		}
	}

	SUBCASE("only tern@localhost logs in, though every address takes mail (SPEC \"localserve\")") {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", 1587));
		REQUIRE(c.greet_and_ehlo("client.example"));
		CHECK(c.cmd("AUTH PLAIN " + plain_response("anyone@example.com", "terntern")).plain() ==
		      "535 5.7.8 bad user/pass");
		CHECK(c.cmd("AUTH PLAIN " + plain_response("tern@localhost", "terntern")).plain() == "235 2.7.0 nice");
	}

	SUBCASE("any recipient domain is accepted, also on ::1 when available") {
		SmtpClient c;
		if (!c.connect("::1", 1025)) REQUIRE(c.connect("127.0.0.1", 1025));
		REQUIRE(c.greet_and_ehlo("client.example"));
		Transaction t = send_mail(c, "sender@example.org", {"whoever@anything.example", "tern@localhost"},
		                          make_message("two rcpts", "hi\r\n", "sender@example.org"));
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		CHECK(wait_for_maildir(ls.maildir(), 2).size() == 2);
	}
}
