// Sender checks on the delivery port (issue "Asynchronous DNS and sender
// authentication"): what the daemon does with iprev, SPF, DKIM, DMARC and
// DNS blocklists after DATA, the trace headers it prepends to a delivered
// copy, and that a DNS lookup never holds up other connections.
// DKIM signatures come from an independent implementation, Debian's
// python3-dkim (dkimpy), with keys generated afresh for each run.
#include <algorithm>

#include "bb.h"
#include "blackbox/ternctl_run.h"

namespace {

// `sign ALGORITHM DOMAIN SELECTOR` < message: generates a key (RSA 2048 or
// Ed25519), prints its DKIM key record on the first line, then the message
// with dkimpy's DKIM-Signature prepended.
const char* dkim_sign_script = R"PY(
import base64, sys
import dkim
algorithm = sys.argv[1].encode()
domain, selector = sys.argv[2].encode(), sys.argv[3].encode()
message = sys.stdin.buffer.read()
if algorithm == b"ed25519-sha256":
    import nacl.signing
    key = nacl.signing.SigningKey.generate()
    private = base64.b64encode(bytes(key))
    record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key)).decode()
else:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
signature = dkim.sign(message, selector, domain, private, signature_algorithm=algorithm,
                      include_headers=[b"From", b"To", b"Subject", b"Date"], linesep=b"\r\n")
sys.stdout.buffer.write(record.encode() + b"\n" + signature + message)
)PY";

// Whether this dkimpy signs with Ed25519 (RFC 8463; dkimpy ≥ 0.7 with PyNaCl).
const char* dkim_ed25519_probe = R"PY(
import inspect, dkim, nacl.signing
assert "signature_algorithm" in inspect.signature(dkim.sign).parameters
print("yes")
)PY";

struct SignedMessage {
	std::string key_record;  // "v=DKIM1; k=...; p=..."
	std::string message;     // DKIM-Signature + the original message
	std::string error;
};

SignedMessage dkim_sign(const std::string& algorithm, const std::string& message) {
	SignedMessage out;
	ProgramResult py = run_program({debian_python(), "-c", dkim_sign_script, algorithm, "sender.example", "sel"},
	                               message, 60000);
	size_t nl = py.out.find('\n');
	if (py.exit_code != 0 || nl == std::string::npos) {
		out.error = "python3-dkim sign failed (exit " + std::to_string(py.exit_code) + "): " + py.err;
		return out;
	}
	out.key_record = py.out.substr(0, nl);
	out.message = py.out.substr(nl + 1);
	return out;
}

// The b= value of the first DKIM-Signature, unfolded and without whitespace.
std::string signature_b(const std::string& signed_message) {
	std::string header = unfold(signed_message.substr(0, signed_message.find("\r\n\r\n")));
	size_t b = header.find(" b=");
	if (b == std::string::npos) return "";
	std::string value;
	for (size_t i = b + 3; i < header.size() && header[i] != ';' && header[i] != '\r'; i++)
		if (header[i] != ' ' && header[i] != '\t') value += header[i];
	return value;
}

std::string message_from(const std::string& from, const std::string& subject = "auth test") {
	return "From: " + from +
	    "\r\n"
	    "To: alice@test.example\r\n"
	    "Subject: " +
	    subject +
	    "\r\n"
	    "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
	    "Message-Id: <" +
	    subject.substr(0, 4) + std::to_string(now_ms()) +
	    "@sender.example>\r\n"
	    "\r\n"
	    "Hello Alice,\r\nthis is the body.\r\n";
}

// One whole transaction on a fresh connection; the reply after the dot
// (or of the step that failed).
Transaction deliver(TernDaemon& d, const std::string& mail_from, const std::string& message,
                    const std::string& ehlo = test_ehlo) {
	SmtpClient c = connect_and_ehlo(d, ehlo);
	if (!c.connected()) {
		Transaction t;
		t.step = "CONNECT";
		t.reply.error = c.last_error;
		return t;
	}
	Transaction t = send_mail(c, mail_from, {"alice@test.example"}, message);
	c.cmd("QUIT");
	return t;
}

