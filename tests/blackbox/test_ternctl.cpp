// ternctl's commands as scripts see them (doc/behaviour.md "ternctl", "Details that
// scripts and tests rely on"): output formats and exit codes 0/1/2. DNS
// always comes from a loopback DnsServer via --dns, never the system
// resolver.
#include <sys/stat.h>

#include "bb.h"
#include "blackbox/ternctl_run.h"

namespace {

DaemonOptions not_started() {
	DaemonOptions options;
	options.start = false;
	return options;
}

std::vector<std::string> lines_of(const std::string& text) {
	std::vector<std::string> lines;
	size_t start = 0;
	while (start < text.size()) {
		size_t nl = text.find('\n', start);
		if (nl == std::string::npos) nl = text.size();
		lines.push_back(text.substr(start, nl - start));
		start = nl + 1;
	}
	return lines;
}

const std::string test_message =
    "From: Alice <alice@test.example>\r\n"
    "To: bob@other.example\r\n"
    "Subject: hello\r\n"
    "Date: 25 Nov 2026 10:00:00 +0000\r\n"
    "Message-Id: <m1@test.example>\r\n"
    "\r\n"
    "Hello Bob.\r\n"
    "Second line.\r\n";

std::string crlf_to_lf(std::string text) {
	std::string out;
	for (char c : text)
		if (c != '\r') out += c;
	return out;
}

// A config for test.example with an Ed25519 key made by `dkim genkey`
// (selector ed1, signing), and its public record in the DNS server.
struct SigningSetup {
	TernDaemon daemon{not_started()};
	std::string txt;
	std::string message_path;

	SigningSetup() {
		ProgramResult gen = run_ternctl({"dkim", "genkey", "ed25519", "--out", daemon.dir() + "/ed1.pem"});
		REQUIRE_MESSAGE(gen.exit_code == 0, gen.both());
		txt = lines_of(gen.out).at(0);
		daemon.write_config(R"({"domains": {"test.example": {"dkim": {
			"selectors": {"ed1": {"private_key_file": "ed1.pem"}}, "sign": ["ed1"]}}}})");
		daemon.dns().add("ed1._domainkey.test.example", "TXT", txt);
		message_path = daemon.dir() + "/message.eml";
		write_file(message_path, test_message);
	}
	std::string dns() { return daemon.dns().address(); }
	ProgramResult sign(const std::string& message) {
		write_file(message_path, message);
		return run_ternctl({"-c", daemon.config_path(), "dkim", "sign", message_path});
	}
	ProgramResult verify_stdin(const std::string& message) {
		return run_ternctl({"--dns", dns(), "dkim", "verify"}, message);
	}
};

}  // namespace

// ------------------------------------------------------------ spf check

