// Set-up shared by the black-box tests that submit mail as an account and
// look at where it went: ternd with the submission port open to AUTH in
// plaintext, the account's password set before the start, and optionally
// an SMTP sink (helpers/smtp_sink.h) as smarthost. Header-only: its checks
// are doctest REQUIREs in the calling test.
#pragma once
#include <doctest/doctest.h>

#include <string>

#include "helpers/daemon.h"
#include "helpers/smtp_client.h"
#include "helpers/tls_tools.h"

namespace tern::testing {

// The submission port on; the test writes the config and starts ternd.
inline DaemonOptions submission_not_started() {
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	return o;
}

// Config patch: AUTH allowed without STARTTLS on submission, a pid file
// (ternctl signals ternd through it) and the "queue" members `queue`
// (JSON members without braces, may be empty).
inline std::string open_submission_patch(const TernDaemon& d, const std::string& queue) {
	return R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
		"pid_file": ")" +
	    d.dir() + R"(/ternd.pid", "queue": {)" + queue + "}}";
}

// The "queue" members that make `host`:`port` the smarthost, without TLS.
inline std::string plain_smarthost(const std::string& host, int port) {
	return R"("smarthost": ")" + host + ":" + std::to_string(port) + R"(", "smarthost_tls": "none")";
}

// Writes the config with `patch`, sets `account`'s password (before ternd
// runs, as ternctl would), then starts ternd.
inline void start_with_password(TernDaemon& d, const std::string& patch, const std::string& account,
                                const std::string& password) {
	d.write_config(patch);
	std::string out;
	REQUIRE_MESSAGE(set_password(d, account, password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
}

// Connected to the submission port, EHLO done, logged in with AUTH PLAIN;
// the 235 reply's text is returned for tests that check it.
inline SmtpClient login_submission(TernDaemon& d, const std::string& address, const std::string& password,
                                   std::string* reply_text = nullptr, const std::string& ehlo = "client.test.example") {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo(ehlo));
	Reply r = c.cmd("AUTH PLAIN " + plain_response(address, password));
	REQUIRE_MESSAGE(r.code == 235, r.raw);
	if (reply_text) *reply_text = r.plain();
	return c;
}

}  // namespace tern::testing
