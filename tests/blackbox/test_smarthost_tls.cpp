// The smarthost with TLS and credentials (a VPS whose provider blocks port
// 25): queue.smarthost_tls "implicit"/"required" verify the certificate chain
// and host name against queue.smarthost_ca_file, queue.smarthost_auth logs in
// with SCRAM-SHA-256, PLAIN or LOGIN (RFC 4954), credentials never cross an
// unencrypted connection, and every failure leaves the message queued.
#include "bb.h"

#include <csignal>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/smtp_sink.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "smarthost test 7";
const std::string relay_user = "relay-user@isp.example";
const std::string relay_password = "relay pass, with = signs";

struct Smarthost {
	std::string tls = "implicit";
	std::string ca_file;  // "" = leave the default
	std::string password = relay_password;
	bool with_auth = true;
	int retry_base_s = 3600;  // no second attempt during a test
};

// ternd with alice on submission and the sink as smarthost "localhost:PORT"
// (the loopback DNS server says localhost is 127.0.0.1).
void start_daemon(TernDaemon& d, const SmtpSink& sink, const Smarthost& s) {
	d.dns().add("localhost", "A", "127.0.0.1");
	std::string queue = R"("smarthost": "localhost:)" + std::to_string(sink.port()) + R"(", "smarthost_tls": ")" +
	    s.tls + R"(", "retry_base_s": )" + std::to_string(s.retry_base_s);
	if (!s.ca_file.empty()) queue += R"(, "smarthost_ca_file": ")" + s.ca_file + "\"";
	if (s.with_auth) {
		write_file(d.dir() + "/relay.pw", s.password + "\n");
		REQUIRE(chmod((d.dir() + "/relay.pw").c_str(), 0600) == 0);
		queue += R"(, "smarthost_auth": {"username": ")" + relay_user + R"(", "password_file": "relay.pw"})";
	}
	d.write_config(R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
		"pid_file": ")" +
	               d.dir() + R"(/ternd.pid", "queue": {)" + queue + "}}");
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
}

DaemonOptions not_started() {
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	return o;
}

// alice submits one message to a remote recipient.
void submit_one(TernDaemon& d, const std::string& subject) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo("client.test.example"));
	REQUIRE(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password)).code == 235);
	Transaction t = send_mail(c, alice, {"carol@remote.example"},
	                          "From: <" + alice + ">\r\nTo: <carol@remote.example>\r\nSubject: " + subject +
	                              "\r\n\r\nhello\r\n");
	INFO(t.step << ": " << t.reply.raw);
	REQUIRE(t.step == "END");
	REQUIRE(t.reply.code == 250);
}

// Polls the daemon's log ≤ timeout_ms for a line holding every part.
std::string wait_for_log_line(const TernDaemon& d, const std::vector<std::string>& parts, int timeout_ms = 10000) {
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		std::string text = d.log_text();
		size_t start = 0;
		while (start < text.size()) {
			size_t end = text.find('\n', start);
			std::string line = text.substr(start,
			                               end == std::string::npos ? std::string::npos : end - start);
			bool all = true;
			for (const auto& p : parts) all = all && contains(line, p);
			if (all) return line;
			if (end == std::string::npos) break;
			start = end + 1;
		}
		if (now_ms() > deadline) return "";
		usleep(50000);
	}
}

// Records in the queue, from `ternctl queue list` (header line excluded).
int queued_records(const TernDaemon& d) {
	ProgramResult r = run_ternctl({"-c", d.config_path(), "queue", "list"});
	if (r.exit_code != 0) return -1;
	int lines = 0;
	for (char c : r.out) lines += c == '\n';
	return lines - 1;
}

// A daemon relaying through `sink` as `s` says delivers one message; returns
// what the sink received.
SinkMessage deliver_one(const SmtpSink& sink, const Smarthost& s, const std::string& subject) {
	TernDaemon d(not_started());
	start_daemon(d, sink, s);
	submit_one(d, subject);
	REQUIRE_MESSAGE(sink.wait_for_messages(1), d.log_text());
	return sink.messages().at(0);
}