TEST_CASE("ternctl spf check: pass, fail with explanation, permerror, none; exit 0 each") {
	DnsServer dns;
	dns.add("pass.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all");
	dns.add("fail.example", "TXT", "v=spf1 -all exp=why.fail.example");
	dns.add("why.fail.example", "TXT", "%{i} may not send for %{d}");
	dns.add("soft.example", "TXT", "v=spf1 ~all");
	dns.add("broken.example", "TXT", "v=spf1 bogus-mechanism -all");
	dns.add("nothing.example", "A", "192.0.2.9");

	ProgramResult r = run_ternctl({"--dns", dns.address(), "spf", "check", "192.0.2.7", "user@pass.example"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "pass\n");

	r = run_ternctl(
	    {"--dns", dns.address(), "spf", "check", "198.51.100.1", "user@fail.example", "mx.client.example"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "fail\nexplanation: 198.51.100.1 may not send for fail.example\n");

	r = run_ternctl({"--dns", dns.address(), "spf", "check", "2001:db8::1", "<user@soft.example>"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "softfail\n");

	r = run_ternctl({"--dns", dns.address(), "spf", "check", "192.0.2.7", "user@broken.example"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "permerror\n");
	CHECK(contains(r.err, "problem: "));

	r = run_ternctl({"--dns", dns.address(), "spf", "check", "192.0.2.7", "user@nothing.example"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "none\n");
}

TEST_CASE("ternctl spf check: the null reverse path checks the HELO name as postmaster") {
	DnsServer dns;
	dns.add("helo.example", "TXT", "v=spf1 exists:%{l}.%{o}.check.example -all");
	dns.add("postmaster.helo.example.check.example", "A", "127.0.0.2");
	dns.add("mail.example", "TXT", "v=spf1 -all");
	for (std::string null_path : {"<>", ""}) {
		ProgramResult r = run_ternctl(
		    {"--dns", dns.address(), "spf", "check", "192.0.2.1", null_path, "helo.example"});
		CHECK(r.exit_code == 0);
		CHECK(r.out == "pass\n");
	}
	// MAIL FROM is preferred when present.
	ProgramResult r = run_ternctl(
	    {"--dns", dns.address(), "spf", "check", "192.0.2.1", "a@mail.example", "helo.example"});
	CHECK(r.out == "fail\n");
	// An address-literal HELO with the null path has nothing to check.
	r = run_ternctl({"--dns", dns.address(), "spf", "check", "192.0.2.1", "<>", "[192.0.2.1]"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "none\n");
}

TEST_CASE("ternctl spf check: a DNS failure is temperror, exit 0") {
	DnsServer dns;
	dns.add_servfail_name("down.example");
	ProgramResult r = run_ternctl({"--dns", dns.address(), "spf", "check", "192.0.2.1", "u@down.example"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "temperror\n");
}

TEST_CASE("ternctl spf check: any MAIL FROM and HELO text is evaluated, exit 0") {
	DnsServer dns;
	dns.add("example.com", "TXT", "v=spf1 exists:%{l}.l.example.com -all");
	dns.add("john doe.l.example.com", "A", "127.0.0.2");
	dns.add("helo.example", "TXT", "v=spf1 exists:%{h}.h.helo.example -all");
	dns.add("bad helo.h.helo.example", "A", "127.0.0.2");
	dns.add("foo bar.example", "TXT", "v=spf1 +all");
	struct Check {
		std::vector<std::string> args;
		std::string out;
	};
	std::vector<Check> checks = {
	    // RFC 5321 4.1.2 quoted local part, and the same unquoted.
	    {{"\"john doe\"@example.com"}, "pass\n"},
	    {{"john doe@example.com"}, "pass\n"},
	    {{"u@example.com"}, "fail\n"},
	    // %{h} is the HELO text as given (RFC 7208 7.3).
	    {{"u@helo.example", "bad helo"}, "pass\n"},
	    {{"u@example.com", "[999.1.1.1]"}, "fail\n"},
	    // No FQDN to check: none (RFC 7208 2.3, 4.3).
	    {{"no-at-sign"}, "none\n"},
	    {{"u@"}, "none\n"},
	    {{"<>"}, "none\n"},
	    {{"<>", "foo bar.example"}, "none\n"},
	    {{"<>", "localhost"}, "none\n"},
	};
	for (const auto& c : checks) {
		std::vector<std::string> args{"--dns", dns.address(), "spf", "check", "192.0.2.1"};
		args.insert(args.end(), c.args.begin(), c.args.end());
		ProgramResult r = run_ternctl(args);
		INFO(c.args[0], " ", r.both());
		CHECK(r.exit_code == 0);
		CHECK(r.out == c.out);
	}
}

TEST_CASE("ternctl spf check: usage errors exit 2") {
	DnsServer dns;
	std::vector<std::vector<std::string>> bad = {
	    {"spf", "check", "192.0.2.300", "u@example.com"},
	    {"spf", "check", "not-an-ip", "u@example.com"},
	    {"spf", "check", "192.0.2.1"},
	    {"spf", "check", "192.0.2.1", "u@example.com", "helo.example", "extra"},
	    {"spf", "lookup", "example.com"},
	    {"spf"},
	};
	for (auto args : bad) {
		args.insert(args.begin(), {"--dns", dns.address()});
		ProgramResult r = run_ternctl(args);
		INFO((args.size() > 4 ? args[4] : std::string()), " ", r.both());
		CHECK(r.exit_code == 2);
		CHECK(r.out == "");
	}
	// A --dns value that is no address.
	ProgramResult r = run_ternctl({"--dns", "not-an-address", "spf", "check", "192.0.2.1", "u@example.com"});
	CHECK(r.exit_code == 2);
	CHECK(r.out == "");
	// Nothing reached the DNS server for any of them.
	CHECK(dns.queries().empty());
}

TEST_CASE("ternctl: a config given with -c that does not load is exit 2 for diagnostics") {
	DnsServer dns;
	std::string dir = make_temp_dir("tern-ctl-");
	write_file(dir + "/tern.json", "{\"hostname\": 5}");
	ProgramResult r = run_ternctl(
	    {"-c", dir + "/tern.json", "--dns", dns.address(), "spf", "check", "192.0.2.1", "u@example.com"});
	CHECK(r.exit_code == 2);
	CHECK(contains(r.err, "error: "));
	r = run_ternctl({"-c", dir + "/missing.json", "dkim", "sign", dir + "/tern.json"});
	CHECK(r.exit_code == 2);
	remove_tree(dir);
}

TEST_CASE("ternctl: global options in every form ternd takes; an unknown one is named") {
	TernDaemon d(not_started());
	d.write_config();
	for (const std::vector<std::string>& args : {std::vector<std::string>{"-c", d.config_path(), "check"},
	                                             {"-c" + d.config_path(), "check"},
	                                             {"--config", d.config_path(), "check"},
	                                             {"--config=" + d.config_path(), "check"}}) {
		ProgramResult r = run_ternctl(args);
		INFO(args[0] << " " << r.both());
		CHECK(r.exit_code == 0);
		CHECK(contains(r.out, "config ok"));
	}
	d.dns().add("cfg.example", "TXT", "v=spf1 ip4:192.0.2.1 -all");
	ProgramResult r = run_ternctl({"--dns=" + d.dns().address(), "spf", "check", "192.0.2.1", "u@cfg.example"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "pass\n");

	r = run_ternctl({"--frobnicate", "check"});
	CHECK(r.exit_code == 2);
	CHECK(contains(r.err, "--frobnicate"));
	CHECK(contains(r.err, "usage: ternctl"));
	r = run_ternctl({"check", "-c", d.config_path()});  // options come before the command
	CHECK(r.exit_code == 2);
	r = run_ternctl({"-c"});
	CHECK(r.exit_code == 2);
	CHECK(contains(r.err, "requires an argument"));
}

TEST_CASE("ternctl spf check: the config's resolvers are used without --dns") {
	TernDaemon d(not_started());
	d.write_config();  // dns.servers points at the daemon's DnsServer
	d.dns().add("cfg.example", "TXT", "v=spf1 ip4:192.0.2.1 -all");
	ProgramResult r = run_ternctl({"-c", d.config_path(), "spf", "check", "192.0.2.1", "u@cfg.example"});
	INFO(r.err);
	CHECK(r.exit_code == 0);
	CHECK(r.out == "pass\n");
}

// ------------------------------------------------------------ dkim genkey

TEST_CASE("ternctl dkim genkey: PKCS#8 file with mode 0600 and the TXT record") {
	std::string dir = make_temp_dir("tern-ctl-");
	ProgramResult r = run_ternctl({"dkim", "genkey", "rsa", "--bits", "1024", "--out", dir + "/rsa.pem"});
	REQUIRE_MESSAGE(r.exit_code == 0, r.both());
	REQUIRE(lines_of(r.out).size() == 1);
	CHECK(starts_with(r.out, "v=DKIM1; k=rsa; p=MI"));
	std::string pem = read_file(dir + "/rsa.pem");
	CHECK(starts_with(pem, "-----BEGIN PRIVATE KEY-----\n"));
	CHECK(contains(pem, "-----END PRIVATE KEY-----"));
	struct stat st {};
	REQUIRE(stat((dir + "/rsa.pem").c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0600);

	r = run_ternctl({"dkim", "genkey", "--out", dir + "/ed.pem", "ed25519"});
	REQUIRE_MESSAGE(r.exit_code == 0, r.both());
	CHECK(starts_with(r.out, "v=DKIM1; k=ed25519; p="));
	// 32 key bytes are 44 base64 characters.
	CHECK(r.out.size() == std::string("v=DKIM1; k=ed25519; p=").size() + 44 + 1);
	CHECK(starts_with(read_file(dir + "/ed.pem"), "-----BEGIN PRIVATE KEY-----\n"));
	REQUIRE(stat((dir + "/ed.pem").c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0600);

	// An existing key is never replaced.
	std::string before = read_file(dir + "/ed.pem");
	r = run_ternctl({"dkim", "genkey", "ed25519", "--out", dir + "/ed.pem"});
	CHECK(r.exit_code == 1);
	CHECK(read_file(dir + "/ed.pem") == before);
	remove_tree(dir);
}

TEST_CASE("ternctl dkim genkey: usage errors exit 2") {
	std::string dir = make_temp_dir("tern-ctl-");
	std::vector<std::vector<std::string>> bad = {
	    {"dkim", "genkey", "rsa"},
	    {"dkim", "genkey", "--out", dir + "/k.pem"},
	    {"dkim", "genkey", "dsa", "--out", dir + "/k.pem"},
	    {"dkim", "genkey", "rsa", "--bits", "512", "--out", dir + "/k.pem"},
	    {"dkim", "genkey", "rsa", "--bits", "many", "--out", dir + "/k.pem"},
	    {"dkim", "genkey", "ed25519", "--bits", "2048", "--out", dir + "/k.pem"},
	    {"dkim", "genkey", "rsa", "ed25519", "--out", dir + "/k.pem"},
	    {"dkim", "frobnicate"},
	    {"dkim"},
	};
	for (const auto& args : bad) {
		ProgramResult r = run_ternctl(args);
		INFO(args.back(), " ", r.both());
		CHECK(r.exit_code == 2);
	}
	CHECK_FALSE(file_exists(dir + "/k.pem"));
	remove_tree(dir);
}

// ------------------------------------------------------------ dkim sign/verify

TEST_CASE("ternctl dkim sign: signature first, then the message; verify says pass") {
	SigningSetup s;
	ProgramResult signed_msg = s.sign(test_message);
	REQUIRE_MESSAGE(signed_msg.exit_code == 0, signed_msg.err);
	CHECK(starts_with(signed_msg.out, "DKIM-Signature: "));
	CHECK(ends_with(signed_msg.out, "\r\n" + test_message));
	std::string sig = unfold(signed_msg.out.substr(0, signed_msg.out.size() - test_message.size()));
	CHECK(contains(sig, "d=test.example;"));
	CHECK(contains(sig, "s=ed1;"));
	CHECK(contains(sig, "a=ed25519-sha256;"));
	CHECK(contains(sig, "i=alice@test.example;"));  // as ternd signs submitted mail

	// From a file argument and from stdin.
	write_file(s.message_path, signed_msg.out);
	ProgramResult v = run_ternctl({"--dns", s.dns(), "dkim", "verify", s.message_path});
	CHECK(v.exit_code == 0);
	CHECK(v.out == "pass d=test.example s=ed1 a=ed25519-sha256\n");
	v = s.verify_stdin(signed_msg.out);
	CHECK(v.exit_code == 0);
	CHECK(v.out == "pass d=test.example s=ed1 a=ed25519-sha256\n");
	v = run_ternctl({"--dns", s.dns(), "dkim", "verify", "-"}, signed_msg.out);
	CHECK(v.out == "pass d=test.example s=ed1 a=ed25519-sha256\n");
}

TEST_CASE("ternctl dkim sign/verify: bare LF line ends are taken as CRLF") {
	SigningSetup s;
	ProgramResult signed_msg = s.sign(crlf_to_lf(test_message));
	REQUIRE_MESSAGE(signed_msg.exit_code == 0, signed_msg.err);
	// The output is the CRLF form that was signed.
	CHECK(ends_with(signed_msg.out, "\r\n" + test_message));
	ProgramResult v = s.verify_stdin(crlf_to_lf(signed_msg.out));
	CHECK(v.exit_code == 0);
	CHECK(v.out == "pass d=test.example s=ed1 a=ed25519-sha256\n");
}

TEST_CASE("ternctl dkim verify: a changed body fails, exit 1") {
	SigningSetup s;
	ProgramResult signed_msg = s.sign(test_message);
	REQUIRE(signed_msg.exit_code == 0);
	std::string tampered = signed_msg.out;
	tampered.replace(tampered.find("Hello Bob."), 10, "Hello Eve.");
	ProgramResult v = s.verify_stdin(tampered);
	CHECK(v.exit_code == 1);
	CHECK(starts_with(v.out, "fail d=test.example s=ed1 a=ed25519-sha256 error=\""));
	CHECK(ends_with(v.out, "\"\n"));
	CHECK(lines_of(v.out).size() == 1);
}

TEST_CASE("ternctl dkim verify: a changed signed header fails, exit 1") {
	SigningSetup s;
	ProgramResult signed_msg = s.sign(test_message);
	REQUIRE(signed_msg.exit_code == 0);
	std::string tampered = signed_msg.out;
	tampered.replace(tampered.find("Subject: hello"), 14, "Subject: HELLO");
	ProgramResult v = s.verify_stdin(tampered);
	CHECK(v.exit_code == 1);
	CHECK(starts_with(v.out, "fail d=test.example s=ed1 a=ed25519-sha256 error=\""));
}

TEST_CASE("ternctl dkim verify: no key record is permerror, DNS failure temperror") {
	SigningSetup s;
	ProgramResult signed_msg = s.sign(test_message);
	REQUIRE(signed_msg.exit_code == 0);
	s.daemon.dns().remove("ed1._domainkey.test.example");
	ProgramResult v = s.verify_stdin(signed_msg.out);
	CHECK(v.exit_code == 1);
	CHECK(starts_with(v.out, "permerror d=test.example s=ed1 a=ed25519-sha256 error=\""));

	s.daemon.dns().add_servfail_name("ed1._domainkey.test.example");
	v = s.verify_stdin(signed_msg.out);
	CHECK(v.exit_code == 1);
	CHECK(starts_with(v.out, "temperror d=test.example s=ed1 a=ed25519-sha256 error=\""));
}

TEST_CASE("ternctl dkim verify: one line per signature, exit 1 unless all pass") {
	SigningSetup s;
	ProgramResult once = s.sign(test_message);
	REQUIRE(once.exit_code == 0);
	ProgramResult twice = s.sign(once.out);  // signs again on top
	REQUIRE(twice.exit_code == 0);
	ProgramResult v = s.verify_stdin(twice.out);
	CHECK(v.exit_code == 0);
	CHECK(v.out == "pass d=test.example s=ed1 a=ed25519-sha256\npass d=test.example s=ed1 a=ed25519-sha256\n");

	// A garbled extra signature: its own permerror line, the other passes.
	std::string broken = "DKIM-Signature: v=1; a=rsa-sha256; d=test.example\r\n" + once.out;
	v = s.verify_stdin(broken);
	CHECK(v.exit_code == 1);
	auto lines = lines_of(v.out);
	REQUIRE(lines.size() == 2);
	CHECK(starts_with(lines[0], "permerror d="));
	CHECK(contains(lines[0], " error=\""));
	CHECK(lines[1] == "pass d=test.example s=ed1 a=ed25519-sha256");
}

TEST_CASE("ternctl dkim verify: an unsigned message is none, exit 1") {
	DnsServer dns;
	ProgramResult v = run_ternctl({"--dns", dns.address(), "dkim", "verify"}, test_message);
	CHECK(v.exit_code == 1);
	CHECK(v.out == "none\n");
	v = run_ternctl({"--dns", dns.address(), "dkim", "verify", "/nonexistent/message.eml"});
	CHECK(v.exit_code == 2);
	v = run_ternctl({"--dns", dns.address(), "dkim", "verify", "a", "b"});
	CHECK(v.exit_code == 2);
}

TEST_CASE("ternctl dkim sign: a From domain without keys is an error, exit 1") {
	SigningSetup s;
	std::string foreign = test_message;
	foreign.replace(foreign.find("alice@test.example"), 18, "alice@other.example");
	ProgramResult r = s.sign(foreign);
	CHECK(r.exit_code == 1);
	CHECK(r.out == "");
	CHECK(contains(r.err, "other.example"));

	// No From at all, or two.
	std::string no_from = test_message.substr(test_message.find("To:"));
	r = s.sign(no_from);
	CHECK(r.exit_code == 1);
	CHECK(r.out == "");
	r = s.sign("From: a@test.example\r\n" + test_message);
	CHECK(r.exit_code == 1);
	CHECK(r.out == "");

	// The From domain is found behind a display name with comments, in any case.
	std::string display = test_message;
	display.replace(0, display.find("\r\n"),
	                "From: \"Doe, J. <x@other.example>\" (c@other.example) <alice@Test.Example>");
	r = s.sign(display);
	CHECK(r.exit_code == 0);
	CHECK(starts_with(r.out, "DKIM-Signature: "));

	// A key that does not load is named, never left out of the result.
	write_file(s.daemon.dir() + "/ed1.pem", "not a key\n");
	r = s.sign(test_message);
	CHECK(r.exit_code == 1);
	CHECK(r.out == "");
	CHECK(
	    contains(r.err, "/ed1.pem: domains.test.example.dkim.selectors.ed1.private_key_file: cannot load the key"));
}

// ------------------------------------------------------------ dmarc lookup

TEST_CASE("ternctl dmarc lookup: the domain's record, else the organizational domain's") {
	DnsServer dns;
	dns.add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com");
	dns.add("_dmarc.own.example.com", "TXT", "v=DMARC1; p=none");
	dns.add("_dmarc.own.example.com", "TXT", "some other text");

	ProgramResult r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "example.com"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "_dmarc.example.com: v=DMARC1; p=reject; rua=mailto:dmarc@example.com\n");

	r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "own.example.com"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "_dmarc.own.example.com: v=DMARC1; p=none\n");

	r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "Deep.Mail.Example.COM"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "_dmarc.example.com: v=DMARC1; p=reject; rua=mailto:dmarc@example.com\n");
}

TEST_CASE("ternctl dmarc lookup: none, invalid and unreachable records exit 1") {
	DnsServer dns;
	dns.add("_dmarc.example.org", "TXT", "not dmarc");
	dns.add("_dmarc.bad.example", "TXT", "v=DMARC1; p=sometimes");
	dns.add("_dmarc.twice.example", "TXT", "v=DMARC1; p=reject");
	dns.add("_dmarc.twice.example", "TXT", "v=DMARC1; p=none");
	dns.add_servfail_name("_dmarc.down.example");

	// No record: "none" and nothing on stderr (there is no problem to tell).
	ProgramResult r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "example.org"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "none\n");
	CHECK(r.err == "");
	r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "mail.nothing.example.net"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "none\n");
	CHECK(r.err == "");
	r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "bad.example"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "permerror\n");
	CHECK(contains(r.err, "problem: "));
	// Two records: no policy either, and the reason is told.
	r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "twice.example"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "none\n");
	CHECK(r.err == "problem: dmarc: multiple dmarc dns records\n");
	r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "down.example"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "temperror\n");
	CHECK(contains(r.err, "problem: "));

	r = run_ternctl({"--dns", dns.address(), "dmarc", "lookup", "not a domain"});
	CHECK(r.exit_code == 2);
	CHECK(r.out == "");
}

// ------------------------------------------------------------ check, passwd, usage

TEST_CASE("ternctl check: a valid config exit 0, a broken one exit 1") {
	TernDaemon d(not_started());
	d.write_config();
	ProgramResult r = run_ternctl({"-c", d.config_path(), "check"});
	CHECK(r.exit_code == 0);
	CHECK(contains(r.out, "config ok"));

	d.write_config_text(R"({"hostname": "mx.test.example", "listeners": {"x": {"smtp": {"port": "25"}}}})");
	r = run_ternctl({"-c", d.config_path(), "check"});
	CHECK(r.exit_code == 1);
	CHECK(contains(r.err, "error: "));
	CHECK(contains(r.err, "listeners.x.smtp.port"));
	CHECK_FALSE(contains(r.out, "config ok"));
}

TEST_CASE("ternctl passwd: an unknown account is exit 1") {
	TernDaemon d(not_started());
	d.write_config();
	ProgramResult r = run_ternctl({"-c", d.config_path(), "passwd", "nobody"}, "secret\n");
	CHECK(r.exit_code == 1);
	CHECK(contains(r.err, "no such account"));
}

TEST_CASE("ternctl queue: an empty queue lists the header; unknown IDs exit 1") {
	TernDaemon d(not_started());
	d.write_config();
	ProgramResult r = run_ternctl({"-c", d.config_path(), "queue", "list"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR\n");
	r = run_ternctl({"-c", d.config_path(), "queue", "show", "12345"});
	CHECK(r.exit_code == 1);
	CHECK(r.out == "no such message\n");
	r = run_ternctl({"-c", d.config_path(), "queue", "frobnicate"});
	CHECK(r.exit_code == 2);
	r = run_ternctl({"-c", d.dir() + "/missing.json", "queue", "list"});
	CHECK(r.exit_code == 2);
}

TEST_CASE("ternctl: usage errors exit 2") {
	std::vector<std::vector<std::string>> bad = {
	    {},        {"no-such-command"}, {"--no-such-option", "check"},
	    {"-c"},    {"passwd"},          {"check", "extra"},
	    {"dmarc"}, {"dmarc", "lookup"}, {"dmarc", "lookup", "a.example", "b.example"},
	};
	for (const auto& args : bad) {
		ProgramResult r = run_ternctl(args);
		INFO((args.empty() ? std::string("(none)") : args[0]), " ", r.both());
		CHECK(r.exit_code == 2);
		CHECK(contains(r.err, "usage: ternctl"));
	}
	ProgramResult r = run_ternctl({"--help"});
	CHECK(r.exit_code == 0);
	CHECK(contains(r.out, "spf check IP MAILFROM [HELO]"));
}