// Delivers message from test_sender to alice, expects the 250 and the one
// copy in the Maildir, and returns that copy's Authentication-Results value.
std::string delivered_auth_results(TernDaemon& d, const std::string& message) {
	Transaction t = deliver(d, test_sender, message);
	CHECK(t.step == "END");
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	return header_field(delivered_header(files[0]), "Authentication-Results");
}

// The names of the header fields, in order.
std::vector<std::string> field_names(const std::string& raw_message) {
	std::vector<std::string> names;
	std::string header = raw_message.substr(0, raw_message.find("\r\n\r\n") + 2);
	size_t pos = 0;
	while (pos < header.size()) {
		size_t end = header.find("\r\n", pos);
		if (end == std::string::npos) break;
		std::string line = header.substr(pos, end - pos);
		if (!line.empty() && line[0] != ' ' && line[0] != '\t') names.push_back(line.substr(0, line.find(':')));
		pos = end + 2;
	}
	return names;
}

}  // namespace

TEST_CASE("senderauth: python3-dkim RSA signature passes, a changed body byte fails") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	// One key and signature for both subcases (RSA key generation is slow).
	static const SignedMessage s = dkim_sign("rsa-sha256", message_from("someone@sender.example", "rsa signed"));
	REQUIRE_MESSAGE(s.error.empty(), s.error);
	REQUIRE(starts_with(s.message, "DKIM-Signature: "));
	d.dns().add("sel._domainkey.sender.example", "TXT", s.key_record);
	std::string b = signature_b(s.message);
	REQUIRE(b.size() > 8);

	SUBCASE("intact: dkim=pass, spf=pass") {
		std::string ar = delivered_auth_results(d, s.message);
		CAPTURE(ar);
		// RFC 6008 2: header.b is a prefix of the signature's b= value, at
		// least 8 characters.
		size_t hb = ar.find("header.b=");
		REQUIRE(hb != std::string::npos);
		std::string prefix = ar.substr(hb + 9, ar.find_first_of(" ;", hb) - hb - 9);
		CHECK(prefix.size() >= 8);
		CHECK(starts_with(b, prefix));
		CHECK(ar ==
		      "mx.test.example; iprev=pass policy.iprev=127.0.0.1; dkim=pass (2048 bit rsa) "
		      "header.d=sender.example header.s=sel header.a=rsa-sha256 header.b=" +
		          prefix +
		          " header.i=@sender.example; spf=pass smtp.mailfrom=sender.example; "
		          "dmarc=none header.from=sender.example");
		// The signed message follows the trace headers unchanged.
		CHECK(ends_with(read_file(maildir_files(d.maildir()).at(0)), s.message));
	}
	SUBCASE("one body byte changed: dkim=fail, still delivered (spf pass, no dmarc policy)") {
		std::string tampered = s.message;
		size_t body = tampered.find("Hello Alice");
		REQUIRE(body != std::string::npos);
		tampered[body] = 'J';
		std::string ar = delivered_auth_results(d, tampered);
		CAPTURE(ar);
		CHECK(contains(ar, "; dkim=fail "));
		CHECK_FALSE(contains(ar, "dkim=pass"));
		CHECK(contains(ar, "header.d=sender.example header.s=sel header.a=rsa-sha256 header.b="));
		CHECK(contains(ar, "; spf=pass smtp.mailfrom=sender.example; "));
	}
}

