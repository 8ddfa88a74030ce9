// AUTH on the submission listeners (RFC 4954; doc/behaviour.md §4 AUTH, §10,
// §11, decisions 4, 5, 6, 15; doc/behaviour.md §0): every refusal
// with its exact code and enhanced code, and real clients logging in with
// each mechanism: Python's smtplib (PLAIN, LOGIN, CRAM-MD5) and gsasl
// (SCRAM-SHA-1, SCRAM-SHA-256), over STARTTLS and over implicit TLS.
#include "bb.h"

#include "helpers/tls_tools.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "correct horse 7 battery";

const char* const open_submission = R"({"listeners": {"test": {"submission": {"require_starttls": false}}}})";
// carol has an account but no password (so no stored secrets).
const char* const carol_account =
    R"({"accounts": {"carol": {"domain": "test.example", "destinations": {"carol@test.example": {"mailbox": "INBOX"}}}}})";

bool has_line(const std::vector<std::string>& lines, const std::string& wanted) {
	for (const auto& line : lines)
		if (line == wanted) return true;
	return false;
}

bool has_line_starting(const std::vector<std::string>& lines, const std::string& prefix) {
	for (const auto& line : lines)
		if (starts_with(line, prefix)) return true;
	return false;
}

// A daemon whose alice has alice_password, set with ternctl before start.
void start_with_password(TernDaemon& d) {
	d.write_config();
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
}

// base64 of a SCRAM client-first message (RFC 5802 5.1) for user.
std::string scram_client_first(const std::string& user) { return base64("n,,n=" + user + ",r=clientnonce0123456789"); }

}  // namespace

