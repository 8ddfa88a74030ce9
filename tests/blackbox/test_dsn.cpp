// DSN (RFC 3461, 3464), REQUIRETLS (RFC 8689) and LIMITS (RFC 9422)
// through the running daemon: what EHLO offers where, the parameters'
// replies, and what the queue does with them — notices in alice's INBOX
// for local delivery and for the smarthost sink with and without DSN, the
// parameters passed on, REQUIRETLS refused without verified TLS. A next
// hop's RCPTMAX: tests/blackbox/test_queue.cpp (submitted copies each have
// their own Received "for", so only the Queue class in-process shares a
// transaction among recipients).
#include "bb.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "helpers/dir_entries.h"
#include "helpers/smtp_sink.h"
#include "helpers/submission_setup.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "dsn test 12";
const std::string carol = "carol@remote.example";
const std::string dave = "dave@remote.example";

// ternd with alice on submission (AUTH in plaintext allowed) and, when
// `sink_port` is set, the sink as smarthost "localhost:PORT"; `extra`
// is merged into the config.
void start_daemon(TernDaemon& d, int sink_port, const std::string& queue_extra = "", const std::string& extra = "") {
	d.dns().add("localhost", "A", "127.0.0.1");
	std::string queue = R"("retry_base_s": 3600)";
	if (sink_port) queue += ", " + plain_smarthost("localhost", sink_port);
	if (!queue_extra.empty()) queue += ", " + queue_extra;
	start_with_password(d, merge_patches(open_submission_patch(d, queue), extra), "alice", alice_password);
}

SmtpClient login_alice(TernDaemon& d) { return login_submission(d, alice, alice_password); }

std::string message_to(const std::string& to, const std::string& subject) {
	return "From: <" + alice + ">\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\nMessage-Id: <" + subject +
	    "@test.example>\r\n\r\nthe body of " + subject + "\r\n";
}

// MAIL with `mail_params`, one RCPT per (address, params), DATA; requires 250.
void submit(SmtpClient& c, const std::string& mail_params,
            const std::vector<std::pair<std::string, std::string>>& rcpts, const std::string& message) {
	Reply r = c.cmd("MAIL FROM:<" + alice + ">" + (mail_params.empty() ? "" : " " + mail_params));
	REQUIRE_MESSAGE(r.code == 250, r.raw);
	for (const auto& [to, params] : rcpts) {
		r = c.cmd("RCPT TO:<" + to + ">" + (params.empty() ? "" : " " + params));
		REQUIRE_MESSAGE(r.code == 250, r.raw);
	}
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(message + ".\r\n"));  // no line of the test messages starts with a dot
	r = c.read_reply();
	REQUIRE_MESSAGE(r.code == 250, r.raw);
}

// The files in alice's INBOX whose Subject holds `subject`.
std::vector<std::string> inbox_with_subject(TernDaemon& d, const std::string& subject) {
	std::vector<std::string> found;
	for (const auto& f : maildir_files(d.maildir("alice"))) {
		std::string text = read_file(f);
		size_t end = text.find("\r\n\r\n");
		if (contains(text.substr(0, end), "Subject: " + subject)) found.push_back(text);
	}
	return found;
}

// Waits ≤ timeout_ms for a notice with `subject` in alice's INBOX.
std::string wait_for_notice(TernDaemon& d, const std::string& subject, int timeout_ms = 15000) {
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		auto found = inbox_with_subject(d, subject);
		if (!found.empty()) return found.front();
		if (now_ms() > deadline) return "";
		usleep(50000);
	}
}

}  // namespace