TEST_CASE("senderauth: of many DKIM signatures the topmost ten are checked, the rest never looked up") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	std::string signatures;
	for (int i = 0; i < 12; ++i)
		signatures += "DKIM-Signature: v=1; a=rsa-sha256; d=sender.example; s=many" + std::to_string(i) +
		    "; h=From:Subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==\r\n";
	std::string ar = delivered_auth_results(d, signatures + message_from("someone@sender.example", "many sigs"));
	CAPTURE(ar);
	size_t results = 0;
	for (size_t at = ar.find("dkim="); at != std::string::npos; at = ar.find("dkim=", at + 1)) ++results;
	CHECK(results == 10);
	CHECK(contains(ar, "header.s=many9 "));
	CHECK_FALSE(contains(ar, "header.s=many10 "));
	auto queries = d.dns().queries();
	CHECK(std::count(queries.begin(), queries.end(), "many9._domainkey.sender.example TXT") == 1);
	CHECK(std::count(queries.begin(), queries.end(), "many10._domainkey.sender.example TXT") == 0);
	CHECK(std::count(queries.begin(), queries.end(), "many11._domainkey.sender.example TXT") == 0);
}

TEST_CASE("senderauth: python3-dkim Ed25519 signature passes (RFC 8463)") {
	ProgramResult probe = run_program({debian_python(), "-c", dkim_ed25519_probe});
	if (probe.out != "yes\n") {
		MESSAGE("skipped: python3-dkim cannot sign with ed25519-sha256: " << probe.err);
		return;
	}
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SignedMessage s = dkim_sign("ed25519-sha256", message_from("someone@sender.example", "ed25519 signed"));
	REQUIRE_MESSAGE(s.error.empty(), s.error);
	REQUIRE(starts_with(s.key_record, "v=DKIM1; k=ed25519; p="));
	d.dns().add("sel._domainkey.sender.example", "TXT", s.key_record);

	std::string ar = delivered_auth_results(d, s.message);
	CAPTURE(ar);
	CHECK(contains(ar, "; dkim=pass "));
	CHECK(contains(ar, "header.d=sender.example header.s=sel header.a=ed25519-sha256 header.b="));
	CHECK(contains(ar, "; spf=pass smtp.mailfrom=sender.example; "));
}