SmtpSink::Options sink_options(const std::string& cert, const std::string& key, bool implicit,
                               const std::string& mechanisms = "SCRAM-SHA-256 PLAIN LOGIN") {
	SmtpSink::Options o;
	o.cert_file = cert;
	o.key_file = key;
	o.implicit_tls = implicit;
	o.auth_username = relay_user;
	o.auth_password = relay_password;
	o.auth_mechanisms = mechanisms;
	return o;
}

}  // namespace

TEST_CASE("smarthost: implicit TLS with a certificate from the configured CA and AUTH delivers") {
	TestCa ca;
	TestCa::Issued leaf = ca.issue("localhost");
	for (std::string mechanisms : {"SCRAM-SHA-256 PLAIN LOGIN", "PLAIN LOGIN", "LOGIN"}) {
		CAPTURE(mechanisms);
		SmtpSink sink(sink_options(leaf.cert_file, leaf.key_file, true, mechanisms));
		TernDaemon d(not_started());
		start_daemon(d, sink, Smarthost{"implicit", ca.ca_file()});
		submit_one(d, "via implicit TLS");
		REQUIRE_MESSAGE(sink.wait_for_messages(1), d.log_text());
		SinkMessage m = sink.messages().at(0);
		CHECK(m.tls);
		CHECK(m.auth_user == relay_user);
		// Our preference: SCRAM-SHA-256, then PLAIN, then LOGIN.
		CHECK(m.auth_mechanism == mechanisms.substr(0, mechanisms.find(' ')));
		CHECK(contains(m.data, "Subject: via implicit TLS"));
		auto attempts = sink.auth_attempts();
		REQUIRE(attempts.size() == 1);
		CHECK(attempts[0].ok);
		// The password never reaches the log, not even at debug level.
		CHECK_FALSE(contains(d.log_text(), relay_password));
		CHECK(wait_for_log_line(d, {"msg=delivered", "host=localhost"}) != "");
	}
}

TEST_CASE("smarthost: STARTTLS under \"required\" verifies against the CA and logs in") {
	TestCa ca;
	TestCa::Issued leaf = ca.issue("localhost");
	SmtpSink sink(sink_options(leaf.cert_file, leaf.key_file, false));
	SinkMessage m = deliver_one(sink, Smarthost{"required", ca.ca_file()}, "via STARTTLS");
	CHECK(m.tls);
	CHECK(m.auth_user == relay_user);
	CHECK(m.auth_mechanism == "SCRAM-SHA-256");
}

TEST_CASE("smarthost: a wrong password delivers nothing and keeps the message queued") {
	TestCa ca;
	TestCa::Issued leaf = ca.issue("localhost");
	SmtpSink sink(sink_options(leaf.cert_file, leaf.key_file, true, "PLAIN"));
	TernDaemon d(not_started());
	Smarthost s{"implicit", ca.ca_file()};
	s.password = "not the relay password";
	start_daemon(d, sink, s);
	submit_one(d, "wrong password");
	std::string line = wait_for_log_line(
	    d, {"msg=\"smarthost authentication failed\"", "host=localhost", "mechanism=PLAIN"});
	CHECK_MESSAGE(line != "", d.log_text());
	CHECK(contains(line, "535"));
	auto attempts = sink.auth_attempts();
	REQUIRE(attempts.size() == 1);
	CHECK_FALSE(attempts[0].ok);
	CHECK(attempts[0].username == relay_user);
	CHECK(sink.messages().empty());
	CHECK(sink.data_received() == 0);
	CHECK(queued_records(d) == 1);  // deferred, as Postfix does; no bounce
	CHECK_FALSE(contains(d.log_text(), "not the relay password"));
	CHECK(maildir_files(d.maildir(), "new").empty());  // no DSN to alice

	// Fixing the password file and reloading is enough: the kept message
	// goes out with the next attempt.
	write_file(d.dir() + "/relay.pw", relay_password + "\n");
	REQUIRE(chmod((d.dir() + "/relay.pw").c_str(), 0600) == 0);
	REQUIRE(d.signal(SIGHUP));
	for (int64_t deadline = now_ms() + 15000; sink.messages().empty() && now_ms() < deadline;) {
		run_ternctl({"-c", d.config_path(), "queue", "kick"});
		sink.wait_for_messages(1, 1000);
	}
	REQUIRE_MESSAGE(sink.messages().size() == 1, d.log_text());
	CHECK(sink.messages().at(0).auth_user == relay_user);
	CHECK(contains(sink.messages().at(0).data, "Subject: wrong password"));
	CHECK_FALSE(contains(d.log_text(), relay_password));
}

