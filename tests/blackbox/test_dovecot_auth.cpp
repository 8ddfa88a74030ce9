// One password with Dovecot, both ways: SMTP AUTH checked by a private
// Dovecot's auth-client socket (the "dovecot" auth backend), and Dovecot's
// checkpassword passdb calling `ternctl checkpassword` against tern's own
// database. Dovecot from Debian, started privately on loopback.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "bb.h"
#include "helpers/dovecot.h"
#include "helpers/tls_tools.h"

namespace {

const std::string alice = "alice@test.example";
// Only Dovecot knows this one: tern's database holds no password for alice.
// (Dovecot splits its static passdb arguments at spaces.)
const std::string dovecot_password = "dovecot-only-5-secret";

bool dovecot_usable() {
	if (geteuid() != 0 || !DovecotServer::available()) {
		MESSAGE("skipped: needs root and Debian's dovecot-core (contrib/debian-packages.txt)");
		return false;
	}
	return true;
}

// The submission listener open in the clear (tern's own TLS rule is
// tested elsewhere), authenticating against `socket`.
std::string dovecot_backend(const std::string& socket, int timeout_ms = 15000) {
	return R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
	           "auth": {"backend": "dovecot", "dovecot_socket": ")" +
	    socket + R"(", "dovecot_timeout_ms": )" + std::to_string(timeout_ms) + "}}";
}

std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
	std::vector<std::string> out;
	size_t start = 0;
	while (start < text.size()) {
		size_t end = text.find('\n', start);
		if (end == std::string::npos) end = text.size();
		std::string line = text.substr(start, end - start);
		if (contains(line, needle)) out.push_back(line);
		start = end + 1;
	}
	return out;
}

// Polls the daemon's log ≤ timeout_ms for a line holding every part.
std::string wait_for_log(const TernDaemon& d, const std::vector<std::string>& parts, int timeout_ms = 10000) {
	for (int waited = 0; waited <= timeout_ms; waited += 100) {
		for (const auto& line : lines_with(d.log_text(), parts[0])) {
			bool all = true;
			for (const auto& p : parts) all = all && contains(line, p);
			if (all) return line;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	return "";
}

// A file of contrib/dovecot/ with each `from` replaced by its `to`: the
// snippets the documentation gives, with this test's paths and users.
std::string contrib_snippet(const std::string& name, const std::vector<std::pair<std::string, std::string>>& edits) {
	std::string text = read_file(repo_root() + "/contrib/dovecot/" + name);
	REQUIRE_MESSAGE(!text.empty(), name);
	for (const auto& [from, to] : edits) {
		size_t at = text.find(from);
		REQUIRE_MESSAGE(at != std::string::npos, name << " lacks " << from);
		for (; at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
	}
	return text;
}

SmtpClient submission_client(TernDaemon& d) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.read_reply().code == 220);
	return c;
}

}  // namespace