TEST_CASE("dsn: EHLO offers DSN and LIMITS everywhere, REQUIRETLS only inside TLS") {
	TestCert cert;
	TernDaemon d(daemon_options(true, true, cert.config_patch()));
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	Reply ehlo = c.cmd("EHLO client.sender.example");
	CHECK(std::count(ehlo.lines.begin(), ehlo.lines.end(), "250-DSN") == 1);
	CHECK(std::count(ehlo.lines.begin(), ehlo.lines.end(), "250-LIMITS RCPTMAX=100 MAILMAX=1000") == 1);
	CHECK(std::count(ehlo.lines.begin(), ehlo.lines.end(), "250-REQUIRETLS") == 0);
	// RFC 8689: not on a plaintext session.
	CHECK(c.cmd("MAIL FROM:<bob@sender.example> REQUIRETLS").plain() ==
	      "530 5.7.10 REQUIRETLS only on a TLS-protected connection");
	CHECK(c.cmd("MAIL FROM:<bob@sender.example> RET=SOME").plain() == "501 5.5.4 invalid RET parameter \"SOME\"");
	CHECK(c.cmd("MAIL FROM:<bob@sender.example> ENVID=a ENVID=b").plain() == "501 5.5.4 duplicate param \"ENVID\"");
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example> RET=HDRS ENVID=x+2By").code == 250);
	CHECK(c.cmd("RCPT TO:<alice@test.example> NOTIFY=NEVER,DELAY").plain() ==
	      "501 5.5.4 invalid NOTIFY parameter \"NEVER,DELAY\"");
	CHECK(c.cmd("RCPT TO:<alice@test.example> ORCPT=rfc822;a ORCPT=rfc822;b").plain() ==
	      "501 5.5.4 duplicate param \"ORCPT\"");
	// CR LF in the decoded address would become a field of the notice.
	CHECK(c.cmd("RCPT TO:<alice@test.example> NOTIFY=SUCCESS ORCPT=rfc822;a+0D+0AX-Evil:+20yes").plain() ==
	      "501 5.5.4 invalid ORCPT parameter \"rfc822;a+0D+0AX-Evil:+20yes\"");
	CHECK(c.cmd("RCPT TO:<alice@test.example> NOTIFY=FAILURE ORCPT=rfc822;Alice+2Bx@test.example").code == 250);

	for (auto [mode, port] :
	     {std::pair{TlsMode::starttls, d.smtp_port()}, std::pair{TlsMode::implicit, d.submissions_port()}}) {
		ScriptResult s = run_smtp_script(
		    mode, port, cert.cert_file(),
		    {"EHLO client.sender.example", "MAIL FROM:<bob@sender.example> REQUIRETLS"});
		INFO(s.run.output);
		REQUIRE(s.error.empty());
		ScriptReply e = s.reply_to(0);
		CHECK(std::count(e.lines.begin(), e.lines.end(), "250-REQUIRETLS") == 1);
		CHECK(std::count(e.lines.begin(), e.lines.end(), "250-DSN") == 1);
		// Port 465 is submission: MAIL needs AUTH first.
		CHECK(s.reply_to(1).plain() ==
		      (mode == TlsMode::starttls ? "250 2.1.0 looking good" : "530 5.7.0 authentication required"));
	}
}

TEST_CASE("dsn: smtplib NOTIFY=SUCCESS with ENVID and ORCPT on local delivery gives a \"delivered\" notice") {
	TernDaemon d(submission_not_started());
	start_daemon(d, 0);
	static const char* script = R"PY(
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.test.example")
print("DSN", s.has_extn("dsn"))
s.login(sys.argv[2], sys.argv[3])
msg = "From: <%s>\r\nTo: <%s>\r\nSubject: local one\r\nMessage-Id: <local-1@test.example>\r\n\r\nhello\r\n" % (sys.argv[2], sys.argv[2])
refused = s.sendmail(sys.argv[2], [sys.argv[2]], msg, mail_options=["RET=HDRS", "ENVID=QQ+2B314"],
                     rcpt_options=["NOTIFY=SUCCESS,DELAY,FAILURE", "ORCPT=rfc822;Alias+2Bx@test.example"])
print("SENT", refused)
s.quit()
)PY";
	ProgramResult py = run_program(
	    {debian_python(), "-c", script, std::to_string(d.submission_port()), alice, alice_password}, "", 30000);
	INFO(py.both());
	CHECK(contains(py.out, "DSN True"));
	REQUIRE(contains(py.out, "SENT {}"));
	std::string notice = wait_for_notice(d, "mail delivered");
	INFO(log_tail(d));
	REQUIRE_FALSE(notice.empty());
	CHECK(contains(notice, "\r\nAuto-Submitted: auto-replied\r\n"));
	CHECK(contains(notice, "\r\nOriginal-Envelope-Id: QQ+314\r\n"));
	CHECK(contains(notice,
	               "\r\nOriginal-Recipient: rfc822;Alias+x@test.example\r\nFinal-Recipient: rfc822;" + alice +
	                   "\r\nAction: delivered\r\nStatus: 2.0.0\r\n"));
	CHECK(contains(notice, "Content-Type: text/rfc822-headers"));
	CHECK(contains(notice, "<local-1@test.example>"));
	// The message itself arrived too.
	CHECK(inbox_with_subject(d, "local one").size() == 1);
}