TEST_CASE("auth: refusals in the clear when TLS is not required (exact codes)") {
	TestCert cert;
	TernDaemon d(
	    daemon_options(true, false, cert.config_patch(merge_patches(open_submission, carol_account)), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.read_reply().code == 220);

	SUBCASE("AUTH before EHLO") {
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password)).plain() ==
		      "503 5.5.1 no ehlo/helo yet");
	}
	SUBCASE("EHLO advertises every mechanism, LOGIN after PLAIN") {
		Reply ehlo = c.cmd("EHLO client.sender.example");
		CHECK(has_line(ehlo.lines, "250-AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"));
		CHECK(has_line(ehlo.lines, "250-STARTTLS"));
	}
	SUBCASE("the refusals") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		Reply r;
		// RFC 4954 4: "*" cancels the exchange.
		r = c.cmd("AUTH PLAIN");
		CHECK(r.raw == "334 \r\n");
		r = c.cmd("*");
		CHECK(r.plain() == "501 5.5.0 authentication aborted");
		CHECK(r.has_id());

		// The model's decoder's text, with the offending byte's offset.
		r = c.cmd("AUTH PLAIN !!!!");
		CHECK(r.plain() == "501 5.5.2 invalid base64: illegal base64 data at input byte 0");
		CHECK(r.has_id());
		r = c.cmd("AUTH PLAIN");
		REQUIRE(r.code == 334);
		CHECK(c.cmd("a=b=c").plain() == "501 5.5.2 invalid base64: illegal base64 data at input byte 1");
		// CRAM-MD5 takes no initial response: the rest of the line is a
		// syntax error, its text not shown before login.
		CHECK(c.cmd("AUTH CRAM-MD5 abcd").plain() == "501 5.5.2 bad syntax: expected end of line");
		CHECK(c.cmd("AUTH CRAM-MD5 ").plain() == "501 5.5.2 bad syntax: expected end of line");
		// The mechanism is judged before what follows it, even text that
		// no name has or a name's 21st character (the model's order).
		CHECK(c.cmd("AUTH FOO ").plain() == "504 5.5.4 mechanism FOO not supported");
		CHECK(c.cmd("AUTH FOO!").plain() == "504 5.5.4 mechanism FOO not supported");
		CHECK(c.cmd("AUTH ABCDEFGHIJKLMNOPQRSTUVWXYZ").plain() ==
		      "504 5.5.4 mechanism ABCDEFGHIJKLMNOPQRST not supported");
		CHECK(c.cmd("AUTH CRAM-MD5!").plain() == "501 5.5.2 bad syntax: expected end of line");
		CHECK(c.cmd("AUTH PLAIN!").plain() == "501 5.5.2 bad syntax: expected \" \"");

		CHECK(c.cmd("AUTH PLAIN =").plain() == "501 5.5.4 auth data should have 3 nul-separated tokens, got 1");
		CHECK(c.cmd("AUTH PLAIN " + base64(std::string("only\0two", 8))).plain() ==
		      "501 5.5.4 auth data should have 3 nul-separated tokens, got 2");
		CHECK(c.cmd("AUTH PLAIN ").plain() == "501 5.5.2 missing initial auth base64 parameter after space");

		r = c.cmd("AUTH PLAIN " + plain_response(alice, "wrong password"));
		CHECK(r.plain() == "535 5.7.8 bad user/pass");
		CHECK(r.has_id());
		CHECK(c.cmd("AUTH PLAIN " + plain_response("nobody@test.example", alice_password)).plain() ==
		      "535 5.7.8 bad user/pass");
		// An account without a password cannot log in with anything.
		CHECK(c.cmd("AUTH PLAIN " + plain_response("carol@test.example", "")).plain() ==
		      "535 5.7.8 bad user/pass");
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password, "carol@test.example")).plain() ==
		      "535 5.7.8 cannot assume other role");

		CHECK(c.cmd("AUTH FOO").plain() == "504 5.5.4 mechanism FOO not supported");
		CHECK(c.cmd("AUTH XOAUTH2 " + base64("x")).plain() == "504 5.5.4 mechanism XOAUTH2 not supported");

		// SCRAM without stored secrets (carol) or for an unknown user.
		CHECK(c.cmd("AUTH SCRAM-SHA-256 " + scram_client_first("carol@test.example")).plain() ==
		      "454 4.3.0 scram not possible");
		CHECK(c.cmd("AUTH SCRAM-SHA-1 " + scram_client_first("nobody@test.example")).plain() ==
		      "454 4.3.0 scram not possible");

		// Nothing above logged in: MAIL still needs authentication.
		r = c.cmd("MAIL FROM:<alice@test.example>");
		CHECK(r.plain() == "530 5.7.0 authentication required");
		CHECK(r.has_id());
	}
	SUBCASE("PLAIN succeeds; a second AUTH is refused; lower-case mechanism works") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		// doc/behaviour.md D4: mechanism names are case-insensitive.
		Reply r = c.cmd("auth plain " + plain_response(alice, alice_password, alice));
		CHECK(r.plain() == "235 2.7.0 nice");
		CHECK_FALSE(r.has_id());
		r = c.cmd("AUTH PLAIN " + plain_response(alice, alice_password));
		CHECK(r.plain() == "503 5.5.1 already authenticated");
		CHECK(r.has_id());
		// EHLO again does not log out (doc/behaviour.md §4 EHLO).
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password)).plain() ==
		      "503 5.5.1 already authenticated");
		CHECK(c.cmd("MAIL FROM:<alice@test.example>").plain() == "250 2.1.0 looking good");
	}
	SUBCASE("PLAIN with the response on its own line") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		REQUIRE(c.cmd("AUTH PLAIN").raw == "334 \r\n");
		CHECK(c.cmd(plain_response(alice, alice_password)).plain() == "235 2.7.0 nice");
	}
	SUBCASE("LOGIN by hand (doc/behaviour.md D15)") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		Reply r = c.cmd("AUTH LOGIN");
		REQUIRE(r.code == 334);
		r = c.cmd(base64(alice));
		REQUIRE(r.code == 334);
		CHECK(c.cmd(base64(alice_password)).plain() == "235 2.7.0 nice");
	}
	SUBCASE("LOGIN with a wrong password") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		REQUIRE(c.cmd("AUTH LOGIN " + base64(alice)).code == 334);
		CHECK(c.cmd(base64("nope")).plain() == "535 5.7.8 bad user/pass");
	}
	SUBCASE("CRAM-MD5 with a malformed response") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		Reply r = c.cmd("AUTH CRAM-MD5");
		REQUIRE(r.code == 334);
		CHECK(c.cmd(base64("alice@test.example short")).plain() == "501 5.5.4 malformed cram-md5 response");
	}
	SUBCASE("CRAM-MD5 for an account without secrets") {
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		REQUIRE(c.cmd("AUTH CRAM-MD5").code == 334);
		CHECK(c.cmd(base64("carol@test.example 0123456789abcdef0123456789abcdef")).plain() ==
		      "535 5.7.8 bad user/pass");
	}
}

