// STARTTLS and implicit TLS (RFC 3207, RFC 8314; doc/behaviour.md §4
// STARTTLS, doc/behaviour.md D7; SPEC "TLS"), seen by real TLS clients: openssl
// s_client and Python's ssl module.
#include "bb.h"

#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <thread>
#include <unistd.h>

#include "helpers/tls_tools.h"

namespace {

bool has_line(const std::vector<std::string>& lines, const std::string& wanted) {
	for (const auto& line : lines)
		if (line == wanted) return true;
	return false;
}

// TLS 1.2 with ECDHE key exchange and an AEAD cipher (SPEC "TLS").
void check_modern_tls(const TlsProbe& probe) {
	INFO(probe.output);
	CHECK(probe.handshake_ok);
	CHECK(probe.protocol == "TLSv1.2");
	CHECK(starts_with(probe.cipher, "ECDHE-"));
	CHECK((contains(probe.cipher, "GCM") || contains(probe.cipher, "CHACHA20")));
}

}  // namespace

TEST_CASE("tls: without a certificate STARTTLS is not offered and answered 502 5.5.1") {
	TernDaemon d(daemon_options(true, false));
	REQUIRE_RUNNING(d);
	for (int port : {d.smtp_port(), d.submission_port()}) {
		CAPTURE(port);
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", port));
		REQUIRE(c.read_reply().code == 220);
		Reply ehlo = c.cmd("EHLO client.sender.example");
		REQUIRE(ehlo.code == 250);
		CHECK_FALSE(has_line(ehlo.lines, "250-STARTTLS"));
		Reply r = c.cmd("STARTTLS");
		CHECK(starts_with(r.plain(), "502 5.5.1 "));
		CHECK(r.has_id());
		// The connection goes on in plaintext (doc/behaviour.md D7).
		CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	}
}

TEST_CASE("tls: STARTTLS order errors and the reset after the handshake") {
	TestCert cert;
	TernDaemon d(daemon_options(
	    true, true, cert.config_patch(R"({"listeners": {"test": {"submission": {"require_starttls": false}}}})")));
	REQUIRE_RUNNING(d);
	std::string passwd_output;
	REQUIRE_MESSAGE(set_password(d, "alice", "tls order secret", &passwd_output), passwd_output);

	SUBCASE("STARTTLS before EHLO: 503 5.5.1") {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
		REQUIRE(c.read_reply().code == 220);
		Reply r = c.cmd("STARTTLS");
		CHECK(r.plain() == "503 5.5.1 no ehlo/helo yet");
		CHECK(r.has_id());
	}
	SUBCASE("STARTTLS is advertised on smtp and submission before TLS") {
		for (int port : {d.smtp_port(), d.submission_port()}) {
			SmtpClient c;
			REQUIRE(c.connect("127.0.0.1", port));
			REQUIRE(c.read_reply().code == 220);
			Reply ehlo = c.cmd("EHLO client.sender.example");
			CHECK(has_line(ehlo.lines, "250-STARTTLS"));
		}
	}
	SUBCASE("after the handshake: EHLO needed again, no STARTTLS offered, a second STARTTLS refused") {
		ScriptResult s = run_smtp_script(
		    TlsMode::starttls, d.smtp_port(), cert.cert_file(),
		    {"MAIL FROM:<bob@sender.example>", "EHLO client.sender.example", "STARTTLS", "NOOP"});
		INFO(s.run.output);
		REQUIRE(s.error.empty());
		// greeting, EHLO, STARTTLS, then the four commands
		REQUIRE(s.replies.size() == 7);
		CHECK(s.replies[2].last() == "220 2.0.0 go!");
		CHECK(starts_with(s.cipher, "TLSv1.2 ECDHE-"));
		CHECK(s.replies[3].plain() == "503 5.5.1 no ehlo/helo yet");
		CHECK(s.replies[4].last() == "250 SMTPUTF8");
		CHECK_FALSE(has_line(s.replies[4].lines, "250-STARTTLS"));
		CHECK(s.replies[5].plain() == "503 5.5.1 already speaking tls");
		CHECK(ends_with_received_id(s.replies[5].last()));
		CHECK(s.replies[6].last() == "250 2.0.0 alrighty");
	}
	SUBCASE("implicit TLS: no STARTTLS offered, STARTTLS refused as already speaking tls") {
		ScriptResult s = run_smtp_script(TlsMode::implicit, d.submissions_port(), cert.cert_file(),
		                                 {"STARTTLS", "EHLO client.sender.example", "STARTTLS"});
		INFO(s.run.output);
		REQUIRE(s.error.empty());
		REQUIRE(s.replies.size() == 4);
		CHECK(starts_with(s.replies[0].last(), "220 mx.test.example "));
		CHECK(starts_with(s.cipher, "TLSv1.2 ECDHE-"));
		CHECK(s.reply_to(0).plain() == "503 5.5.1 no ehlo/helo yet");
		CHECK_FALSE(has_line(s.reply_to(1).lines, "250-STARTTLS"));
		CHECK(has_line(s.reply_to(1).lines, "250-AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"));
		CHECK(s.reply_to(2).plain() == "503 5.5.1 already speaking tls");
	}
	SUBCASE("STARTTLS after AUTH: 503 5.5.1 cannot starttls after authentication") {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", d.submission_port()));
		REQUIRE(c.greet_and_ehlo());
		// base64("\0alice@test.example\0tls order secret")
		REQUIRE(c.cmd("AUTH PLAIN AGFsaWNlQHRlc3QuZXhhbXBsZQB0bHMgb3JkZXIgc2VjcmV0").plain() ==
		        "235 2.7.0 nice");
		Reply r = c.cmd("STARTTLS");
		CHECK(r.plain() == "503 5.5.1 cannot starttls after authentication");
		CHECK(r.has_id());
		CHECK(c.cmd("NOOP").plain() == "250 2.0.0 alrighty");
	}
}