TEST_CASE("dovecot auth backend: SMTP AUTH with a Dovecot-only password") {
	if (!dovecot_usable()) return;
	TestCert cert;
	TempDir maildir_root("tern-dovecot-mail-");
	DovecotServer dovecot(maildir_root.path(), "alice", dovecot_password);
	dovecot.set_auth_mechanisms("plain login scram-sha-1 scram-sha-256");
	// The listener contrib/dovecot/auth-socket.conf adds, for ternd's user
	// (root here).
	dovecot.add_config(
	    contrib_snippet("auth-socket.conf", {{"user = tern", "user = root"}, {"group = tern", "group = root"}}));
	REQUIRE_MESSAGE(dovecot.start(), dovecot.error());
	TernDaemon d(daemon_options(true, false, cert.config_patch(dovecot_backend(dovecot.run_dir() + "/tern-auth"))));
	REQUIRE_RUNNING(d);

	SUBCASE("EHLO offers what Dovecot offers among the relayed mechanisms") {
		// Even the first EHLO, which may come before Dovecot has answered
		// the question ternd asks at start.
		SmtpClient c = submission_client(d);
		Reply ehlo = c.cmd("EHLO client.sender.example");
		bool found = false;
		for (const auto& l : ehlo.lines) found = found || l == "250-AUTH SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN";
		CHECK_MESSAGE(found, ehlo.raw);
	}
	SUBCASE("PLAIN with smtplib: the right password logs in and sends as alice, a wrong one is 535 and logged") {
		SmtplibLogin login;
		login.mode = TlsMode::starttls;
		login.port = d.submission_port();
		login.ca_file = cert.cert_file();
		login.user = alice;
		login.password = dovecot_password;
		login.mechanism = "PLAIN";
		login.mail_from = alice;
		login.rcpt_to = "bob@remote.example";
		login.message =
		    "From: <alice@test.example>\r\nTo: <bob@remote.example>\r\nSubject: hi\r\n\r\nHello.\r\n";
		RunResult r = run_smtplib(login);
		INFO(r.output << "\n" << dovecot.log_text());
		CHECK(output_line(r.output, "AUTH ") == "235 2.7.0 nice");
		CHECK(output_line(r.output, "SENT ") == "ok");

		login.password = "wrong";
		login.mail_from.clear();
		RunResult bad = run_smtplib(login);
		INFO(bad.output);
		CHECK(starts_with(output_line(bad.output, "AUTH "), "535 5.7.8 bad user/pass ("));
		std::string line = wait_for_log(
		    d, {"msg=\"authentication failed\"", "mechanism=PLAIN", "username=" + alice});
		CHECK_MESSAGE(!line.empty(), log_tail(d));
		CHECK(contains(line, "remote=127.0.0.1"));
		CHECK_FALSE(contains(line, "wrong"));
	}
	SUBCASE("SCRAM-SHA-256 with gsasl, relayed step by step") {
		RunResult r = run_gsasl_starttls(d.submission_port(), alice, dovecot_password, "SCRAM-SHA-256",
		                                 cert.cert_file());
		INFO(r.output << "\n" << log_tail(d));
		CHECK_FALSE(r.timed_out);
		CHECK(contains(r.output, "235 2.7.0 nice"));
		RunResult bad = run_gsasl_starttls(d.submission_port(), alice, "wrong", "SCRAM-SHA-256",
		                                   cert.cert_file());
		INFO(bad.output);
		CHECK_FALSE(contains(bad.output, "235 "));
		CHECK(contains(bad.output, "535 5.7.8 bad credentials"));
		CHECK(wait_for_log(
			  d, {"msg=\"authentication failed\"", "mechanism=SCRAM-SHA-256", "username=" + alice}) != "");
	}
	SUBCASE("LOGIN over the exchange, then a Dovecot user without a tern account may send as nobody") {
		SmtpClient c = submission_client(d);
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		CHECK(c.cmd("AUTH LOGIN").raw == "334 " + base64("Username:") + "\r\n");
		CHECK(c.cmd(base64(alice)).raw == "334 " + base64("Password:") + "\r\n");
		CHECK(c.cmd(base64(dovecot_password)).plain() == "235 2.7.0 nice");
		CHECK(c.cmd("MAIL FROM:<alice@test.example>").code == 250);
		c.close();

		// Dovecot's static passdb takes any user name: zed is not a tern account.
		SmtpClient z = submission_client(d);
		REQUIRE(z.cmd("EHLO client.sender.example").code == 250);
		CHECK(z.cmd("AUTH PLAIN " + plain_response("zed@elsewhere.example", dovecot_password)).plain() ==
		      "235 2.7.0 nice");
		CHECK(z.cmd("MAIL FROM:<alice@test.example>").plain() == "550 5.7.1 must match authenticated user");
		CHECK(z.cmd("MAIL FROM:<zed@elsewhere.example>").plain() == "550 5.7.1 must match authenticated user");
		CHECK(z.cmd("MAIL FROM:<>").plain() == "550 5.7.1 must match authenticated user");
	}
	SUBCASE("a mechanism Dovecot has but tern does not relay, and an abort") {
		SmtpClient c = submission_client(d);
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		CHECK(c.cmd("AUTH CRAM-MD5").plain() == "504 5.5.4 mechanism CRAM-MD5 not supported");
		CHECK(c.cmd("AUTH PLAIN").raw == "334 \r\n");
		CHECK(c.cmd("*").plain() == "501 5.5.0 authentication aborted");
		CHECK(c.cmd("NOOP").code == 250);
	}
	SUBCASE("Dovecot stopped: 454 4.7.0, never 535, and the client may try again") {
		dovecot.stop();
		SmtpClient c = submission_client(d);
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, dovecot_password)).plain() ==
		      "454 4.7.0 temporary server error");
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, "wrong")).plain() ==
		      "454 4.7.0 temporary server error");
		CHECK(wait_for_log(d, {"dovecot authentication unavailable"}) != "");
		CHECK(lines_with(d.log_text(), "msg=\"authentication failed\"").empty());
	}
}