TEST_CASE(
    "senderauth: trace headers in order X-Tern-Reason, Return-Path, Authentication-Results, Received-SPF, Received") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	Transaction t = deliver(d, test_sender, message_from("bob@sender.example"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	std::string raw = read_file(files[0]);
	std::vector<std::string> names = field_names(raw);
	REQUIRE(names.size() >= 10);
	CHECK(std::vector<std::string>(names.begin(), names.begin() + 10) ==
	      std::vector<std::string>{"X-Tern-Reason", "Return-Path", "Authentication-Results", "Received-SPF",
	                               "Received", "From", "To", "Subject", "Date", "Message-Id"});
	// Nothing is known about this sender yet (doc/behaviour.md §9).
	CHECK(starts_with(raw,
	                  "X-Tern-Reason: no-bad-signals\r\nReturn-Path: <bob@sender.example>\r\n"
	                  "Authentication-Results: mx.test.example;"));

	std::string header = delivered_header(files[0]);
	CHECK(header_field(header, "Authentication-Results") ==
	      "mx.test.example; iprev=pass policy.iprev=127.0.0.1; dkim=none reason=\"no dkim signatures\"; "
	      "spf=pass smtp.mailfrom=sender.example; dmarc=none header.from=sender.example");
	std::string spf = header_field(header, "Received-SPF");
	CAPTURE(spf);
	CHECK(starts_with(spf, "pass ("));
	CHECK(contains(spf, "client-ip=127.0.0.1;"));
	CHECK(contains(spf, "envelope-from=\"bob@sender.example\";"));
	CHECK(contains(spf, "helo=client.sender.example;"));
	std::string received = header_field(header, "Received");
	CAPTURE(received);
	CHECK(starts_with(
	    received,
	    "from client.sender.example ([127.0.0.1]) by mx.test.example ([127.0.0.1]) via tcp with ESMTP id "));
	CHECK(contains(received, "for <alice@test.example>;"));
}

TEST_CASE("senderauth: DMARC p=reject without alignment is refused 550 5.7.26; aligned SPF pass is delivered") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject");
	d.dns().add("other.example", "A", "192.0.2.99");
	d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=reject");

	SUBCASE("From: other.example, SPF passes only for sender.example, no DKIM: rejected") {
		Transaction t = deliver(d, test_sender, message_from("x@other.example"));
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "550 5.7.26 rejecting per dmarc policy");
		CHECK(t.reply.has_id());
		usleep(300000);
		CHECK(maildir_files(d.maildir()).empty());
	}
	SUBCASE("p=quarantine is refused the same way") {
		d.dns().remove("_dmarc.other.example");
		d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=quarantine");
		Transaction t = deliver(d, test_sender, message_from("x@other.example"));
		CHECK(t.reply.plain() == "550 5.7.26 rejecting per dmarc policy");
		CHECK(maildir_files(d.maildir()).empty());
	}
	SUBCASE("pct=0: the policy applies to no message, delivered with dmarc=fail") {
		d.dns().remove("_dmarc.other.example");
		d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=reject; pct=0");
		std::string ar = delivered_auth_results(d, message_from("x@other.example"));
		CAPTURE(ar);
		CHECK(ends_with(ar, "; spf=pass smtp.mailfrom=sender.example; dmarc=fail header.from=other.example"));
	}
	SUBCASE("From: sender.example with SPF pass for sender.example: aligned, dmarc=pass") {
		std::string ar = delivered_auth_results(d, message_from("x@sender.example"));
		CAPTURE(ar);
		CHECK(ends_with(ar, "; spf=pass smtp.mailfrom=sender.example; dmarc=pass header.from=sender.example"));
	}
	SUBCASE("relaxed alignment: SPF pass for a subdomain of the From domain") {
		d.dns().add("bounces.sender.example", "A", "127.0.0.1");
		d.dns().add("bounces.sender.example", "TXT", "v=spf1 ip4:127.0.0.1 -all");
		Transaction t = deliver(d, "b@bounces.sender.example", message_from("x@sender.example"));
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		auto files = wait_for_maildir(d.maildir(), 1);
		REQUIRE(files.size() == 1);
		std::string ar = header_field(delivered_header(files[0]), "Authentication-Results");
		CAPTURE(ar);
		CHECK(ends_with(
		    ar, "; spf=pass smtp.mailfrom=bounces.sender.example; dmarc=pass header.from=sender.example"));
	}
}

// Two From fields: DMARC judges the first, as the model does. A second
// From of a domain without a policy (or one the sender signs for) lifted
// the first one's p=reject: with no single From, DMARC was "none".
TEST_CASE("senderauth: a second From field does not lift the first From's DMARC p=reject") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("other.example", "A", "192.0.2.99");
	d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=reject");
	Transaction t = deliver(d, test_sender, "From: ceo@other.example\r\n" + message_from("x@sender.example"));
	CHECK(t.reply.plain() == "550 5.7.26 rejecting per dmarc policy");
	usleep(300000);
	CHECK(maildir_files(d.maildir()).empty());
	// The other order: the first From, sender.example (no DMARC record), is judged.
	std::string second_from = message_from("x@sender.example");
	second_from.insert(second_from.find("\r\n") + 2, "From: ceo@other.example\r\n");
	std::string ar = delivered_auth_results(d, second_from);
	CAPTURE(ar);
	CHECK(ends_with(ar, "; spf=pass smtp.mailfrom=sender.example; dmarc=none header.from=sender.example"));
}

// A signature whose key cannot be looked up because its name cannot exist
// (a selector label over 63 octets) has no key: permerror, so the DMARC
// policy of the From domain still applies. Were it a temporary error, any
// sender could lift every p=reject with one made-up header.
TEST_CASE("senderauth: names no DNS zone can hold do not escape DMARC p=reject (DKIM selector, From domain)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("other.example", "A", "192.0.2.99");
	d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=reject");
	const std::string forged = "DKIM-Signature: v=1; a=rsa-sha256; d=other.example; s=" + std::string(64, 'a') +
	    "; h=From:Subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==\r\n";
	Transaction t = deliver(d, test_sender, forged + message_from("ceo@other.example"));
	CHECK(t.reply.plain() == "550 5.7.26 rejecting per dmarc policy");
	// A From domain under other.example that no zone can hold: its own
	// DMARC lookup finds nothing, so the organizational domain's applies.
	Transaction sub = deliver(d, test_sender, message_from("ceo@" + std::string(64, 'b') + ".other.example"));
	CHECK(sub.reply.plain() == "550 5.7.26 rejecting per dmarc policy");
	usleep(300000);
	CHECK(maildir_files(d.maildir()).empty());
}