TEST_CASE("dsn: smarthost without DSN: SUCCESS gets \"relayed\"; with DSN the parameters travel and no notice comes") {
	SmtpSink plain_sink;
	SmtpSink::Options o;
	o.offer_dsn = true;
	SmtpSink dsn_sink(o);
	SUBCASE("next hop without DSN") {
		TernDaemon d(submission_not_started());
		start_daemon(d, plain_sink.port());
		SmtpClient c = login_alice(d);
		submit(c, "ENVID=env-1", {{carol, "NOTIFY=SUCCESS ORCPT=rfc822;carol+2Bold@remote.example"}},
		       message_to(carol, "relay1"));
		REQUIRE(plain_sink.wait_for_messages(1));
		SinkMessage m = plain_sink.messages()[0];
		CHECK_FALSE(contains(m.mail_params, "ENVID"));
		CHECK(m.rcpt_params == std::vector<std::string>{""});
		std::string notice = wait_for_notice(d, "mail relayed");
		INFO(log_tail(d));
		REQUIRE_FALSE(notice.empty());
		CHECK(contains(notice, "Original-Envelope-Id: env-1\r\n"));
		CHECK(contains(
		    notice,
		    "Original-Recipient: rfc822;carol+old@remote.example\r\nFinal-Recipient: rfc822;" + carol +
			"\r\nAction: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; localhost ([127.0.0.1])\r\n"));
		CHECK(contains(notice, "Auto-Submitted: auto-replied"));
	}
	SUBCASE("next hop with DSN") {
		TernDaemon d(submission_not_started());
		start_daemon(d, dsn_sink.port());
		SmtpClient c = login_alice(d);
		submit(c, "RET=HDRS ENVID=env+2B2",
		       {{carol, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol+2Bold@remote.example"}, {dave, ""}},
		       message_to(carol, "relay2"));
		// Each copy has its own Received "for", so each its own transaction.
		REQUIRE(dsn_sink.wait_for_messages(2));
		for (const SinkMessage& m : dsn_sink.messages()) {
			CHECK(contains(m.mail_params, "RET=HDRS ENVID=env+2B2"));
			REQUIRE(m.rcpt_params.size() == 1);
			CHECK(m.rcpt_params[0] ==
			      (m.rcpt_to[0] == carol ? "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol+2Bold@remote.example"
			                             : ""));
		}
		usleep(1000000);
		INFO(log_tail(d));
		CHECK(maildir_files(d.maildir("alice")).empty());
	}
}

TEST_CASE("dsn: the notice a port-25 250 promises is in the queue when the 250 arrives") {
	// RFC 3461 4.1 NOTIFY=SUCCESS: the 250 makes the notice ours to
	// deliver, so it is queued (file and record, fsync'd) before the 250,
	// or a crash right after the 250 would lose it. The smarthost defers
	// everything, so the notice stays in the queue for the check.
	SmtpSink sink;
	SmtpSink::Replies defer;
	defer.mail = "451 4.3.0 try later";
	sink.set_replies(defer);
	TernDaemon d(submission_not_started());
	start_daemon(d, sink.port());
	const std::string queue_dir = d.data_dir() + "/queue";
	auto queued_files = [&] { return tern::testing::dir_entries(queue_dir).size(); };
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
	for (int i = 0; i < 3; i++) {
		const size_t before = queued_files();
		REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
		REQUIRE(c.cmd("RCPT TO:<alice@test.example> NOTIFY=SUCCESS").code == 250);
		REQUIRE(c.cmd("DATA").code == 354);
		REQUIRE(c.send("From: <bob@sender.example>\r\nSubject: notice " + std::to_string(i) +
		               "\r\n\r\nbody\r\n.\r\n"));
		Reply r = c.read_reply();
		REQUIRE_MESSAGE(r.code == 250, r.raw);
		// Checked at once: nothing may still be on its way.
		CHECK_MESSAGE(queued_files() > before, "message " << i << ": no notice in the queue at the 250");
	}
	INFO(log_tail(d));
	CHECK_FALSE(contains(read_file(d.log_path()), "no dsn sent"));
}

TEST_CASE("dsn: a refused recipient: NEVER gets no notice, RET=FULL the whole message, RET=HDRS the headers") {
	SmtpSink sink;
	SmtpSink::Replies refuse;
	refuse.rcpt = "550 5.1.1 no mailbox by that name";
	sink.set_replies(refuse);
	TernDaemon d(submission_not_started());
	start_daemon(d, sink.port());
	SmtpClient c = login_alice(d);
	submit(c, "RET=FULL", {{carol, "NOTIFY=NEVER"}}, message_to(carol, "never1"));
	submit(c, "RET=FULL ENVID=full-1", {{carol, "NOTIFY=FAILURE"}}, message_to(carol, "full1"));
	submit(c, "RET=HDRS", {{dave, "NOTIFY=DELAY,FAILURE"}}, message_to(dave, "hdrs1"));
	auto files = wait_for_maildir(d.maildir("alice"), 2, 15000);
	INFO(log_tail(d));
	REQUIRE(files.size() == 2);
	usleep(500000);
	CHECK(maildir_files(d.maildir("alice")).size() == 2);  // none for NOTIFY=NEVER
	std::string full, hdrs;
	for (const auto& f : files) {
		std::string text = read_file(f);
		(contains(text, "full-1") ? full : hdrs) = text;
	}
	INFO(full);
	INFO(hdrs);
	CHECK(contains(full, "Action: failed\r\nStatus: 5.1.1\r\n"));
	CHECK(contains(full, "Content-Type: message/rfc822\r\n"));
	CHECK(contains(full, "the body of full1\r\n"));
	CHECK(contains(hdrs, "Content-Type: text/rfc822-headers\r\n"));
	CHECK(contains(hdrs, "<hdrs1@test.example>"));
	CHECK_FALSE(contains(hdrs, "the body of hdrs1"));
	CHECK_FALSE(contains(full + hdrs, "never1"));
}

namespace {

// alice sends one REQUIRETLS message over STARTTLS to the smarthost sink:
// one without TLS, or one with a certificate from a CA ternd trusts.
void requiretls_case(bool verified) {
	TestCert cert;
	TestCa ca;
	TestCa::Issued issued = ca.issue("localhost");
	SmtpSink plain_sink;
	SmtpSink::Options tls_options;
	tls_options.cert_file = issued.cert_file;
	tls_options.key_file = issued.key_file;
	tls_options.offer_requiretls = true;
	SmtpSink tls_sink(tls_options);
	SmtpSink& sink = verified ? tls_sink : plain_sink;
	TernDaemon d(submission_not_started());
	start_daemon(d, sink.port(), verified ? R"("smarthost_ca_file": ")" + ca.ca_file() + "\"" : "",
	             cert.config_patch());
	// alice over STARTTLS, since REQUIRETLS needs TLS on the way in too.
	ScriptResult s = run_smtp_script(
	    TlsMode::starttls, d.submission_port(), cert.cert_file(),
	    {"EHLO client.test.example", "AUTH PLAIN " + plain_response(alice, alice_password),
	     "MAIL FROM:<" + alice + "> REQUIRETLS", "RCPT TO:<" + carol + "> NOTIFY=FAILURE,SUCCESS", "DATA",
	     "@DATA " + message_to(carol, "secret1") + ".\r\n"});
	INFO(s.run.output);
	REQUIRE(s.error.empty());
	REQUIRE(starts_with(s.reply_to(2).last(), "250 "));
	REQUIRE(starts_with(s.reply_to(5).last(), "250 "));
	if (!verified) {
		std::string notice = wait_for_notice(d, "mail delivery failed");
		INFO(log_tail(d));
		REQUIRE_FALSE(notice.empty());
		CHECK(contains(notice, "Action: failed\r\nStatus: 5.7.30\r\n"));
		CHECK(contains(notice, "REQUIRETLS"));
		CHECK(plain_sink.messages().empty());
		return;
	}
	REQUIRE(tls_sink.wait_for_messages(1));
	SinkMessage m = tls_sink.messages()[0];
	CHECK(m.tls);
	CHECK(contains(m.mail_params, "REQUIRETLS"));
	CHECK(contains(m.data, "the body of secret1"));
}

}  // namespace

TEST_CASE("dsn: REQUIRETLS is refused by a next hop without TLS (5.7.30), kept by one with verified TLS") {
	SUBCASE("no TLS") { requiretls_case(false); }
	SUBCASE("verified TLS offering REQUIRETLS") { requiretls_case(true); }
}

TEST_CASE("dsn: REQUIRETLS to a next hop whose certificate does not verify fails with 5.7.30") {
	TestCert cert;
	TestCert sink_cert;  // self-signed: no CA vouches for it
	SmtpSink::Options o;
	o.cert_file = sink_cert.cert_file();
	o.key_file = sink_cert.key_file();
	o.offer_requiretls = true;
	SmtpSink sink(o);
	TernDaemon d(submission_not_started());
	start_daemon(d, sink.port(), "", cert.config_patch());
	ScriptResult s = run_smtp_script(TlsMode::starttls, d.submission_port(), cert.cert_file(),
	                                 {"EHLO client.test.example",
	                                  "AUTH PLAIN " + plain_response(alice, alice_password),
	                                  "MAIL FROM:<" + alice + "> REQUIRETLS", "RCPT TO:<" + carol + ">", "DATA",
	                                  "@DATA " + message_to(carol, "secret2") + ".\r\n"});
	INFO(s.run.output);
	REQUIRE(s.error.empty());
	REQUIRE(starts_with(s.reply_to(5).last(), "250 "));
	std::string notice = wait_for_notice(d, "mail delivery failed");
	INFO(log_tail(d));
	REQUIRE_FALSE(notice.empty());
	CHECK(contains(notice, "Status: 5.7.30\r\n"));
	CHECK(contains(notice, "not trusted"));
	CHECK(sink.messages().empty());
}

TEST_CASE("dsn: LIMITS MAILMAX: the 1001st MAIL on one connection gets 421 and the connection closes (RFC 9422)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
	// Pipelined in batches (RFC 2920): MAIL and RSET, 1000 transactions.
	for (int batch = 0; batch < 10; batch++) {
		std::string commands;
		for (int i = 0; i < 100; i++) commands += "MAIL FROM:<bob@sender.example>\r\nRSET\r\n";
		REQUIRE(c.send(commands));
		for (int i = 0; i < 200; i++) {
			Reply r = c.read_reply();
			REQUIRE_MESSAGE(r.code == 250, "batch " << batch << " reply " << i << ": " << r.raw);
		}
	}
	CHECK(c.cmd("MAIL FROM:<bob@sender.example>").plain() == "421 4.5.3 too many transactions on this connection");
	CHECK(c.read_reply().code == 0);  // closed
}

TEST_CASE("dsn: port 25 local delivery with NOTIFY=SUCCESS sends a \"delivered\" notice to the sender") {
	SmtpSink sink;  // the smarthost, which takes the notice to bob
	TernDaemon d({.config_patch = R"({"queue": {"smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	                  R"(", "smarthost_tls": "none"}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example> ENVID=port25-1").code == 250);
	REQUIRE(c.cmd("RCPT TO:<" + alice + "> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Alice+2Bold@test.example").code ==
	        250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(
	    "From: <bob@sender.example>\r\nSubject: hello alice\r\nMessage-Id: <p25-1@sender.example>\r\n\r\nhi\r\n.\r\n"));
	REQUIRE(c.read_reply().code == 250);
	REQUIRE(wait_for_maildir(d.maildir("alice"), 1).size() == 1);
	INFO(log_tail(d));
	REQUIRE(sink.wait_for_messages(1, 15000));
	SinkMessage m = sink.messages()[0];
	CHECK(m.mail_from == "");
	CHECK(m.rcpt_to == std::vector<std::string>{"bob@sender.example"});
	INFO(m.data);
	CHECK(contains(m.data, "Subject: mail delivered\r\n"));
	CHECK(contains(m.data, "Auto-Submitted: auto-replied\r\n"));
	CHECK(contains(m.data, "Original-Envelope-Id: port25-1\r\n"));
	CHECK(contains(m.data,
	               "Original-Recipient: rfc822;Alice+old@test.example\r\nFinal-Recipient: rfc822;" + alice +
	                   "\r\nAction: delivered\r\nStatus: 2.0.0\r\n"));
	CHECK(contains(m.data, "<p25-1@sender.example>"));
	// Without NOTIFY no success notice: the sink gets nothing more.
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<" + alice + ">").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send("From: <bob@sender.example>\r\nSubject: again\r\n\r\nhi\r\n.\r\n"));
	REQUIRE(c.read_reply().code == 250);
	REQUIRE(wait_for_maildir(d.maildir("alice"), 2).size() == 2);
	usleep(800000);
	CHECK(sink.messages().size() == 1);
}

TEST_CASE("dsn: a port-25 notice for an internationalized sender is queued to the ASCII domain") {
	// The notice (here for NOTIFY=SUCCESS; a partial failure's goes the
	// same way) goes to the MAIL FROM address; the queue asks DNS about
	// its domain in the ASCII form (it looked up the UTF-8 form, found
	// nothing, and dropped the notice as undeliverable).
	DaemonOptions options;
	options.start = false;
	TernDaemon d(options);
	d.dns().add("xn--bcher-kva.example", "MX", "10 mx.xn--bcher-kva.example");
	d.dns().add("mx.xn--bcher-kva.example", "A", "127.0.0.1");
	REQUIRE_MESSAGE(d.start(), d.error());
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
	REQUIRE(c.cmd("MAIL FROM:<jörg@bücher.example> SMTPUTF8").code == 250);
	REQUIRE(c.cmd("RCPT TO:<" + alice + "> NOTIFY=SUCCESS").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send("From: <jörg@bücher.example>\r\nSubject: grüße\r\n\r\nhi\r\n.\r\n"));
	REQUIRE(c.read_reply().code == 250);
	REQUIRE(wait_for_maildir(d.maildir("alice"), 1).size() == 1);
	// Queued, and attempted at the MX of the ASCII name: 127.0.0.1, whose
	// port 25 refuses here (or takes it), never "does not exist".
	std::string listed;
	bool queued = false;
	for (int64_t deadline = now_ms() + 10000; now_ms() < deadline && !queued; usleep(100000)) {
		listed = run_ternctl({"-c", d.config_path(), "queue", "list"}).out;
		queued = contains(listed, " <> <jörg@xn--bcher-kva.example> ");
	}
	INFO(listed);
	INFO(log_tail(d));
	CHECK(queued);
	CHECK_FALSE(contains(d.log_text(), "does not exist"));
}

TEST_CASE("dsn: a port-25 notice in its UTF-8 form is DKIM-signed as its ASCII form is") {
	// The notice to an SMTPUTF8 sender goes, to a server that announces
	// SMTPUTF8, as RFC 6533's message/global-delivery-status: the form the
	// receiver sees must carry the signature of the postmaster's domain.
	SmtpSink sink;  // the smarthost (announces SMTPUTF8)
	DaemonOptions options;
	options.start = false;
	TernDaemon d(options);
	const std::string key_path = d.dir() + "/s1.pem";
	ProgramResult key = run_ternctl({"dkim", "genkey", "ed25519", "--out", key_path});
	REQUIRE_MESSAGE(key.exit_code == 0, key.both());
	d.dns().add("s1._domainkey.test.example", "TXT", key.out.substr(0, key.out.find('\n')));
	d.write_config(
	    R"({"queue": {"smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	    R"(", "smarthost_tls": "none"}, "domains": {"test.example": {"dkim": {"selectors": {"s1": {"private_key_file": ")" +
	    key_path + R"("}}, "sign": ["s1"]}}}})");
	REQUIRE_MESSAGE(d.start(), d.error());
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
	REQUIRE(c.cmd("MAIL FROM:<jörg@sender.example> SMTPUTF8").code == 250);
	REQUIRE(c.cmd("RCPT TO:<" + alice + "> NOTIFY=SUCCESS").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send("From: <jörg@sender.example>\r\nSubject: grüße\r\n\r\nhi\r\n.\r\n"));
	REQUIRE(c.read_reply().code == 250);
	INFO(log_tail(d));
	REQUIRE(sink.wait_for_messages(1, 15000));
	SinkMessage m = sink.messages()[0];
	CHECK(m.rcpt_to == std::vector<std::string>{"jörg@sender.example"});
	INFO(m.data);
	CHECK(contains(m.data, "message/global-delivery-status"));
	CHECK(starts_with(m.data, "DKIM-Signature: v=1; "));
	CHECK(contains(m.data, " d=test.example; s=s1; "));
	// The signature is of this form's own text: a receiver's check passes.
	ProgramResult verified = run_ternctl({"--dns", d.dns().address(), "dkim", "verify"}, m.data);
	CHECK_MESSAGE(verified.out.rfind("pass d=test.example s=s1 ", 0) == 0, verified.both());
}