TEST_CASE("tls: bytes pipelined after STARTTLS go to the handshake, never run as plaintext commands") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch()));
	REQUIRE_RUNNING(d);
	for (int port : {d.smtp_port(), d.submission_port()}) {
		CAPTURE(port);
		SmtpClient c;
		c.timeout_ms = 8000;
		REQUIRE(c.connect("127.0.0.1", port));
		REQUIRE(c.greet_and_ehlo());
		// One write: the MAIL line arrives together with STARTTLS (RFC 3207 4.2:
		// the client must not pipeline after STARTTLS; the server must not
		// act on such bytes as SMTP commands).
		REQUIRE(c.send("STARTTLS\r\nMAIL FROM:<x@y>\r\n"));
		Reply go = c.read_reply();
		CHECK(go.plain() == "220 2.0.0 go!");
		// What follows is TLS or nothing: "MAIL FROM:<x@y>" is no ClientHello,
		// so the handshake fails and the server closes.
		bool closed_clean = c.expect_closed();
		std::string after = c.unexpected();
		INFO("bytes after 220: " << after);
		CHECK(!c.connected());  // closed within the deadline, not waiting
		if (!closed_clean) {
			REQUIRE_FALSE(after.empty());
			// only a TLS record (alert 0x15 or handshake 0x16) may come
			CHECK((after[0] == '\x15' || after[0] == '\x16'));
		}
		CHECK_FALSE(contains(after, "250 "));
		CHECK_FALSE(contains(after, "503 "));
		CHECK_FALSE(contains(after, "530 "));
		CHECK_FALSE(contains(after, "5.5.1"));
	}
	// The daemon is unharmed.
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	CHECK(c.greet_and_ehlo());
}