TEST_CASE("senderauth: DMARC reject is lifted by an aligned DKIM pass") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	// SPF passes for sender.example only; From: is other.example, which
	// signs its own mail.
	d.dns().add("other.example", "A", "192.0.2.99");
	d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=reject");
	ProgramResult py = run_program({debian_python(), "-c", dkim_sign_script, "rsa-sha256", "other.example", "sel"},
	                               message_from("x@other.example", "other signed"), 60000);
	size_t nl = py.out.find('\n');
	REQUIRE_MESSAGE(py.exit_code == 0, py.err);
	REQUIRE(nl != std::string::npos);
	d.dns().add("sel._domainkey.other.example", "TXT", py.out.substr(0, nl));

	std::string ar = delivered_auth_results(d, py.out.substr(nl + 1));
	CAPTURE(ar);
	CHECK(contains(ar, "; dkim=pass "));
	CHECK(contains(ar, "header.d=other.example header.s=sel header.a=rsa-sha256"));
	CHECK(ends_with(ar, "; dmarc=pass header.from=other.example"));
}

TEST_CASE("senderauth: SPF fail or softfail of the MAIL FROM domain gets 451 4.3.0 error processing") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("spffail.example", "A", "192.0.2.10");
	d.dns().add("spffail.example", "TXT", "v=spf1 -all");
	d.dns().add("spfsoft.example", "A", "192.0.2.10");
	d.dns().add("spfsoft.example", "TXT", "v=spf1 ~all");
	d.dns().add("spfneutral.example", "A", "192.0.2.10");
	d.dns().add("spfneutral.example", "TXT", "v=spf1 ?all");

	SUBCASE("-all") {
		Transaction t = deliver(d, "bob@spffail.example", message_from("bob@spffail.example"));
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "451 4.3.0 error processing");
		CHECK(t.reply.has_id());
		usleep(300000);
		CHECK(maildir_files(d.maildir()).empty());
	}
	SUBCASE("~all") {
		Transaction t = deliver(d, "bob@spfsoft.example", message_from("bob@spfsoft.example"));
		CHECK(t.reply.plain() == "451 4.3.0 error processing");
		usleep(300000);
		CHECK(maildir_files(d.maildir()).empty());
	}
	SUBCASE("?all (neutral) is delivered, spf=neutral") {
		Transaction t = deliver(d, "bob@spfneutral.example", message_from("bob@spfneutral.example"));
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		auto files = wait_for_maildir(d.maildir(), 1);
		REQUIRE(files.size() == 1);
		std::string header = delivered_header(files[0]);
		CHECK(contains(header_field(header, "Authentication-Results"),
		               "; spf=neutral smtp.mailfrom=spfneutral.example; "));
		CHECK(starts_with(header_field(header, "Received-SPF"), "neutral "));
	}
}