TEST_CASE("dsn: an EHLO address literal is named bare in Received-From-MTA, as the model writes it") {
	// doc/behaviour.md §13: "dns;" then the EHLO name, or the address of
	// an address literal without its brackets, then the connection's
	// address as a literal in the comment.
	SmtpSink sink;  // the smarthost, which takes the notices to bob
	TernDaemon d({.config_patch = R"({"queue": {"smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	                  R"(", "smarthost_tls": "none"}})"});
	REQUIRE_RUNNING(d);
	const std::pair<std::string, std::string> cases[] = {
	    {"[127.0.0.1]", "Received-From-MTA: dns;127.0.0.1 ([127.0.0.1])\r\n"},
	    {"[IPv6:::1]", "Received-From-MTA: dns;::1 ([127.0.0.1])\r\n"},
	};
	size_t n = 0;
	for (const auto& [ehlo, field] : cases) {
		CAPTURE(ehlo);
		SmtpClient c = connect_smtp(d);
		REQUIRE(c.read_reply().code == 220);
		REQUIRE(c.cmd("EHLO " + ehlo).code == 250);
		REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
		REQUIRE(c.cmd("RCPT TO:<" + alice + "> NOTIFY=SUCCESS").code == 250);
		REQUIRE(c.cmd("DATA").code == 354);
		REQUIRE(c.send("From: <bob@sender.example>\r\nSubject: literal\r\n\r\nhi\r\n.\r\n"));
		REQUIRE(c.read_reply().code == 250);
		INFO(log_tail(d));
		REQUIRE(sink.wait_for_messages(++n, 15000));
		const std::string data = sink.messages()[n - 1].data;
		INFO(data);
		CHECK(contains(data, field));
	}
}
