// The failed-AUTH log line and contrib/fail2ban: ternd, logging to a file,
// sees a few failed logins of every kind (wrong password, unknown user,
// malformed response, aborted exchange, unknown mechanism, hang-up) and one good
// login; each failure is logged exactly once with remote, mechanism and the
// username as sent, and `fail2ban-regex` with our filter matches exactly the
// failures (fail2ban-regex runs on its own; no fail2ban server is needed).
#include "bb.h"

#include <unistd.h>

#include "helpers/tls_tools.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "fail2ban test 7";

std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
	std::vector<std::string> out;
	size_t start = 0;
	while (start < text.size()) {
		size_t end = text.find('\n', start);
		std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
		if (contains(line, needle)) out.push_back(line);
		if (end == std::string::npos) break;
		start = end + 1;
	}
	return out;
}

SmtpClient connected(TernDaemon& d) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo("client.test.example"));
	return c;
}

}  // namespace

TEST_CASE("fail2ban: one log line per failed AUTH, and the contrib filter matches exactly those") {
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	TernDaemon d(o);
	// ternd -f (as the tests run it) writes its log lines to stderr, which
	// the harness sends to this file.
	const std::string log_file = d.log_path();
	d.write_config(
	    R"({"listeners": {"test": {"submission": {"require_starttls": false}}}, "log": {"level": "info"}})");
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());

	{  // wrong password
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, "wrong password")).code == 535);
	}
	{  // unknown user, with spaces in the name
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH LOGIN").code == 334);
		CHECK(c.cmd(base64("no such user")).code == 334);
		CHECK(c.cmd(base64("whatever")).code == 535);
	}
	{  // malformed PLAIN response (two tokens)
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH PLAIN " + base64(std::string("bob\0pw", 6))).code == 501);
	}
	{  // aborted LOGIN
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH LOGIN " + base64("carol@test.example")).code == 334);
		CHECK(c.cmd("*").code == 501);
	}
	{  // CRAM-MD5 with a wrong digest
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH CRAM-MD5").code == 334);
		CHECK(c.cmd(base64("bob@test.example 0123456789abcdef0123456789abcdef")).code == 535);
	}
	{  // SCRAM aborted after the server-first message
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH SCRAM-SHA-256 " + base64("n,,n=" + alice + ",r=clientnonce0123456789")).code == 334);
		CHECK(c.cmd("*").code == 501);
	}
	{  // a mechanism tern does not have
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH XOAUTH2 " + base64("token")).code == 504);
	}
	{  // hanging up in the middle of LOGIN
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH LOGIN").code == 334);
		CHECK(c.cmd(base64("dave@test.example")).code == 334);
	}
	const size_t failures = 8;
	{  // a good login, which must not match
		SmtpClient c = connected(d);
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password)).code == 235);
	}

	std::string text;
	for (int64_t deadline = now_ms() + 5000; now_ms() < deadline; usleep(50000)) {
		text = read_file(log_file);
		if (lines_with(text, "msg=\"authentication failed\"").size() >= failures &&
		    contains(text, "msg=authenticated"))
			break;
	}
	auto failed = lines_with(text, "msg=\"authentication failed\"");
	REQUIRE_MESSAGE(failed.size() == failures, text);
	CHECK(lines_with(text, "msg=authenticated").size() == 1);
	CHECK(contains(failed[0], "level=info"));
	CHECK(contains(failed[0], "remote=127.0.0.1 mechanism=PLAIN username=alice@test.example"));
	CHECK(contains(failed[1], "remote=127.0.0.1 mechanism=LOGIN username=\"no such user\""));
	CHECK(contains(failed[2], "remote=127.0.0.1 mechanism=PLAIN username=\"\" "));
	CHECK(contains(failed[3], "remote=127.0.0.1 mechanism=LOGIN username=carol@test.example"));
	CHECK(contains(failed[4], "remote=127.0.0.1 mechanism=CRAM-MD5 username=bob@test.example"));
	CHECK(contains(failed[5], "remote=127.0.0.1 mechanism=SCRAM-SHA-256 username=alice@test.example"));
	CHECK(contains(failed[6], "remote=127.0.0.1 mechanism=XOAUTH2 username=\"\" "));
	CHECK(contains(failed[7], "remote=127.0.0.1 mechanism=LOGIN username=dave@test.example code=closed"));
	// Never the secret.
	CHECK_FALSE(contains(text, "wrong password"));
	CHECK_FALSE(contains(text, alice_password));

	const std::string filter = repo_root() + "/contrib/fail2ban/filter.d/tern.conf";
	REQUIRE_MESSAGE(file_exists("/usr/bin/fail2ban-regex"), "fail2ban is in contrib/debian-packages.txt");
	RunResult r = run_command({"/usr/bin/fail2ban-regex", "-o", "ip", log_file, filter}, 60000);
	REQUIRE_MESSAGE(r.exit_code == 0, r.output);
	auto ips = lines_with(r.output, "127.0.0.1");
	CHECK_MESSAGE(ips.size() == failures, r.output);
	for (const auto& ip : ips) CHECK(ip == "127.0.0.1");
	r = run_command({"/usr/bin/fail2ban-regex", log_file, filter}, 60000);
	CHECK_MESSAGE(contains(r.output, std::to_string(failures) + " matched"), r.output);

	// The successful login (and everything else that is not a failure) does not match.
	std::string others;
	for (const auto& line : lines_with(text, "level="))
		if (!contains(line, "msg=\"authentication failed\"")) others += line + "\n";
	REQUIRE(contains(others, "msg=authenticated"));
	write_file(d.dir() + "/others.log", others);
	r = run_command({"/usr/bin/fail2ban-regex", d.dir() + "/others.log", filter}, 60000);
	CHECK_MESSAGE(contains(r.output, " 0 matched"), r.output);
}