TEST_CASE("senderauth: a DNSBL zone is asked for the client; one that lists 127.0.0.1 (the test client) is skipped") {
	// A healthy zone listing a client refuses it: test_dnsbl_health.cpp,
	// with a claimed client address, since a zone listing 127.0.0.1 lists
	// everyone (RFC 5782 5) and is not used.
	SUBCASE("listed") {
		TernDaemon d(
		    {.config_patch =
		         R"({"listeners": {"test": {"smtp": {"dnsbl_zones": ["clean.example", "bl.example"]}}}})"});
		REQUIRE_RUNNING(d);
		// RFC 5782 2.1: the client's address, reversed, under the zone.
		d.dns().add("1.0.0.127.bl.example", "A", "127.0.0.2");
		d.dns().add("2.0.0.127.bl.example", "A", "127.0.0.2");
		d.dns().add("2.0.0.127.clean.example", "A", "127.0.0.2");
		Transaction t = deliver(d, test_sender, message_from("bob@sender.example"));
		CHECK(t.step == "END");
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		CHECK(wait_for_maildir(d.maildir(), 1).size() == 1);
		auto queries = d.dns().queries();
		CHECK(std::count(queries.begin(), queries.end(), "1.0.0.127.bl.example A") ==
		      1);  // the health test only
		CHECK(std::count(queries.begin(), queries.end(), "1.0.0.127.clean.example A") ==
		      2);  // health test and listing
	}
	SUBCASE("not listed") {
		TernDaemon d(
		    {.config_patch = R"({"listeners": {"test": {"smtp": {"dnsbl_zones": ["clean.example"]}}}})"});
		REQUIRE_RUNNING(d);
		d.dns().add("1.0.0.127.bl.example", "A", "127.0.0.2");
		d.dns().add("2.0.0.127.clean.example", "A", "127.0.0.2");
		Transaction t = deliver(d, test_sender, message_from("bob@sender.example"));
		CHECK(t.reply.plain() == "250 2.2.0 it is done");
		CHECK(wait_for_maildir(d.maildir(), 1).size() == 1);
		auto queries = d.dns().queries();
		CHECK(std::count(queries.begin(), queries.end(), "1.0.0.127.clean.example A") ==
		      2);  // health test and listing
	}
}

TEST_CASE("senderauth: a MAIL FROM waiting on DNS does not hold up another client's delivery") {
	TernDaemon d({.config_patch = R"({"dns": {"timeout_ms": 3000}})"});
	REQUIRE_RUNNING(d);
	d.dns().add_silent_name("silent.example");

	SmtpClient slow = connect_and_ehlo(d);
	REQUIRE(slow.connected());
	slow.timeout_ms = 20000;
	int64_t asked = now_ms();
	REQUIRE(slow.send("MAIL FROM:<bob@silent.example>\r\n"));
	// Wait until the daemon has asked, so the second client runs while the
	// first is really waiting on DNS.
	for (int i = 0; i < 100; i++) {
		auto q = d.dns().queries();
		if (std::any_of(q.begin(), q.end(),
		                [](const std::string& s) { return starts_with(s, "silent.example "); }))
			break;
		usleep(10000);
	}

	Transaction t = deliver(d, test_sender, message_from("bob@sender.example"));
	int64_t fast_done = now_ms();
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(wait_for_maildir(d.maildir(), 1).size() == 1);
	CHECK_MESSAGE(fast_done - asked < 2500, "the second delivery took " << (fast_done - asked) << " ms");
	// The first client has had no reply yet.
	CHECK_FALSE(slow.readable_within(0));

	Reply r = slow.read_reply();
	int64_t slow_done = now_ms();
	CHECK(r.plain() == "451 4.4.0 cannot verify mx records for mailfrom domain");
	CHECK(slow_done > fast_done);
	CHECK(slow_done - asked >= 2900);
	CHECK(slow_done - asked < 10000);
	// The session goes on after the temporary failure.
	CHECK(slow.cmd("MAIL FROM:<bob@sender.example>").plain() == "250 2.1.0 looking good");
}

// True once the loopback DNS server has seen `query` ("name TYPE"), polled
// for at most 2 s.
static bool dns_asked_within_2s(TernDaemon& d, const std::string& query) {
	for (int i = 0; i < 200; i++) {
		auto q = d.dns().queries();
		if (std::count(q.begin(), q.end(), query)) return true;
		usleep(10000);
	}
	return false;
}

// How often the loopback DNS server was asked `query` ("name TYPE").
static long dns_query_count(TernDaemon& d, const std::string& query) {
	auto q = d.dns().queries();
	return std::count(q.begin(), q.end(), query);
}

