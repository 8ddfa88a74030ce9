// `ternctl setup records DOMAIN` (ternctl(8)): the records to publish, from
// a config with DKIM keys made by `ternctl dkim genkey`.
#include "bb.h"

#include "ternctl_run.h"

namespace {

DaemonOptions not_started() {
	DaemonOptions o;
	o.start = false;
	return o;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

TEST_CASE("ternctl setup records: MX, SPF, each DKIM selector's key, DMARC with rua, PTR") {
	TernDaemon d(not_started());
	ProgramResult rsa = run_ternctl({"dkim", "genkey", "rsa", "--out", d.dir() + "/r1.pem"});
	ProgramResult ed = run_ternctl({"dkim", "genkey", "ed25519", "--out", d.dir() + "/s1.pem"});
	REQUIRE(rsa.exit_code == 0);
	REQUIRE(ed.exit_code == 0);
	d.write_config(R"({"hostname": "mail.test.example",
	  "listeners": {"test": {"ips": ["127.0.0.1", "192.0.2.25", "10.0.0.5", "100.64.0.7", "fe80::5"]}},
	  "domains": {"test.example": {"dkim": {"selectors": {"r1": {"private_key_file": "r1.pem"},
	                                                      "s1": {"private_key_file": "s1.pem"}},
	                                        "sign": ["s1"]}}},
	  "accounts": {"alice": {"destinations": {"dmarc-reports@test.example": {"mailbox": "DMARC"}}}}})");
	ProgramResult r = run_ternctl({"-c", d.config_path(), "setup", "records", "Test.Example."});
	INFO(r.both());
	REQUIRE(r.exit_code == 0);
	CHECK(contains(r.out, "test.example.                   IN MX    10 mail.test.example.\n"));
	CHECK(contains(r.out, "IN TXT   \"v=spf1 ip4:192.0.2.25 mx -all\"\n"));
	// Private, shared (RFC 6598) and link-local addresses are no one's
	// way in from the world.
	for (const char* not_public : {"127.0.0.1", "10.0.0.5", "100.64.0.7", "fe80::5"})
		CHECK_FALSE_MESSAGE(contains(r.out, not_public), not_public);
	CHECK(contains(r.out, "mail.test.example.              IN A     192.0.2.25\n"));
	CHECK(contains(r.out, "s1._domainkey.test.example.     IN TXT   \"" + first_line(ed.out) + "\"\n"));
	// The RSA record is longer than one string: the strings joined give the key.
	std::string rsa_txt = first_line(rsa.out);
	size_t at = r.out.find("r1._domainkey.test.example.");
	REQUIRE(at != std::string::npos);
	std::string line = r.out.substr(at, r.out.find('\n', at) - at);
	std::string joined;
	for (size_t q = line.find('"'); q != std::string::npos;) {
		size_t end = line.find('"', q + 1);
		joined += line.substr(q + 1, end - q - 1);
		q = line.find('"', end + 1);
	}
	CHECK(joined == rsa_txt);
	CHECK(contains(
	    r.out,
	    "_dmarc.test.example.            IN TXT   \"v=DMARC1; p=reject; rua=mailto:dmarc-reports@test.example\"\n"));
	CHECK(contains(r.out, "; 25.2.0.192.in-addr.arpa."));
}

TEST_CASE("ternctl setup records: no rua without a dmarc-reports address; unknown domain and broken key exit 1") {
	TernDaemon d(not_started());
	write_file(d.dir() + "/broken.pem", "not a key\n");
	d.write_config(
	    R"({"domains": {"test.example": {"dkim": {"selectors": {"b1": {"private_key_file": "broken.pem"}}}}}})");
	ProgramResult r = run_ternctl({"-c", d.config_path(), "setup", "records", "test.example"});
	INFO(r.both());
	CHECK(r.exit_code == 1);
	CHECK(contains(r.out, "\"v=DMARC1; p=reject\"\n"));
	CHECK(contains(r.out, "; b1._domainkey.test.example. cannot be given: "));
	CHECK(contains(r.out, "\"v=spf1 mx -all\""));

	r = run_ternctl({"-c", d.config_path(), "setup", "records", "other.example"});
	CHECK(r.exit_code == 1);
	CHECK(contains(r.err, "other.example is not among the config's domains"));
	r = run_ternctl({"-c", d.config_path(), "setup", "records"});
	CHECK(r.exit_code == 2);
}