TEST_CASE("auth: on the delivery port AUTH is neither offered nor accepted") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(c.read_reply().code == 220);
	Reply ehlo = c.cmd("EHLO client.sender.example");
	CHECK_FALSE(has_line_starting(ehlo.lines, "250-AUTH"));
	Reply r = c.cmd("AUTH PLAIN " + plain_response(alice, alice_password));
	CHECK(r.plain() == "503 5.5.1 authentication only allowed on submission ports");
	CHECK(r.has_id());
	// Also not after STARTTLS.
	ScriptResult s = run_smtp_script(
	    TlsMode::starttls, d.smtp_port(), cert.cert_file(),
	    {"EHLO client.sender.example", "AUTH PLAIN " + plain_response(alice, alice_password)});
	INFO(s.run.output);
	REQUIRE(s.replies.size() == 5);
	CHECK_FALSE(has_line_starting(s.reply_to(0).lines, "250-AUTH"));
	CHECK(s.reply_to(1).plain() == "503 5.5.1 authentication only allowed on submission ports");
}

TEST_CASE("auth: with require_starttls (the default) nothing authenticates in the clear") {
	TestCert cert;
	TernDaemon d(daemon_options(true, true, cert.config_patch(), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.read_reply().code == 220);
	Reply ehlo = c.cmd("EHLO client.sender.example");
	REQUIRE(ehlo.code == 250);
	// doc/behaviour.md D6: no AUTH line until it can be used.
	CHECK_FALSE(has_line_starting(ehlo.lines, "250-AUTH"));
	CHECK(has_line(ehlo.lines, "250-STARTTLS"));
	// doc/behaviour.md D5: every known mechanism is refused before TLS, even with a
	// good password; an unknown one is still "not supported". The rule comes
	// before whatever follows the name ("plain!"), as in the model.
	for (const std::string mech :
	     {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "plain!", "Cram-Md5"}) {
		CAPTURE(mech);
		Reply r = c.cmd("AUTH " + mech);
		CHECK(r.plain() == "538 5.7.11 authentication requires tls");
		CHECK(r.has_id());
	}
	CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password)).plain() ==
	      "538 5.7.11 authentication requires tls");
	CHECK(c.cmd("AUTH X-UNKNOWN").plain() == "504 5.5.4 mechanism X-UNKNOWN not supported");
	CHECK(c.cmd("MAIL FROM:<alice@test.example>").plain() == "530 5.7.0 authentication required");

	// After STARTTLS the mechanisms are offered and work.
	ScriptResult s = run_smtp_script(TlsMode::starttls, d.submission_port(), cert.cert_file(),
	                                 {"EHLO client.sender.example",
	                                  "AUTH PLAIN " + plain_response(alice, alice_password),
	                                  "MAIL FROM:<alice@test.example>"});
	INFO(s.run.output);
	REQUIRE(s.replies.size() == 6);
	CHECK(has_line(s.reply_to(0).lines, "250-AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"));
	CHECK(s.reply_to(1).last() == "235 2.7.0 nice");
	CHECK(s.reply_to(2).last() == "250 2.1.0 looking good");
}