TEST_CASE("smarthost: a server that cannot prove the SCRAM password gets no message") {
	TestCa ca;
	TestCa::Issued leaf = ca.issue("localhost");
	SmtpSink::Options o = sink_options(leaf.cert_file, leaf.key_file, true, "SCRAM-SHA-256");
	o.scram_wrong_server_signature = true;
	SmtpSink sink(o);
	TernDaemon d(not_started());
	start_daemon(d, sink, Smarthost{"implicit", ca.ca_file()});
	submit_one(d, "impostor");
	std::string line = wait_for_log_line(d, {"msg=\"smarthost authentication failed\"", "mechanism=SCRAM-SHA-256"});
	CHECK_MESSAGE(contains(line, "wrong SCRAM server signature"), d.log_text());
	auto attempts = sink.auth_attempts();
	REQUIRE(attempts.size() == 1);
	CHECK(attempts[0].reply == "501 5.0.0 authentication aborted");  // we sent "*"
	CHECK(sink.messages().empty());
	CHECK(queued_records(d) == 1);
}

TEST_CASE("smarthost: an untrusted (self-signed) certificate gets nothing under required and implicit") {
	TestCa ca;  // the configured CA, which did not sign the sink's certificate
	TestCert self_signed("localhost");
	for (bool implicit : {true, false}) {
		CAPTURE(implicit);
		SmtpSink sink(sink_options(self_signed.cert_file(), self_signed.key_file(), implicit));
		TernDaemon d(not_started());
		start_daemon(d, sink, Smarthost{implicit ? "implicit" : "required", ca.ca_file()});
		submit_one(d, "untrusted");
		std::string line = wait_for_log_line(d,
		                                     {"msg=\"smarthost certificate not trusted\"", "host=localhost"});
		CHECK_MESSAGE(line != "", d.log_text());
		CHECK(contains(line, "not correctly signed by the trusted CA"));
		CHECK(sink.auth_attempts().empty());  // no credentials for an unverified server
		CHECK(sink.messages().empty());
		CHECK(queued_records(d) == 1);
	}
}

TEST_CASE("smarthost: a server without STARTTLS under required gets QUIT and no message") {
	// RFC 5321 4.1.1.10: the session ends with QUIT, not a bare close.
	TestCa ca;
	SmtpSink::Options o;
	o.auth_username = relay_user;
	o.auth_password = relay_password;
	SmtpSink sink(o);  // no certificate: no STARTTLS offered
	TernDaemon d(not_started());
	start_daemon(d, sink, Smarthost{"required", ca.ca_file()});
	submit_one(d, "no starttls");
	std::string line = wait_for_log_line(d, {"does not offer STARTTLS, which is required"});
	CHECK_MESSAGE(line != "", d.log_text());
	for (int64_t until = now_ms() + 5000; sink.quits() == 0 && now_ms() < until;) usleep(10000);
	CHECK(sink.quits() == 1);
	CHECK(sink.auth_attempts().empty());
	CHECK(sink.messages().empty());
	CHECK(queued_records(d) == 1);
}

TEST_CASE("smarthost: a certificate for another host name is refused") {
	TestCa ca;
	TestCa::Issued other = ca.issue("other.test.example");
	SmtpSink sink(sink_options(other.cert_file, other.key_file, true));
	TernDaemon d(not_started());
	start_daemon(d, sink, Smarthost{"implicit", ca.ca_file()});
	submit_one(d, "wrong name");
	std::string line = wait_for_log_line(d, {"msg=\"smarthost certificate not trusted\"", "host=localhost"});
	CHECK_MESSAGE(line != "", d.log_text());
	CHECK(contains(line, "Common Name (CN) does not match"));
	CHECK(sink.auth_attempts().empty());
	CHECK(sink.messages().empty());
	CHECK(queued_records(d) == 1);
}

