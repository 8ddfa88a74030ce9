// CHUNKING / BDAT (RFC 3030): chunks of announced size reach the Maildir and
// the smarthost intact, pipelined chunks, BDAT 0 LAST, the size limit, the
// ordering errors, a bad size, bare newlines across chunks, RSET, the
// per-chunk deadline, and the refusals on submission and with STARTTLS
// required (the chunk is read and dropped before the reply).
#include "bb.h"

#include <algorithm>
#include <csignal>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/smtp_sink.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "chunking secret 3";

// The only file in alice's new/, or "" (with a failed check) when there is
// not exactly one.
std::string stored_message(TernDaemon& d) {
	auto files = wait_for_maildir(d.maildir("alice"), 1);
	CHECK_MESSAGE(files.size() == 1, "files in new/: " << files.size());
	return files.size() == 1 ? read_file(files[0]) : "";
}

// "BDAT <size>[ LAST]\r\n" followed by the chunk.
std::string bdat(const std::string& chunk, bool last = false) {
	return "BDAT " + std::to_string(chunk.size()) + (last ? " LAST" : "") + "\r\n" + chunk;
}

// Sends one BDAT with its chunk, reads the reply.
Reply send_chunk(SmtpClient& c, const std::string& chunk, bool last = false) {
	if (!c.send(bdat(chunk, last))) return Reply{};
	return c.read_reply();
}

// Connected on port 25 with EHLO, MAIL and RCPT for alice accepted.
SmtpClient ready_for_message(TernDaemon& d) {
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	return c;
}

// Names in <data_dir>/tmp (message temp files).
// Files in data_dir/tmp that hold message data. Spool files kept empty
// for reuse (data-spool-*, core/spool_pool.h) hold none and do not count.
std::vector<std::string> temp_files(TernDaemon& d) {
	std::vector<std::string> names;
	DIR* dir = opendir((d.data_dir() + "/tmp").c_str());
	if (!dir) return names;
	while (dirent* e = readdir(dir)) {
		if (e->d_name[0] == '.') continue;
		struct stat st;
		std::string name = e->d_name;
		if (name.rfind("data-spool-", 0) == 0 && stat((d.data_dir() + "/tmp/" + name).c_str(), &st) == 0 &&
		    st.st_size == 0)
			continue;
		names.push_back(name);
	}
	closedir(dir);
	return names;
}

// Python smtplib (no BDAT helper of its own): EHLO, MAIL, RCPT, then the
// whole BDAT sequence from stdin in one sendall, then one reply per expected
// reply, each printed as "REPLY <code> <text>". argv: port, from, to, count.
const char* smtplib_pipelined = R"PY(
import smtplib, sys
port, mail_from, rcpt_to, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
payload = sys.stdin.buffer.read()
s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.sender.example", timeout=20)
s.ehlo("client.sender.example")
print("CHUNKING", s.has_extn("chunking"))
print("MAIL", s.mail(mail_from)[0])
print("RCPT", s.rcpt(rcpt_to)[0])
s.sock.sendall(payload)
for _ in range(count):
    code, text = s.getreply()
    print("REPLY", code, text.decode())
s.quit()
)PY";

std::vector<std::string> reply_lines(const std::string& out) {
	std::vector<std::string> lines;
	size_t at = 0;
	while ((at = out.find("REPLY ", at)) != std::string::npos) {
		size_t end = out.find('\n', at);
		lines.push_back(strip_received_id(out.substr(at + 6, end - at - 6)));
		at = end;
	}
	return lines;
}

}  // namespace

TEST_CASE("bdat: CHUNKING is advertised on port 25 and on submission") {
	TernDaemon d(
	    daemon_options(true, false, R"({"listeners": {"test": {"submission": {"require_starttls": false}}}})"));
	REQUIRE_RUNNING(d);
	for (int port : {d.smtp_port(), d.submission_port()}) {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", port));
		REQUIRE(c.read_reply().code == 220);
		Reply r = c.cmd("EHLO client.sender.example");
		CHECK(std::find(r.lines.begin(), r.lines.end(), "250-CHUNKING") != r.lines.end());
		CHECK(std::find(r.lines.begin(), r.lines.end(), "250-BINARYMIME") == r.lines.end());
		CHECK(r.lines.back() == "250 SMTPUTF8");
	}
}

