// SASLprep (RFC 4013) end to end: `ternctl passwd` stores the secrets of
// the prepared password, so a client typing the same password in another
// Unicode form (a decomposed "é") logs in with PLAIN and with SCRAM-SHA-256
// (gsasl applies SASLprep on the client side, RFC 5802 2.2 Normalize()).
#include "bb.h"

#include "helpers/tls_tools.h"

namespace {

const std::string alice = "alice@test.example";
// U+00E9, and "e" followed by U+0301 COMBINING ACUTE ACCENT.
const std::string composed_password = "caf\xc3\xa9 au lait";
const std::string decomposed_password = "cafe\xcc\x81 au lait";

const char* const open_submission = R"({"listeners": {"test": {"submission": {"require_starttls": false}}}})";

std::string auth_plain(const TernDaemon& d, const std::string& user, const std::string& password) {
	SmtpClient c;
	if (!c.connect("127.0.0.1", d.submission_port()) || !c.greet_and_ehlo()) return "no connection";
	return c.cmd("AUTH PLAIN " + plain_response(user, password)).plain();
}

}  // namespace

TEST_CASE("saslprep: ternctl passwd with a composed e-acute, login with the decomposed one") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch(open_submission), false));
	d.write_config();
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", composed_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
	REQUIRE_RUNNING(d);

	CHECK(auth_plain(d, alice, decomposed_password) == "235 2.7.0 nice");
	CHECK(auth_plain(d, alice, composed_password) == "235 2.7.0 nice");
	// A soft hyphen is mapped to nothing (RFC 4013 2.2).
	CHECK(auth_plain(d, alice,
	                 "caf\xc3\xa9 au l\xc2\xad"
	                 "ait") == "235 2.7.0 nice");
	CHECK(auth_plain(d, alice, "cafe au lait") == "535 5.7.8 bad user/pass");
	// A prohibited character (RFC 4013 2.3) is a failed login, not an error.
	CHECK(auth_plain(d, alice, "caf\xc3\xa9 au lait\x07") == "535 5.7.8 bad user/pass");

	RunResult r = run_gsasl_starttls(d.submission_port(), alice, decomposed_password, "SCRAM-SHA-256",
	                                 cert.cert_file());
	INFO(r.output);
	CHECK_FALSE(r.timed_out);
	CHECK(contains(r.output, "235 2.7.0 nice"));
}

TEST_CASE("saslprep: ternctl passwd refuses a password SASLprep prohibits") {
	TernDaemon d(daemon_options(true, false, "", false));
	d.write_config();
	std::string out;
	// U+0007 BELL is a prohibited control character (RFC 4013 2.3).
	CHECK_FALSE(set_password(d, "alice",
	                         "bell\x07"
	                         "password",
	                         &out));
	CHECK(contains(out, "SASLprep"));
	// Right-to-left text that breaks the bidi rule (RFC 3454 6).
	CHECK_FALSE(set_password(d, "alice",
	                         "\xd8\xa7"
	                         "1",
	                         &out));
	CHECK(set_password(d, "alice", composed_password, &out));
}