TEST_CASE("smarthost: an IP address as smarthost cannot be verified under required") {
	TestCa ca;
	TestCa::Issued leaf = ca.issue("localhost");  // carries IP:127.0.0.1 too
	SmtpSink sink(sink_options(leaf.cert_file, leaf.key_file, true));
	TernDaemon d(not_started());
	write_file(d.dir() + "/relay.pw", relay_password + "\n");
	REQUIRE(chmod((d.dir() + "/relay.pw").c_str(), 0600) == 0);
	d.write_config(R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
		"queue": {"smarthost": "127.0.0.1:)" +
	               std::to_string(sink.port()) + R"(", "smarthost_tls": "implicit",
		"smarthost_ca_file": ")" +
	               ca.ca_file() + R"(", "retry_base_s": 3600,
		"smarthost_auth": {"username": "u", "password_file": "relay.pw"}}})");
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
	submit_one(d, "by address");
	std::string line = wait_for_log_line(
	    d, {"msg=\"smarthost certificate not trusted\"", "cannot be matched to an IP address"});
	CHECK_MESSAGE(line != "", d.log_text());
	CHECK(sink.auth_attempts().empty());
	CHECK(sink.messages().empty());
}

TEST_CASE("smarthost: opportunistic still delivers to a server with an untrusted certificate") {
	TestCert self_signed("localhost");
	SmtpSink sink(sink_options(self_signed.cert_file(), self_signed.key_file(), false));
	SinkMessage m = deliver_one(sink, Smarthost{"opportunistic", ""}, "opportunistic");
	CHECK(m.tls);
	CHECK(m.auth_user == relay_user);
}

TEST_CASE("smarthost: credentials never go out in the clear unless smarthost_tls is none") {
	SmtpSink::Options plain_sink;
	plain_sink.auth_username = relay_user;
	plain_sink.auth_password = relay_password;
	SUBCASE("opportunistic, server without STARTTLS: refused, still queued") {
		SmtpSink sink(plain_sink);
		TernDaemon d(not_started());
		start_daemon(d, sink, Smarthost{"opportunistic", ""});
		submit_one(d, "no tls");
		std::string line = wait_for_log_line(d, {"not sending credentials", "host=localhost"});
		CHECK_MESSAGE(line != "", d.log_text());
		CHECK(sink.auth_attempts().empty());
		CHECK(sink.messages().empty());
		CHECK(queued_records(d) == 1);
	}
	SUBCASE("none: the operator asked for plain text") {
		SmtpSink sink(plain_sink);
		SinkMessage m = deliver_one(sink, Smarthost{"none", ""}, "plain on purpose");
		CHECK_FALSE(m.tls);
		CHECK(m.auth_user == relay_user);
	}
}

TEST_CASE("smarthost: a group-readable password file is refused at ternd -n") {
	TernDaemon d(not_started());
	write_file(d.dir() + "/relay.pw", relay_password + "\n");
	REQUIRE(chmod((d.dir() + "/relay.pw").c_str(), 0640) == 0);
	d.write_config(R"({"queue": {"smarthost": "relay.example:465", "smarthost_tls": "implicit",
		"smarthost_auth": {"username": "u", "password_file": "relay.pw"}}})");
	RunResult r = run_check_config(d.config_path());
	CHECK(r.exit_code != 0);
	CHECK_MESSAGE(contains(r.output,
	                       "error: " + d.config_path() + ": queue.smarthost_auth.password_file: " + d.dir() +
	                           "/relay.pw: readable by group or others (mode 0640)"),
	              r.output);
	CHECK_FALSE(contains(r.output, relay_password));
	REQUIRE(chmod((d.dir() + "/relay.pw").c_str(), 0600) == 0);
	r = run_check_config(d.config_path());
	CHECK_MESSAGE(r.exit_code == 0, r.output);
	CHECK_FALSE(contains(r.output, relay_password));
}