TEST_CASE("dovecot auth backend: a socket that never answers is 454 after the deadline") {
	// Not Dovecot at all: a listener nobody accepts on; the connect succeeds
	// (the backlog) and no byte ever comes back.
	std::string dir = make_temp_dir("tern-silent-auth-");
	std::string path = dir + "/auth-client";
	int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
	REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
	REQUIRE(::listen(fd, 16) == 0);
	{
		TernDaemon d(daemon_options(true, false, dovecot_backend(path, 700)));
		REQUIRE_RUNNING(d);
		SmtpClient c = submission_client(d);
		Reply ehlo = c.cmd("EHLO client.sender.example");
		bool plain_only = false;
		for (const auto& l : ehlo.lines) plain_only = plain_only || l == "250-AUTH PLAIN";
		CHECK_MESSAGE(plain_only, ehlo.raw);
		auto t0 = std::chrono::steady_clock::now();
		CHECK(c.cmd("AUTH PLAIN " + plain_response(alice, "whatever")).plain() ==
		      "454 4.7.0 temporary server error");
		auto waited = std::chrono::steady_clock::now() - t0;
		CHECK(waited >= std::chrono::milliseconds(600));
		CHECK(waited < std::chrono::seconds(5));
		CHECK(wait_for_log(d, {"dovecot authentication unavailable", "no answer from Dovecot within 700 ms"}) !=
		      "");
		CHECK(c.cmd("NOOP").code == 250);
	}
	::close(fd);
	remove_tree(dir);
}

TEST_CASE("ternctl checkpassword: Dovecot's checkpassword passdb logs IMAP users in with tern's password") {
	if (!dovecot_usable()) return;
	// Mail belongs to the unprivileged user Dovecot runs mail as.
	TernDaemon d({.config_patch = R"({"user": "nobody"})", .start = false});
	d.write_config();
	std::string maildir = d.maildir("alice");
	chown_tree_to_nobody(d.dir());
	REQUIRE_MESSAGE(d.start(), d.error());
	// While ternd runs, the password goes into its database through it.
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", "tern imap 9 password", &out), out);

	// One message delivered by tern, to be read over IMAP.
	SmtpClient smtp = connect_and_ehlo(d);
	REQUIRE(send_mail(smtp, test_sender, {alice}, make_message("for imap", "Hello.\r\n")).reply.code == 250);
	REQUIRE(wait_for_maildir(maildir, 1).size() == 1);

	// contrib/dovecot/checkpassword.conf with this test's paths, and
	// nobody as the user ternd runs as.
	DovecotServer dovecot(maildir, "alice", "tern imap 9 password");
	dovecot.set_passdb(contrib_snippet("checkpassword.conf",
	                                   {{"/usr/local/sbin/ternctl", reachable_program("ternctl")},
	                                    {"/etc/tern/tern.json", d.config_path()},
	                                    {"uid=tern gid=tern", "uid=nobody gid=nogroup"},
	                                    {"/var/lib/tern", d.data_dir()},
	                                    {"user = tern", "user = nobody"}}));
	REQUIRE_MESSAGE(dovecot.start(), dovecot.error());
	// The snippet's userdb and mail_location find the Maildir tern delivers to.
	RunResult read = dovecot.imap("typ, data = imap.select('INBOX')\nprint('exists', data[0].decode())\n");
	INFO(read.output << "\n" << dovecot.log_text());
	CHECK(contains(read.output, "exists 1"));

	RunResult good = dovecot.imap_login(alice, "tern imap 9 password");
	INFO(good.output << "\n" << dovecot.log_text());
	CHECK(contains(good.output, "LOGIN OK"));
	// The account name works as a login too.
	CHECK(contains(dovecot.imap_login("alice", "tern imap 9 password").output, "LOGIN OK"));
	RunResult bad = dovecot.imap_login(alice, "wrong");
	INFO(bad.output);
	CHECK(contains(bad.output, "LOGIN NO"));
	CHECK(contains(dovecot.imap_login("nobody@test.example", "tern imap 9 password").output, "LOGIN NO"));
	// ternd answered (its control socket), the database stayed its own.
	CHECK(wait_for_log(d, {"msg=\"control request\"", "command=checkpassword"}) != "");
}