TEST_CASE("bdat: chunks are stored intact, dots and a DATA terminator are plain content") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = ready_for_message(d);
	// Nothing in BDAT data is unstuffed or ends the message early.
	const std::string part1 = "From: <bob@sender.example>\r\nTo: <alice@test.example>\r\nSubject: chunks\r\n\r\n";
	const std::string part2 = ".one dot\r\n..two dots\r\n.\r\nQUIT\r\n";
	const std::string part3 = "last line\r\n";
	REQUIRE(c.send(bdat(part1)));
	CHECK(c.read_reply().plain() == "250 2.0.0 " + std::to_string(part1.size()) + " octets received");
	REQUIRE(c.send(bdat(part2)));
	CHECK(c.read_reply().plain() == "250 2.0.0 " + std::to_string(part2.size()) + " octets received");
	REQUIRE(c.send(bdat(part3, true)));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");

	const std::string message = part1 + part2 + part3;
	std::string stored = stored_message(d);
	INFO(stored);
	REQUIRE(ends_with(stored, message));
	std::string prefix = stored.substr(0, stored.size() - message.size());
	CHECK(starts_with(prefix, "X-Tern-Reason: no-bad-signals\r\nReturn-Path: <bob@sender.example>\r\n"));
	CHECK(contains(prefix, "Received: from client.sender.example"));
	CHECK(ends_with(prefix, "\r\n"));
	CHECK_FALSE(contains(prefix, "\r\n\r\n"));
	CHECK(temp_files(d).empty());
}

TEST_CASE("bdat: pipelined chunks in one write with smtplib, CR and LF split over two chunks") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	const std::string message = "From: <bob@sender.example>\r\nSubject: pipelined\r\n\r\nline one\r\nline two\r\n";
	size_t cr = message.find("one\r\n") + 4;  // chunk 1 ends with the CR, chunk 2 starts with the LF
	std::string payload = bdat(message.substr(0, cr)) + bdat(message.substr(cr, 10)) +
	    bdat(message.substr(cr + 10), true) + "NOOP\r\n";
	ProgramResult py = run_program(
	    {debian_python(), "-c", smtplib_pipelined, std::to_string(d.smtp_port()), "bob@sender.example", alice, "4"},
	    payload, 30000);
	INFO(py.both());
	CHECK(contains(py.out, "CHUNKING True"));
	CHECK(contains(py.out, "RCPT 250"));
	std::vector<std::string> expected{
	    "250 2.0.0 " + std::to_string(cr) + " octets received",
	    "250 2.0.0 10 octets received",
	    "250 2.2.0 it is done",
	    "250 2.0.0 alrighty",
	};
	CHECK(reply_lines(py.out) == expected);
	std::string stored = stored_message(d);
	CHECK(ends_with(stored, "\r\n" + message));
}

TEST_CASE("bdat: a 2 MB chunk of 8-bit octets (NUL included) arrives over many reads, the next command follows") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = ready_for_message(d);
	std::string message = "Subject: big binary\r\n\r\n";
	uint32_t x = 12345;
	while (message.size() < 2 * 1024 * 1024) {
		std::string line;
		for (int i = 0; i < 998; ++i) {
			x = x * 1103515245 + 12345;
			char octet = static_cast<char>(x >> 24);
			line += octet == '\r' || octet == '\n' ? '\0' : octet;
		}
		message += line + "\r\n";
	}
	REQUIRE(c.send(bdat(message, true) + "NOOP\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");
	std::string stored = stored_message(d);
	CHECK(stored.size() > message.size());
	CHECK(ends_with(stored, "\r\n" + message));
}

TEST_CASE("bdat: BDAT 0 LAST ends the message; as the only chunk it is an empty message") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SUBCASE("after a chunk") {
		SmtpClient c = ready_for_message(d);
		const std::string message = "Subject: zero last\r\n\r\nbody\r\n";
		REQUIRE(c.send(bdat(message) + "BDAT 0 LAST\r\n"));
		CHECK(c.read_reply().plain() == "250 2.0.0 " + std::to_string(message.size()) + " octets received");
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
		CHECK(ends_with(stored_message(d), "\r\n" + message));
	}
	SUBCASE("alone") {
		SmtpClient c = ready_for_message(d);
		CHECK(c.cmd("BDAT 0 LAST").plain() == "250 2.2.0 it is done");
		// Only the added header fields and the empty line that ends them
		// (no header section came), nothing of a message body.
		std::string stored = stored_message(d);
		CHECK(starts_with(stored, "X-Tern-Reason: no-bad-signals\r\nReturn-Path: <bob@sender.example>\r\n"));
		CHECK(ends_with(stored, "\r\n\r\n"));
		CHECK(stored.find("\r\n\r\n") == stored.size() - 4);
	}
	SUBCASE("a zero chunk that is not the last gets its 250 without reading") {
		SmtpClient c = ready_for_message(d);
		CHECK(c.cmd("BDAT 0").plain() == "250 2.0.0 0 octets received");
		REQUIRE(c.send(bdat("Subject: z\r\n\r\nx\r\n", true)));
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	}
}

