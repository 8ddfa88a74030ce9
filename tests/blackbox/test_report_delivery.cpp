// DMARC aggregate and TLS reports sent to report addresses (doc/behaviour.md
// §9, step 3): kept in the database when the model's conditions hold, the
// message still delivered but flagged Seen and without the first-time-
// sender delay; `ternctl dmarc reports` / `tlsrpt reports` list them.
#include "bb.h"
#include "blackbox/ternctl_run.h"
#include "unit/report_samples.h"

namespace {

// Report addresses next to alice's own, and a first-time-sender delay a
// report must not wait.
const std::string report_patch = R"({
  "listeners": {"test": {"smtp": {"first_time_sender_delay_ms": 5000}}},
  "accounts": {"alice": {"destinations": {
    "alice@test.example": {"mailbox": "INBOX"},
    "dmarc@test.example": {"mailbox": "DMARC", "dmarc_reports": true},
    "tlsrpt@test.example": {"mailbox": "TLSRPT", "tls_reports": true}}}}})";

// The reporter: SPF passes 127.0.0.1, DMARC policy none (a pass needs an
// aligned SPF or DKIM pass).
void add_reporter_zone(DnsServer& dns) {
	dns.add("receiver.example", "A", "127.0.0.1");
	dns.add("receiver.example", "MX", "10 receiver.example");
	dns.add("receiver.example", "TXT", "v=spf1 ip4:127.0.0.1 -all");
	dns.add("_dmarc.receiver.example", "TXT", "v=DMARC1; p=none");
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
	for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
	return s;
}

// The reports are about test.example, the hosted domain.
std::string dmarc_report_message() {
	return message_with("application/gzip", "receiver.example!test.example!1335571200!1335657599.xml.gz",
	                    gzip(replace_all(dmarc_xml, "example.org", "test.example")));
}

// DKIM-signed by receiver.example (RFC 8460 3) with a fresh Ed25519 key from
// ternctl, published under sel._domainkey.
std::string signed_tls_report_message(TernDaemon& d) {
	std::string key = d.dir() + "/reporter.pem";
	ProgramResult gen = run_ternctl({"dkim", "genkey", "ed25519", "--out", key});
	REQUIRE_MESSAGE(gen.exit_code == 0, gen.both());
	std::string record = gen.out.substr(0, gen.out.find('\n'));
	d.dns().add("sel._domainkey.receiver.example", "TXT", record);
	std::string signer = d.dir() + "/reporter.json";
	write_file(signer,
	           R"({"hostname": "mx.receiver.example", "domains": {"receiver.example": {"dkim": {
	    "selectors": {"sel": {"private_key_file": ")" +
	               key + R"(", "headers": ["From", "Subject"]}},
	    "sign": ["sel"]}}}})");
	std::string message = message_with("application/tlsrpt+gzip",
	                                   "receiver.example!test.example!1459468800!1459555199.json.gz",
	                                   gzip(replace_all(tls_json, "company-y.example", "test.example")));
	ProgramResult signed_message = run_ternctl({"-c", signer, "dkim", "sign"}, message);
	REQUIRE_MESSAGE(signed_message.exit_code == 0, signed_message.both());
	return signed_message.out;
}

Transaction send_report(TernDaemon& d, const std::string& to, const std::string& message) {
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	c.timeout_ms = 20000;
	Transaction t = send_mail(c, "noreply-dmarc@receiver.example", {to}, message);
	c.cmd("QUIT");
	return t;
}

}  // namespace

// A report ternd filed in the DMARC folder says nothing about its sender:
// once the Maildir scanner has seen it (every second here), the sender's
// next ordinary message is still a first-time sender's and waits.
TEST_CASE("reports: a kept report does not make its sender known once the Maildir is scanned") {
	std::string patch = report_patch;
	patch.insert(patch.rfind('}'), R"(, "message_history": {"scan_interval_s": 1})");
	TernDaemon d({.config_patch = patch});
	REQUIRE_RUNNING(d);
	add_reporter_zone(d.dns());
	Transaction t = send_report(d, "dmarc@test.example", dmarc_report_message());
	REQUIRE(t.reply.plain() == "250 2.2.0 it is done");
	REQUIRE(maildir_files(d.maildir() + "/.DMARC", "cur").size() == 1);
	usleep(2500000);  // two scans at least
	int64_t start = now_ms();
	t = send_report(d, "alice@test.example", dmarc_report_message());
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(now_ms() - start >= 4900);
}