TEST_CASE("ternctl checkpassword: the interface, through ternd and without it") {
	TernDaemon d({.config_patch = "", .start = false});
	d.write_config();
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", "pässword", &out), out);
	std::string ternctl = repo_root() + "/src/ternctl";
	std::string dir = make_temp_dir("tern-checkpw-");
	// fd 3 from a file, as the checkpassword caller's pipe; the program run
	// on success prints what it was given.
	auto run = [&](const std::string& input, const std::string& env = "") {
		write_file(dir + "/in", input);
		return run_command(
		    {"/bin/sh", "-c",
		     env +
		         " \"$0\" -c \"$1\" checkpassword /bin/sh -c 'echo RAN USER=$USER HOME=$HOME AUTHORIZED=$AUTHORIZED' 3<\"$2\"",
		     ternctl, d.config_path(), dir + "/in"});
	};
	for (bool running : {false, true}) {
		CAPTURE(running);
		if (running) REQUIRE_MESSAGE(d.start(), d.error());
		RunResult ok = run(std::string("alice@test.example\0pässword\0\0", 30));
		CHECK(ok.exit_code == 0);
		CHECK(contains(ok.output, "RAN USER=alice HOME=" + d.data_dir() + "/accounts/alice"));
		// The account name works as the login too.
		CHECK(run(std::string("alice\0pässword\0\0", 17)).exit_code == 0);
		RunResult wrong = run(std::string("alice\0wrong\0\0", 13));
		CHECK(wrong.exit_code == 1);
		CHECK_FALSE(contains(wrong.output, "RAN"));
		CHECK(run(std::string("nobody@test.example\0pässword\0\0", 31)).exit_code == 1);
		CHECK(run("no separators").exit_code == 2);
		// Dovecot's userdb lookup: no password, AUTHORIZED=1.
		RunResult lookup = run(std::string("alice\0\0\0", 8), "AUTHORIZED=1");
		CHECK(contains(lookup.output, "RAN USER=alice"));
		CHECK(contains(lookup.output, "AUTHORIZED=2"));
		CHECK(run(std::string("zed\0\0\0", 6), "AUTHORIZED=1").exit_code == 3);
	}
	// A config that does not load: a temporary failure for the caller.
	write_file(dir + "/broken.json", "{");
	RunResult broken = run_command({"/bin/sh", "-c",
	                                "printf 'alice\\0x\\0\\0' | \"$0\" -c \"$1\" checkpassword true 3<&0", ternctl,
	                                dir + "/broken.json"});
	CHECK(broken.exit_code == 111);
	remove_tree(dir);
}