TEST_CASE("tls: openssl s_client sees TLS 1.2 with ECDHE and an AEAD cipher on every listener") {
	TestCert cert;
	TernDaemon d(daemon_options(true, true, cert.config_patch()));
	REQUIRE_RUNNING(d);
	std::string fp = cert.fingerprint();
	REQUIRE_FALSE(fp.empty());

	SUBCASE("STARTTLS on smtp") {
		TlsProbe p = openssl_probe(d.smtp_port(), true);
		check_modern_tls(p);
		CHECK(p.fingerprint == fp);
		CHECK(contains(p.subject, "CN = localhost"));
	}
	SUBCASE("STARTTLS on submission") {
		TlsProbe p = openssl_probe(d.submission_port(), true);
		check_modern_tls(p);
		CHECK(p.fingerprint == fp);
	}
	SUBCASE("implicit TLS on submissions") {
		TlsProbe p = openssl_probe(d.submissions_port(), false);
		check_modern_tls(p);
		CHECK(p.fingerprint == fp);
	}
	SUBCASE("a client offering only a CBC suite gets no session") {
		TlsProbe p = openssl_probe(d.submissions_port(), false,
		                           {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"});
		INFO(p.output);
		CHECK_FALSE(p.handshake_ok);
	}
	SUBCASE("a client offering only static RSA key exchange gets no session") {
		TlsProbe p = openssl_probe(d.submissions_port(), false, {"-tls1_2", "-cipher", "AES128-GCM-SHA256"});
		INFO(p.output);
		CHECK_FALSE(p.handshake_ok);
	}
	SUBCASE("a TLS 1.1-only client gets no session") {
		TlsProbe p = openssl_probe(d.submissions_port(), false, {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"});
		INFO(p.output);
		CHECK_FALSE(p.handshake_ok);
	}
}

TEST_CASE("tls: SIGHUP reloads the certificate; an open TLS connection keeps working") {
	TestCert cert;
	TernDaemon d(daemon_options(true, true, cert.config_patch()));
	REQUIRE_RUNNING(d);
	std::string old_fp = cert.fingerprint();
	REQUIRE(openssl_probe(d.submission_port(), true).fingerprint == old_fp);

	// A TLS session opened before the reload, held open across it.
	std::string flags = make_temp_dir("tern-hold-");
	std::string ready = flags + "/ready", go = flags + "/go";
	ScriptResult held;
	std::thread holder([&] {
		held = run_smtp_script(TlsMode::starttls, d.submission_port(), cert.cert_file(),
		                       {"EHLO client.sender.example", "@HOLD " + ready + " " + go, "NOOP", "QUIT"},
		                       60000);
	});
	int64_t deadline = now_ms() + 15000;
	while (!file_exists(ready) && now_ms() < deadline) usleep(20000);
	bool holding = file_exists(ready);

	if (holding) {
		// The held connection trusted the old certificate; the new one has another CN.
		std::string old_cert_copy = read_file(cert.cert_file());
		write_file(flags + "/old-cert.pem", old_cert_copy);
		cert.regenerate("reloaded.localhost");
		std::string new_fp = cert.fingerprint();
		REQUIRE(new_fp != old_fp);
		REQUIRE(d.signal(SIGHUP));

		TlsProbe after;
		int64_t reload_deadline = now_ms() + 10000;
		do {
			usleep(100000);
			after = openssl_probe(d.submission_port(), true);
		} while (after.fingerprint != new_fp && now_ms() < reload_deadline);
		INFO(after.output << "\n" << log_tail(d));
		CHECK(after.fingerprint == new_fp);
		CHECK(contains(after.subject, "CN = reloaded.localhost"));
		check_modern_tls(after);
		TlsProbe implicit = openssl_probe(d.submissions_port(), false);
		CHECK(implicit.fingerprint == new_fp);
		CHECK(d.running());
	}
	write_file(go, "");
	holder.join();
	remove_tree(flags);
	REQUIRE(holding);
	INFO(held.run.output);
	CHECK(held.error.empty());
	// greeting, EHLO, STARTTLS, EHLO, NOOP, QUIT
	REQUIRE(held.replies.size() == 6);
	CHECK(held.replies[4].last() == "250 2.0.0 alrighty");
	CHECK(held.replies[5].last() == "221 2.0.0 okay thanks bye");
}

TEST_CASE("tls: a broken certificate file at SIGHUP keeps the old certificate in use") {
	TestCert cert;
	TernDaemon d(daemon_options(true, false, cert.config_patch()));
	REQUIRE_RUNNING(d);
	std::string fp = cert.fingerprint();
	write_file(cert.cert_file(), "not a certificate\n");
	REQUIRE(d.signal(SIGHUP));
	usleep(500000);
	REQUIRE_RUNNING(d);
	TlsProbe p = openssl_probe(d.submission_port(), true);
	INFO(p.output << "\n" << log_tail(d));
	CHECK(p.handshake_ok);
	CHECK(p.fingerprint == fp);
}

// doc/behaviour.md §4 MAIL step 2: a listener that requires STARTTLS for
// mail refuses MAIL, RCPT and DATA in plaintext with 530 5.7.0; after the
// handshake the same transaction is accepted.
TEST_CASE("tls: require_starttls on port 25 gives 530 5.7.0 until TLS is on") {
	TestCert cert;
	TernDaemon d(daemon_options(
	    false, false,
	    merge_patches(cert.config_patch(), R"({"listeners": {"test": {"smtp": {"require_starttls": true}}}})")));
	REQUIRE_RUNNING(d);
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(c.greet_and_ehlo());
	Reply r = c.cmd("MAIL FROM:<bob@sender.example>");
	CHECK(r.plain() == "530 5.7.0 STARTTLS required for mail delivery");
	CHECK(r.has_id());
	CHECK(c.cmd("RCPT TO:<alice@test.example>").plain() == "530 5.7.0 STARTTLS required for mail delivery");
	CHECK(c.cmd("DATA").plain() == "530 5.7.0 STARTTLS required for mail delivery");
	// Over TLS the transaction goes through.
	ScriptResult s = run_smtp_script(
	    TlsMode::starttls, d.smtp_port(), cert.cert_file(),
	    {"EHLO client.sender.example", "MAIL FROM:<bob@sender.example>", "RCPT TO:<alice@test.example>"});
	INFO(s.error);
	CHECK(s.reply_to(1).last() == "250 2.1.0 looking good");
	CHECK(s.reply_to(2).last() == "250 2.1.0 now on the list");
}

// doc/behaviour.md §1: a connection to the implicit-TLS port counts against
// the client's limits when it is accepted, as in the model, not after its
// handshake: one address cannot hold any number of connections in the
// handshake beside its limit.
TEST_CASE("tls: connections waiting in the implicit-TLS handshake count against the per-IP limit") {
	TestCert cert;
	TernDaemon d(daemon_options(
	    false, true, merge_patches(cert.config_patch(), R"({"limits": {"connections": [3, 90, 270]}})")));
	REQUIRE_RUNNING(d);
	std::vector<SmtpClient> in_handshake;
	for (int i = 0; i < 3; i++) {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", d.submissions_port()));
		in_handshake.push_back(std::move(c));
	}
	// The three are accepted (and counted) before the fourth connects.
	auto accepted = [&d] {
		std::string log = d.log_text();
		size_t count = 0;
		for (size_t at = 0; (at = log.find("msg=\"new connection\"", at)) != std::string::npos; at++) count++;
		return count;
	};
	for (int tries = 0; tries < 100 && accepted() < 3; tries++) usleep(20 * 1000);
	REQUIRE(accepted() == 3);
	SmtpClient plain = connect_smtp(d);
	REQUIRE(plain.connected());
	Reply r = plain.read_reply();
	CHECK(r.plain() == "421 4.7.0 too many open connections from your ip or network");
	// Slots are given back when they close.
	in_handshake.clear();
	bool greeted = false;
	for (int tries = 0; tries < 50 && !greeted; tries++) {
		if (tries) usleep(50 * 1000);
		SmtpClient again = connect_smtp(d);
		greeted = again.connected() && again.read_reply().code == 220;
	}
	CHECK(greeted);
}

TEST_CASE("tls: the memory of a burst of TLS connections goes back while another client stays connected") {
	// Each implicit-TLS connection holds mbedTLS's record buffers (about
	// 35 KiB); a busy server may never be without a client, so the free
	// heap they leave must not wait for an idle moment (doc/design.md).
	if (std::getenv("ASAN_OPTIONS") != nullptr) {
		MESSAGE("skipped: under the sanitizers freed memory is held back on purpose");
		return;
	}
	rlimit limit{};
	getrlimit(RLIMIT_NOFILE, &limit);
	const int count = 1000;
	if (limit.rlim_cur < count + 200) {
		MESSAGE("skipped: RLIMIT_NOFILE " << limit.rlim_cur << " is below " << count + 200);
		return;
	}
	TestCert cert;
	TernDaemon d(daemon_options(false, true,
	                            merge_patches(cert.config_patch(), R"({"limits": {"connections": [5000, 5000, 5000],
		"connection_rate_per_min": [10000, 10000, 10000]}})")));
	REQUIRE_RUNNING(d);
	SmtpClient stays = connect_smtp(d);
	REQUIRE(stays.read_reply().code == 220);
	// ternd gives back what start-up touched about a second after it
	// started (core::trim_startup_memory); measured after that, the burst's
	// return is the periodic trim's alone.
	sleep(3);
	long before = process_memory_kb(d.pid(), "VmRSS");

	std::vector<SmtpClient> burst(count);
	for (int i = 0; i < count; i++)
		REQUIRE_MESSAGE(burst[i].connect("127.0.0.1", d.submissions_port()), "connection " << i);
	// Each connection's TLS session exists once ternd has accepted it.
	long peak = before;
	for (int64_t deadline = now_ms() + 10000; now_ms() < deadline && peak < before + 25 * 1024; usleep(100000))
		peak = process_memory_kb(d.pid(), "VmRSS");
	INFO("resident before " << before << " kB, with the burst " << peak << " kB");
	REQUIRE(peak >= before + 25 * 1024);
	burst.clear();

	// Back within the trim's 20-second period, with the other client still
	// there (while clients are connected, more than 8 MiB of free heap
	// must have become resident for a trim: the burst left far more).
	long after = peak;
	for (int64_t deadline = now_ms() + 45000; now_ms() < deadline && after > before + 12 * 1024; usleep(500000))
		after = process_memory_kb(d.pid(), "VmRSS");
	INFO("resident after the burst " << after << " kB");
	CHECK(after <= before + 12 * 1024);
	CHECK(stays.cmd("NOOP").code == 250);
	MESSAGE("resident: " << before << " kB before, " << peak << " kB with " << count << " TLS connections, "
	                     << after << " kB after");
}