TEST_CASE("bdat: a last line without CRLF is stored with one") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = ready_for_message(d);
	SUBCASE("in the LAST chunk") {
		REQUIRE(c.send(bdat("Subject: no newline\r\n\r\nend", true)));
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	}
	SUBCASE("before an empty LAST chunk") {
		REQUIRE(c.send(bdat("Subject: no newline\r\n\r\nend") + "BDAT 0 LAST\r\n"));
		CHECK(c.read_reply().code == 250);
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	}
	SUBCASE("a CR that ends the chunk before an empty LAST chunk") {
		REQUIRE(c.send(bdat("Subject: no newline\r\n\r\nend\r") + "BDAT 0 LAST\r\n"));
		CHECK(c.read_reply().code == 250);
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	}
	CHECK(ends_with(stored_message(d), "\r\nSubject: no newline\r\n\r\nend\r\n"));
}

TEST_CASE("bdat: over the size limit the message is refused with DATA's 552, the chunk is read, the session goes on") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"max_message_size": 1000}}})"});
	REQUIRE_RUNNING(d);
	SUBCASE("one chunk announced too large") {
		SmtpClient c = ready_for_message(d);
		// The chunk holds what would be commands: none of it may run.
		std::string chunk = "Subject: big\r\n\r\n" + std::string(1200, 'x') + "\r\nQUIT\r\n";
		REQUIRE(c.send(bdat(chunk, true)));
		Reply r = c.read_reply();
		CHECK(r.plain() == "552 5.2.3 message too large");
		CHECK(r.has_id());
		CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
		// The transaction is gone.
		CHECK(send_chunk(c, "x", true).plain() == "503 5.5.1 missing MAIL FROM");
		// A new transaction within the limit goes through.
		REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
		REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
		REQUIRE(c.send(bdat("Subject: small\r\n\r\nok\r\n", true)));
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
		auto files = wait_for_maildir(d.maildir("alice"), 1);
		REQUIRE(files.size() == 1);
		CHECK(ends_with(read_file(files[0]), "\r\nSubject: small\r\n\r\nok\r\n"));
	}
	SUBCASE("the second chunk crosses the limit; chunks pipelined after it are dropped too") {
		SmtpClient c = ready_for_message(d);
		std::string chunk = std::string(598, 'y') + "\r\n";
		REQUIRE(c.send(bdat(chunk) + bdat(chunk) + bdat(chunk, true) + "NOOP\r\n"));
		CHECK(c.read_reply().plain() == "250 2.0.0 600 octets received");
		CHECK(c.read_reply().plain() == "552 5.2.3 message too large");
		CHECK(c.read_reply().plain() == "503 5.5.1 missing MAIL FROM");
		CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");
		usleep(200000);
		CHECK(maildir_files(d.maildir("alice")).empty());
		CHECK(temp_files(d).empty());
	}
	SUBCASE("bare newlines stored as CRLF can make it too large") {
		SmtpClient c = ready_for_message(d);
		std::string chunk = "Subject: lf\r\n\r\n" + std::string(600, '\n');
		REQUIRE(c.send(bdat(chunk, true)));
		CHECK(c.read_reply().plain() == "552 5.2.3 message too large");
		CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	}
}