TEST_CASE("auth: Python smtplib logs in with PLAIN, LOGIN and CRAM-MD5 over STARTTLS and implicit TLS") {
	TestCert cert;
	TernDaemon d(daemon_options(true, true, cert.config_patch(), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	for (const std::string mech : {"PLAIN", "LOGIN", "CRAM-MD5"}) {
		for (TlsMode mode : {TlsMode::starttls, TlsMode::implicit}) {
			SmtplibLogin login;
			login.mode = mode;
			login.port = mode == TlsMode::implicit ? d.submissions_port() : d.submission_port();
			login.ca_file = cert.cert_file();
			login.user = alice;
			login.password = alice_password;
			login.mechanism = mech;
			CAPTURE(mech);
			CAPTURE(login.port);
			RunResult r = run_smtplib(login);
			INFO(r.output);
			CHECK(r.exit_code == 0);
			if (mode == TlsMode::starttls) CHECK(output_line(r.output, "STARTTLS ") == "220");
			CHECK(starts_with(output_line(r.output, "CIPHER "), "TLSv1.2 ECDHE-"));
			CHECK(output_line(r.output, "EHLO-AUTH ") == "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN");
			CHECK(output_line(r.output, "AUTH ") == "235 2.7.0 nice");

			// The same client with a wrong password.
			login.password = "wrong";
			RunResult bad = run_smtplib(login);
			INFO(bad.output);
			CHECK(starts_with(output_line(bad.output, "AUTH "), "535 5.7.8 bad user/pass ("));
		}
	}
}

TEST_CASE("auth: gsasl logs in with SCRAM-SHA-1 and SCRAM-SHA-256 over STARTTLS and implicit TLS") {
	TestCert cert;
	TernDaemon d(daemon_options(true, true, cert.config_patch(), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	for (const std::string mech : {"SCRAM-SHA-1", "SCRAM-SHA-256"}) {
		CAPTURE(mech);
		{
			RunResult r = run_gsasl_starttls(d.submission_port(), alice, alice_password, mech,
			                                 cert.cert_file());
			INFO(r.output);
			CHECK_FALSE(r.timed_out);
			CHECK(contains(r.output, "235 2.7.0 nice"));
			RunResult bad = run_gsasl_starttls(d.submission_port(), alice, "wrong", mech, cert.cert_file());
			INFO(bad.output);
			// The server says e=invalid-proof; gsasl then gives up (it sends no "*").
			CHECK(contains(bad.output, "334 ZT1pbnZhbGlkLXByb29m"));
			CHECK_FALSE(contains(bad.output, "235 "));
			CHECK(bad.exit_code != 0);
		}
		{
			RunResult r = run_gsasl_implicit(d.submissions_port(), alice, alice_password, mech,
			                                 cert.cert_file());
			INFO(r.output);
			CHECK(output_line(r.output, "RESULT ") == "235 2.7.0 nice");
			// The server-final message carries the server signature: base64 of
			// "v=..." starts "dj0" or "dj1" (the third character depends on the
			// signature's first byte).
			CHECK((contains(r.output, "S: 334 dj0") || contains(r.output, "S: 334 dj1")));
			RunResult bad = run_gsasl_implicit(d.submissions_port(), alice, "wrong", mech,
			                                   cert.cert_file());
			INFO(bad.output);
			CHECK(starts_with(output_line(bad.output, "RESULT "), "535 5.7.8 bad credentials ("));
			// base64("e=invalid-proof")
			CHECK(contains(bad.output, "S: 334 ZT1pbnZhbGlkLXByb29m"));
		}
	}
}

TEST_CASE("auth: ternctl passwd while ternd runs takes effect at the next login") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	start_with_password(d);
	REQUIRE_RUNNING(d);
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", "the new one", &out), out);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo());
	CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password)).plain() == "535 5.7.8 bad user/pass");
	CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, "the new one")).plain() == "235 2.7.0 nice");
	RunResult r = run_gsasl_starttls(d.submission_port(), alice, "the new one", "SCRAM-SHA-256", cert.cert_file());
	INFO(r.output);
	CHECK(contains(r.output, "235 2.7.0 nice"));
}

TEST_CASE("auth: the failed-auth limiter refuses new submission connections with 421 4.7.0") {
	TestCert cert;
	TernDaemon d(daemon_options(
	    true, true,
	    cert.config_patch(merge_patches(open_submission, R"({"limits": {"auth_failures_per_min": [3, 30, 90]}})")),
	    false));
	start_with_password(d);
	REQUIRE_RUNNING(d);

	auto fail_once = [&](int port) {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", port));
		REQUIRE(c.greet_and_ehlo());
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, "guess")).plain() == "535 5.7.8 bad user/pass");
	};
	// Two failures (each on its own connection): still under the limit.
	fail_once(d.submission_port());
	fail_once(d.submission_port());
	{
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", d.submission_port()));
		Reply greeting = c.read_reply();
		CHECK(starts_with(greeting.plain(), "220 mx.test.example "));
		// An aborted exchange counts as a failure too (doc/behaviour.md §4 AUTH).
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		REQUIRE(c.cmd("AUTH PLAIN").code == 334);
		CHECK(c.cmd("*").plain() == "501 5.5.0 authentication aborted");
	}
	// Three failures: the limit is reached; the next submission connection
	// gets 421 instead of the greeting, and is closed.
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	Reply r = c.read_reply();
	CHECK(r.plain() == "421 4.7.0 too many auth failures");
	CHECK(c.expect_closed());
	// The delivery port is not affected.
	SmtpClient delivery;
	REQUIRE(delivery.connect("127.0.0.1", d.smtp_port()));
	CHECK(delivery.read_reply().code == 220);
	// Implicit TLS submission is refused the same way (inside TLS: the port speaks
	// TLS from the first byte, RFC 8314 3.3).
	ScriptResult s = run_smtp_script(TlsMode::implicit, d.submissions_port(), cert.cert_file(), {});
	INFO(s.run.output);
	CHECK(s.error.empty());
	CHECK(s.replies.size() == 1);
	CHECK((!s.replies.empty() && s.replies[0].last() == "421 4.7.0 too many auth failures"));
}