TEST_CASE("senderauth: the MAIL FROM domain's DMARC record is asked at MAIL FROM and used when the From names it") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject");
	auto count = [&](const std::string& query) { return dns_query_count(d, query); };
	auto seen = [&](const std::string& query) { return dns_asked_within_2s(d, query); };
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	// No RCPT and no data yet: the record is asked all the same.
	CHECK(seen("_dmarc.sender.example TXT"));
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	Reply r = c.cmd("From: <bob@Sender.Example>\r\nSubject: early dmarc\r\n\r\nbody\r\n.");
	CHECK(r.code == 250);
	// Asked once: the analysis used the early answer, and it decided with
	// it (aligned SPF pass under p=reject).
	CHECK(count("_dmarc.sender.example TXT") == 1);
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	CHECK(unfold(read_file(files[0])).find("dmarc=pass header.from=sender.example") != std::string::npos);

	SUBCASE("a From header without a usable address asks nothing more; the analysis decides as before") {
		d.dns().clear_queries();
		Transaction t = send_mail(c, "bob@sender.example", {"alice@test.example"},
		                          "From: a@sender.example, b@other.example\r\nSubject: two\r\n\r\nbody\r\n");
		REQUIRE(t.step == "END");
		CHECK(t.reply.code == 250);
		CHECK(count("_dmarc.sender.example TXT") == 1);
		CHECK(count("_dmarc.other.example TXT") == 0);
	}
}

TEST_CASE("senderauth: a From domain other than MAIL FROM's has its DMARC record asked once the header is in") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("_dmarc.sender.example", "TXT", "v=DMARC1; p=none");
	d.dns().add("other.example", "A", "192.0.2.99");  // a MAIL FROM domain must have an address
	d.dns().add("_dmarc.other.example", "TXT", "v=DMARC1; p=reject");
	auto count = [&](const std::string& query) { return dns_query_count(d, query); };
	auto seen = [&](const std::string& query) { return dns_asked_within_2s(d, query); };
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<x@other.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send("From: <bob@Sender.Example>\r\nSubject: early dmarc\r\n\r\nfirst line\r\n"));
	// The end dot is not sent yet: the header alone started the lookup.
	CHECK(seen("_dmarc.sender.example TXT"));
	Reply r = c.cmd("second line\r\n.");
	// The From domain's record decided (p=none: delivered, not aligned),
	// not the MAIL FROM domain's (p=reject); each was asked once.
	CHECK(r.code == 250);
	CHECK(count("_dmarc.sender.example TXT") == 1);
	CHECK(count("_dmarc.other.example TXT") == 1);
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	CHECK(unfold(read_file(files[0])).find("dmarc=fail header.from=sender.example") != std::string::npos);
}

TEST_CASE("senderauth: iprev is asked when the session starts and SPF when MAIL FROM is accepted, before the data") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	auto seen = [&](const std::string& query) { return dns_asked_within_2s(d, query); };
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(seen("1.0.0.127.in-addr.arpa PTR"));
	auto before_mail = d.dns().queries();
	CHECK(std::count(before_mail.begin(), before_mail.end(), "sender.example TXT") == 0);
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	// No RCPT and no data yet: the SPF record is asked all the same.
	CHECK(seen("sender.example TXT"));
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	Reply r = c.cmd("From: <bob@sender.example>\r\nSubject: early\r\n\r\nhi\r\n.");
	CHECK(r.code == 250);
	// Asked once each: the message used the early answers.
	auto all = d.dns().queries();
	CHECK(std::count(all.begin(), all.end(), "1.0.0.127.in-addr.arpa PTR") == 1);
	CHECK(std::count(all.begin(), all.end(), "sender.example TXT") == 1);
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	std::string text = unfold(read_file(files[0]));
	CHECK(text.find("iprev=pass") != std::string::npos);
	CHECK(text.find("spf=pass smtp.mailfrom=sender.example") != std::string::npos);
}