TEST_CASE("bdat: ordering errors are 503 5.5.1 after the chunk is read") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SUBCASE("without MAIL, without RCPT, before EHLO") {
		SmtpClient c = connect_smtp(d);
		REQUIRE(c.read_reply().code == 220);
		CHECK(send_chunk(c, "QUIT\r\n").plain() == "503 5.5.1 no ehlo/helo yet");
		REQUIRE(c.cmd("EHLO client.sender.example").code == 250);
		CHECK(send_chunk(c, "QUIT\r\n", true).plain() == "503 5.5.1 missing MAIL FROM");
		REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
		CHECK(send_chunk(c, "RSET\r\n", true).plain() == "503 5.5.1 missing RCPT TO");
		// The MAIL still stands (as after DATA without RCPT).
		REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
		REQUIRE(c.send(bdat("Subject: ordered\r\n\r\nx\r\n", true)));
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	}
	SUBCASE("DATA after BDAT, then RSET") {
		SmtpClient c = ready_for_message(d);
		REQUIRE(c.send(bdat("Subject: mixed\r\n\r\n")));
		CHECK(c.read_reply().code == 250);
		Reply r = c.cmd("DATA");
		CHECK(r.plain() == "503 5.5.1 DATA not allowed after BDAT, send RSET");
		CHECK(c.cmd("RSET").plain() == "250 2.0.0 all clear");
		CHECK(temp_files(d).empty());
		Transaction t = send_mail(c, "bob@sender.example", {alice}, "Subject: by data\r\n\r\nbody\r\n");
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
	}
	SUBCASE("BDAT after a completed DATA has no transaction") {
		SmtpClient c = ready_for_message(d);
		REQUIRE(c.cmd("DATA").code == 354);
		REQUIRE(c.send("Subject: by data\r\n\r\nbody\r\n.\r\n"));
		CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
		CHECK(send_chunk(c, "abc", true).plain() == "503 5.5.1 missing MAIL FROM");
		CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	}
}

TEST_CASE("bdat: RSET drops the chunks received so far") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = ready_for_message(d);
	REQUIRE(c.send(bdat("Subject: dropped\r\n\r\nnever stored\r\n")));
	CHECK(c.read_reply().code == 250);
	CHECK(temp_files(d).size() == 1);
	CHECK(c.cmd("RSET").plain() == "250 2.0.0 all clear");
	CHECK(temp_files(d).empty());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	const std::string message = "Subject: kept\r\n\r\nstored\r\n";
	REQUIRE(c.send(bdat(message, true)));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	std::string stored = stored_message(d);
	CHECK(ends_with(stored, "\r\n" + message));
	CHECK_FALSE(contains(stored, "never stored"));
}

TEST_CASE("bdat: a bad chunk size is 501 5.5.4 and the connection closes") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	for (std::string arg : {"abc", "-5", "99999999999999999999999", "10 FIRST", ""}) {
		CAPTURE(arg);
		SmtpClient c = ready_for_message(d);
		Reply r = c.cmd(arg.empty() ? "BDAT" : "BDAT " + arg);
		CHECK(r.code == 501);
		CHECK(r.ecode == "5.5.4");
		CHECK(starts_with(r.message(), "invalid BDAT "));
		CHECK(c.expect_closed());
	}
	usleep(200000);
	CHECK(maildir_files(d.maildir("alice")).empty());
}

TEST_CASE("bdat: bare_newlines reject fails a chunked message with a bare LF, not one with CRLF split over chunks") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"bare_newlines": "reject"}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = ready_for_message(d);
	REQUIRE(c.send(bdat("Subject: bare\r\n\r\nline\nsmuggled\r\n", true)));
	CHECK(c.read_reply().plain() == "500 5.5.2 invalid bare carriage return or newline, may be smtp smuggling");
	CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	const std::string first = "Subject: split\r\n\r\nline\r";
	REQUIRE(c.send(bdat(first) + bdat("\nend\r\n", true)));
	CHECK(c.read_reply().plain() == "250 2.0.0 " + std::to_string(first.size()) + " octets received");
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	CHECK(ends_with(stored_message(d), "\r\nSubject: split\r\n\r\nline\r\nend\r\n"));

	// A bare CR that ends the last chunk with data, followed by an empty
	// LAST chunk: still a bare CR.
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	const std::string cut = "Subject: cut\r\n\r\nline\r";
	REQUIRE(c.send(bdat(cut) + "BDAT 0 LAST\r\n"));
	CHECK(c.read_reply().plain() == "250 2.0.0 " + std::to_string(cut.size()) + " octets received");
	CHECK(c.read_reply().plain() == "500 5.5.2 invalid bare carriage return or newline, may be smtp smuggling");
	CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
}