TEST_CASE("reports: an aggregate report as a gzip attachment is kept, delivered Seen, listed") {
	TernDaemon d({.config_patch = report_patch});
	REQUIRE_RUNNING(d);
	add_reporter_zone(d.dns());

	int64_t start = now_ms();
	Transaction t = send_report(d, "dmarc@test.example", dmarc_report_message());
	CHECK(t.step == "END");
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(now_ms() - start < 4000);  // no first-time-sender delay for a kept report
	std::string box = d.maildir() + "/.DMARC";
	CHECK(maildir_files(box, "new").empty());
	auto seen = maildir_files(box, "cur");
	REQUIRE(seen.size() == 1);
	CHECK(ends_with(seen[0], ":2,S"));
	CHECK(contains(d.log_text(), "msg=\"report kept\" kind=dmarc domain=test.example reporter=receiver.example"));

	const std::string line =
	    "2012-04-28T00:00:00Z 2012-04-28T23:59:59Z test.example receiver.example pass=2 fail=3 fail\n";
	ProgramResult r = run_ternctl({"-c", d.config_path(), "dmarc", "reports"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == line);
	r = run_ternctl({"-c", d.config_path(), "dmarc", "reports", "test.example"});
	CHECK(r.out == line);
	r = run_ternctl({"-c", d.config_path(), "dmarc", "reports", "other.example"});
	CHECK(r.exit_code == 1);
	CHECK(r.out.empty());
	CHECK(r.err == "no reports\n");
	r = run_ternctl({"-c", d.config_path(), "tlsrpt", "reports"});
	CHECK(r.exit_code == 1);

	// The same report to an ordinary address is plain mail (and waits the
	// first-time-sender delay, as any first-time sender).
	start = now_ms();
	t = send_report(d, "alice@test.example", dmarc_report_message());
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(now_ms() - start >= 4900);
	CHECK(maildir_files(d.maildir(), "new").size() == 1);

	// Without ternd the database says the same.
	REQUIRE(d.stop() == 0);
	r = run_ternctl({"-c", d.config_path(), "dmarc", "reports"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == line);
}

TEST_CASE("reports: a DKIM-signed TLS report is kept, delivered Seen, listed; unsigned it is plain mail") {
	TernDaemon d({.config_patch = report_patch});
	REQUIRE_RUNNING(d);
	add_reporter_zone(d.dns());
	std::string message = signed_tls_report_message(d);

	Transaction t = send_report(d, "tlsrpt@test.example", message);
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	auto seen = maildir_files(d.maildir() + "/.TLSRPT", "cur");
	REQUIRE(seen.size() == 1);
	CHECK(ends_with(seen[0], ":2,S"));
	ProgramResult r = run_ternctl({"-c", d.config_path(), "tlsrpt", "reports"});
	CHECK(r.exit_code == 0);
	CHECK(r.out == "2016-04-01T00:00:00Z 2016-04-01T23:59:59Z test.example Company-X pass=5326 fail=303 fail\n");

	// Without the signature the report is not kept: delivered as new mail.
	std::string unsigned_message = message.substr(message.find("From: "));
	d.write_config(R"({"listeners": {"test": {"smtp": {"first_time_sender_delay_ms": 0}}}})");
	REQUIRE(d.signal(SIGHUP));
	usleep(300000);
	t = send_report(d, "tlsrpt@test.example", unsigned_message);
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(maildir_files(d.maildir() + "/.TLSRPT", "new").size() == 1);
	CHECK(maildir_files(d.maildir() + "/.TLSRPT", "cur").size() == 1);
}