TEST_CASE("bdat: a chunk that stops arriving hits the data_chunk deadline") {
	TernDaemon d({.config_patch = R"({"timeouts_s": {"data_chunk": 1}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = ready_for_message(d);
	REQUIRE(c.send("BDAT 100 LAST\r\nSubject: slow\r\n"));
	int64_t start = now_ms();
	Reply r = c.read_reply();
	CHECK(r.plain() == "421 4.4.2 timeout, closing connection");
	CHECK(now_ms() - start < 5000);
	CHECK(c.expect_closed());
	CHECK(maildir_files(d.maildir("alice")).empty());
}

TEST_CASE("bdat: SIGTERM inside a chunk lets the chunk finish, then 421; nothing is stored") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = ready_for_message(d);
	SmtpClient idle = connect_and_ehlo(d);
	REQUIRE(idle.connected());
	// One write: the NOOP's reply goes out once the chunk's first half is read.
	REQUIRE(c.send("NOOP\r\nBDAT 10\r\n12345"));
	CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");
	REQUIRE(d.signal(SIGTERM));
	// The idle client's 421 shows the daemon is shutting down.
	CHECK(starts_with(idle.read_reply().plain(), "421 4.3.2 shutting down"));
	REQUIRE(c.send("67890"));
	CHECK(c.read_reply().plain() == "250 2.0.0 10 octets received");
	CHECK(starts_with(c.read_reply().plain(), "421 4.3.2 shutting down"));
	CHECK(c.expect_closed());
	CHECK(d.wait_exit(15000) == 0);
	CHECK(maildir_files(d.maildir("alice")).empty());
	CHECK(temp_files(d).empty());
}

TEST_CASE("bdat: STARTTLS required on port 25 refuses BDAT with 530 after reading the chunk") {
	TestCert cert;
	TernDaemon d(daemon_options(
	    false, false,
	    merge_patches(cert.config_patch(), R"({"listeners": {"test": {"smtp": {"require_starttls": true}}}})")));
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(send_chunk(c, "QUIT\r\n", true).plain() == "530 5.7.0 STARTTLS required for mail delivery");
	CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
}

TEST_CASE("bdat: on submission a chunked message reaches the smarthost intact and DKIM-signed") {
	SmtpSink sink;
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	TernDaemon d(o);
	ProgramResult key = run_ternctl({"dkim", "genkey", "ed25519", "--out", d.dir() + "/s1.pem"});
	REQUIRE_MESSAGE(key.exit_code == 0, key.both());
	d.write_config(R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
		"queue": {"smarthost": "127.0.0.1:)" +
	               std::to_string(sink.port()) + R"(", "smarthost_tls": "none"},
		"domains": {"test.example": {"dkim": {"selectors": {"s1": {"private_key_file": ")" +
	               d.dir() + R"(/s1.pem"}}, "sign": ["s1"]}}}})");
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());

	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo("client.test.example"));
	// Before AUTH: the chunk is read and refused like MAIL would be.
	CHECK(send_chunk(c, "QUIT\r\n", true).plain() == "530 5.7.0 authentication required");
	REQUIRE(c.cmd("AUTH PLAIN " + plain_response(alice, alice_password)).code == 235);
	REQUIRE(c.cmd("MAIL FROM:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<carol@remote.example>").code == 250);
	const std::string message =
	    "From: <alice@test.example>\r\nTo: <carol@remote.example>\r\nSubject: chunked\r\n\r\n"
	    "First line.\r\n.one leading dot\r\n.\r\nlast line\r\n";
	size_t cut = message.find(".one");
	REQUIRE(c.send(bdat(message.substr(0, cut)) + bdat(message.substr(cut), true)));
	CHECK(c.read_reply().plain() == "250 2.0.0 " + std::to_string(cut) + " octets received");
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	c.cmd("QUIT");

	REQUIRE_MESSAGE(sink.wait_for_messages(1, 15000), log_tail(d));
	auto got = sink.messages();
	REQUIRE(got.size() == 1);
	INFO(got[0].data);
	CHECK(got[0].mail_from == alice);
	CHECK(ends_with(got[0].data, "\r\n" + message));
	std::string header = unfold(got[0].data.substr(0, got[0].data.find("\r\n\r\n") + 2));
	// The model's tag order, i= naming the From address.
	CHECK(contains(header, "DKIM-Signature: v=1; d=test.example; s=s1; i=alice@test.example; a="));
	CHECK(contains(header, " with ESMTPA id "));
}
